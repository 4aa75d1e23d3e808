"""Reasoning tasks: deterministic generators with a train / held-out split, levels,
an outcome verifier (binary) and a step verifier (which steps of a shown working are right).

Verifiers parse text with small regular expressions and integer arithmetic: they never call
``eval``, never raise on malformed text (it scores 0), and never accept a wrong answer. A
number counts only when written canonically in ASCII digits: "0" or no leading zero ("09",
full-width or Arabic-Indic digits are not numbers here). The working columns of "add" are
the one exception: two digits, zero-padded by design ("06").

``add``       column addition with a short working. ``347+285=`` -> ``12,13,06|632``: the
              working lists each column's sum (digits + carry in, two digits), least
              significant first, then ``|`` and the answer. Level = number of carries.
``add_mixed`` the same sums, but half of the demonstrations (chosen by a hash of the prompt, so
              the model cannot tell which) skip the working: ``347+285=`` -> ``|632``. The
              base then writes 14-token and 5-token completions (EOS included) for the same
              prompt, which is what the loss aggregations grpo / dapo / dr_grpo of
              ``refimpl.methods.grpo`` weigh differently (claim C11b, notebook 03).
``countdown`` reach a target from single-digit numbers with + - * (each number used at most
              once, intermediate results non-negative). ``3,5,7>22:`` -> ``3*5=15,15+7=22``.
              Many answers are valid, so exploration matters. Level L gives L+1 numbers.

A level describes the problem (how many carries, how many numbers), not how hard a given model
finds it: the cpu base gets "add" level 3 (every column carries) right more often than level 1.
Experiments that need hard and easy prompts rank them by the model's measured pass rate
(notebook 05), not by level.
"""
from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field

_STEP_ADD = re.compile(r"[0-9][0-9]")              # one column sum, zero-padded
_NUM = r"(0|[1-9][0-9]{0,%d})"                    # a canonical ASCII number
_STEP_CD = re.compile(_NUM % 2 + r"([+\-*])" + _NUM % 2 + "=" + _NUM % 3)


@dataclass(frozen=True)
class Problem:
    prompt: str                 # what the policy sees, e.g. "347+285="
    answer: int                 # the correct final answer (the target for countdown)
    level: int                  # carries (add) or numbers - 1 (countdown); not a difficulty ranking
    operands: tuple = field(default=())


def _split_of(key: tuple) -> str:
    """Deterministic 80/20 train/held-out split from a problem's key (stable across runs)."""
    h = 0
    for v in key:
        h = (h * 1_000_003 + int(v) + 7) % 2_147_483_647
    return "heldout" if (h * 2_654_435_761) % 4_294_967_296 % 5 == 0 else "train"


class Task:
    """Common interface; subclasses define the generator, the demonstration and the verifiers."""

    name: str
    alphabet: str
    levels: tuple[int, ...]

    def _make(self, rng: random.Random, level: int) -> Problem:
        raise NotImplementedError

    def target(self, problem: Problem) -> str:
        """A correct demonstration completion (without EOS), used for SFT."""
        raise NotImplementedError

    def verify_steps(self, problem: Problem, text: str) -> list[bool]:
        raise NotImplementedError

    def _verify(self, problem: Problem, text: str) -> bool:
        raise NotImplementedError

    def max_new_tokens(self, level: int | None = None) -> int:
        """Longest demonstration at ``level`` (all levels if None) plus EOS and some slack."""
        raise NotImplementedError

    def verify(self, problem: Problem, text: str) -> float:
        """Outcome reward: 1.0 if ``text`` is a correct final answer, else 0.0. Never raises."""
        try:
            return 1.0 if self._verify(problem, str(text)) else 0.0
        except Exception:  # a verifier must survive any junk the policy writes
            return 0.0

    def problems(self, split: str = "train", n: int = 256, level: int | None = None,
                 seed: int = 0) -> list[Problem]:
        """``n`` problems from ``split`` ("train" or "heldout"), at ``level`` or a uniform mix."""
        if split not in ("train", "heldout"):
            raise ValueError(f"unknown split {split!r}: use 'train' or 'heldout'")
        if level is not None and level not in self.levels:
            raise ValueError(f"unknown level {level} for task {self.name!r}: levels are {self.levels}")
        rng = random.Random(f"{self.name}/{split}/{level}/{seed}")
        out = []
        while len(out) < n:
            lev = level if level is not None else rng.choice(self.levels)
            p = self._make(rng, lev)
            if _split_of((lev,) + p.operands + (p.answer,)) == split:
                out.append(p)
        return out


class AdditionTask(Task):
    """Column addition of two ``digits``-digit numbers; level = number of carries (0..digits).

    The working writes each column's sum (two digits, zero-padded, least significant column
    first), so every step sits at a fixed offset and is checkable on its own:
    ``347+285=`` -> ``12,13,06|632``.
    """

    name = "add"
    alphabet = "0123456789+=,|"

    def __init__(self, digits: int = 3):
        if not 1 <= digits <= 6:
            raise ValueError(f"digits must be between 1 and 6 (got {digits})")
        self.digits = digits
        self.levels = tuple(range(digits + 1))

    def _make(self, rng, level):
        # Choose which columns carry, then draw each column's digits to match (no rejection of
        # whole problems, so rare levels such as "every column carries" are as cheap as any).
        n = self.digits
        carrying = set(rng.sample(range(n), level))
        a = b = carry = 0
        for i in range(n):
            low = 1 if i == n - 1 else 0                       # no leading zero
            while True:
                da, db = rng.randint(low, 9), rng.randint(low, 9)
                if (da + db + carry >= 10) == (i in carrying):
                    break
            a, b = a + da * 10 ** i, b + db * 10 ** i
            carry = int(i in carrying)
        return Problem(prompt=f"{a}+{b}=", answer=a + b, level=level, operands=(a, b))

    @staticmethod
    def column_sums(a: int, b: int, n: int) -> list[int]:
        """Each column's digit sum plus the incoming carry, least significant first."""
        sums, carry = [], 0
        for i in range(n):
            s = (a // 10 ** i) % 10 + (b // 10 ** i) % 10 + carry
            sums.append(s)
            carry = s // 10
        return sums

    @classmethod
    def carries(cls, a: int, b: int, n: int) -> int:
        return sum(s >= 10 for s in cls.column_sums(a, b, n))

    def target(self, problem):
        a, b = problem.operands
        sums = self.column_sums(a, b, self.digits)
        return ",".join(f"{s:02d}" for s in sums) + f"|{problem.answer}"

    def max_new_tokens(self, level=None):
        return 3 * self.digits + (self.digits + 1) + 2   # working, answer, EOS + slack

    def verify_steps(self, problem, text):
        """One bool per column (``digits`` of them): field k of the working (the text before
        the first "|", split at ",") is exactly column k's sum as two ASCII digits. The
        working must have exactly ``digits`` fields: surplus fields make the last step wrong
        (so only a completely right working scores all True). Never raises."""
        a, b = problem.operands
        truth = self.column_sums(a, b, self.digits)
        try:
            working = str(text).split("|")[0].split(",")
        except Exception:
            working = []
        ok = []
        for i, s in enumerate(truth):
            w = working[i] if i < len(working) else ""
            ok.append(bool(_STEP_ADD.fullmatch(w)) and int(w) == s)
        if len(working) > len(truth):
            ok[-1] = False
        return ok

    def _verify(self, problem, text):
        parts = text.split("|")
        if len(parts) != 2:
            return False
        ans = parts[1]
        if not ans.isdigit() or not ans.isascii() or (len(ans) > 1 and ans[0] == "0"):
            return False
        return int(ans) == problem.answer


class MixedAdditionTask(AdditionTask):
    """``add`` with two answer formats: the full working or only ``|`` and the answer.

    Which format a problem's demonstration uses is fixed by a hash of its prompt
    (``short_share`` of them answer-only), so to the model it looks like a coin flip per
    prompt. The outcome verifier is ``add``'s: ``|632`` is right for ``347+285=``. The step
    verifier marks every column of an answer-only completion wrong (no working to check).
    """

    name = "add_mixed"

    def __init__(self, digits: int = 3, short_share: float = 0.5):
        super().__init__(digits)
        if not 0.0 <= short_share <= 1.0:         # NaN fails both comparisons
            raise ValueError(f"short_share must be in [0, 1] (got {short_share})")
        self.short_share = short_share

    def answer_only(self, problem: Problem) -> bool:
        """Whether ``problem``'s demonstration skips the working (a stable hash of the prompt)."""
        h = zlib.crc32(f"short/{problem.prompt}".encode()) / 2 ** 32    # in [0, 1)
        return h < self.short_share

    def target(self, problem):
        return f"|{problem.answer}" if self.answer_only(problem) else super().target(problem)


class CountdownTask(Task):
    name = "countdown"
    alphabet = "0123456789+-*=,>:"
    levels = (1, 2, 3)

    def _make(self, rng, level):
        while True:
            nums = [rng.randint(1, 9) for _ in range(level + 1)]
            steps = self._random_steps(rng, nums)
            if steps is not None and 0 < steps[-1][3] <= 99:
                prompt = ",".join(map(str, nums)) + f">{steps[-1][3]}:"
                return Problem(prompt=prompt, answer=steps[-1][3], level=level, operands=tuple(nums))

    @staticmethod
    def _random_steps(rng, nums):
        pool, steps = list(nums), []
        rng.shuffle(pool)
        acc = pool.pop()
        while pool:
            x, op = pool.pop(), rng.choice("+-*")
            a, b = (acc, x) if op != "-" or acc >= x else (x, acc)
            c = a + b if op == "+" else a - b if op == "-" else a * b
            if c > 999:
                return None
            steps.append((a, op, b, c))
            acc = c
        return steps

    def target(self, problem):
        # Re-create the generating steps deterministically from the problem itself.
        rng = random.Random(f"target/{problem.prompt}")
        for _ in range(10_000):
            steps = self._random_steps(rng, list(problem.operands))
            if steps and steps[-1][3] == problem.answer:
                return ",".join(f"{a}{op}{b}={c}" for a, op, b, c in steps)
        raise RuntimeError(f"no demonstration found for {problem.prompt}")  # pragma: no cover

    def max_new_tokens(self, level=None):
        lev = max(self.levels) if level is None else level
        return 9 * lev + 2

    def _check_steps(self, problem, text) -> tuple[list[bool], int | None]:
        pool = list(problem.operands)
        ok, last = [], None
        for step in str(text).split(",") if text else []:
            m = _STEP_CD.fullmatch(step)
            if not m:
                ok.append(False)
                continue
            a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
            right = a + b if op == "+" else a - b if op == "-" else a * b
            usable = a in pool and (b in pool and (a != b or pool.count(a) >= 2))
            good = usable and right == c and right >= 0
            if good:
                pool.remove(a)
                pool.remove(b)
                pool.append(c)
                last = c
            ok.append(good)
        return ok, last

    def verify_steps(self, problem, text):
        """One bool per written step (the text split at ","): the step is "a<op>b=c" with
        canonical ASCII numbers (a, b up to 3 digits, c up to 4), op one of + - *, c the
        true non-negative result, and a and b still in the pool (the prompt's numbers minus
        those used, plus earlier right results). Never raises."""
        try:
            return self._check_steps(problem, text)[0]
        except Exception:
            return []

    def _verify(self, problem, text):
        # every written step right (verify_steps) and the last result is the target
        ok, last = self._check_steps(problem, text)
        return bool(ok) and all(ok) and last == problem.answer


TASKS = {"add": AdditionTask, "add_mixed": MixedAdditionTask, "countdown": CountdownTask}


def get_task(name: str, **kwargs) -> Task:
    """The task called ``name`` ("add", "add_mixed" or "countdown"); kwargs go to its
    constructor (``digits`` for the two addition tasks)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: choose one of {sorted(TASKS)}")
    return TASKS[name](**kwargs)
