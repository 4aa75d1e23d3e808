"""Fuzz test of every verifier against its own docstring.

20,000 strings per task, drawn with a fixed seed: random text over the task's alphabet plus
look-alikes (non-ASCII digits, spaces, letters, extra delimiters), and small mutations of a
right completion (a leading zero, a non-ASCII digit, one character inserted, deleted or
replaced, a surplus column, a doubled delimiter). Each verifier must never raise and must
agree with a specification written from its docstring with string operations only (no
regular expressions): so it never accepts a non-canonical number or a wrong answer.
"""
import random

import pytest

from refimpl.core.rewards import prefix_verify, process_reward
from refimpl.core.tasks import AdditionTask, Problem, get_task

N_STRINGS = 20_000
LOOKALIKES = "\uff10\uff11\uff19\u0663\u06f7\u0966 a-|,=*+"   # full-width, Arabic-Indic, ...


def canonical(s: str, max_digits: int) -> bool:
    """A canonical ASCII number: digits 0-9 only, at most max_digits, no leading zero."""
    return (0 < len(s) <= max_digits and all(c in "0123456789" for c in s)
            and (s == "0" or s[0] != "0"))


# ---- the specifications, from the docstrings -------------------------------------------------

def add_verify_spec(p, text) -> float:
    parts = text.split("|")
    return float(len(parts) == 2 and parts[1] == str(p.answer))


def add_steps_spec(task, p, text) -> list:
    a, b = p.operands
    truth = [f"{s:02d}" for s in AdditionTask.column_sums(a, b, task.digits)]
    fields = text.split("|")[0].split(",")
    K = len(truth)
    return [k < len(fields) and fields[k] == truth[k] and (k < K - 1 or len(fields) == K)
            for k in range(K)]


def countdown_steps_spec(p, text) -> tuple:
    pool, ok, last = list(p.operands), [], None
    for step in (text.split(",") if text else []):
        left, eq, c = step.partition("=")
        parsed = None
        for i, ch in enumerate(left):
            if ch in "+-*" and canonical(left[:i], 3) and canonical(left[i + 1:], 3):
                parsed = int(left[:i]), ch, int(left[i + 1:])
        good = bool(eq) and canonical(c, 4) and parsed is not None
        if good:
            x, op, y = parsed
            value = x + y if op == "+" else x - y if op == "-" else x * y
            usable = x in pool and y in pool and (x != y or pool.count(x) >= 2)
            good = usable and value == int(c)
            if good:
                pool.remove(x)
                pool.remove(y)
                pool.append(value)
                last = value
        ok.append(good)
    return ok, last


def prefix_spec(task, p, text) -> float:
    written = text.split("|")[-1]
    digits = written == "" or all(c in "0123456789" for c in written)
    return 1.0 if digits and str(p.answer).startswith(written) else task.verify(p, text)


# ---- the strings -----------------------------------------------------------------------------

def _mutate(rng, s: str, alphabet: str) -> str:
    chars = alphabet + LOOKALIKES
    i = rng.randrange(len(s) + 1)
    kind = rng.randrange(7)
    if kind == 0:
        return s[:i] + rng.choice(chars) + s[i:]                       # insert
    if kind == 1 and s:
        return s[:i] + s[i + 1:]                                       # delete
    if kind == 2 and s:
        return s[:i] + rng.choice(chars) + s[i + 1:]                   # replace
    if kind == 3:                                                      # a leading zero
        starts = [j for j, c in enumerate(s) if c.isdigit() and (j == 0 or not s[j - 1].isdigit())]
        j = rng.choice(starts) if starts else 0
        return s[:j] + "0" + s[j:]
    if kind == 4:                                                      # a non-ASCII digit
        digits = [j for j, c in enumerate(s) if c in "0123456789"]
        if digits:
            j = rng.choice(digits)
            return s[:j] + rng.choice(["\uff10", "\u0660", "\u06f0"])[0] + s[j + 1:]
        return s
    if kind == 5:                                                      # a surplus column
        cut = s.find("|")
        return s[:cut] + f",{rng.randrange(100):02d}" + s[cut:] if cut >= 0 else s + ",00"
    return s.replace(rng.choice("|,="), rng.choice(["||", ",,", "=="]), 1)


def fuzz_strings(task, n: int, seed: int = 0):
    """(problem, text) pairs: a third random text, two thirds mutated right answers."""
    rng = random.Random(seed)
    problems = task.problems("train", 64, seed=seed)
    chars = task.alphabet + LOOKALIKES
    for k in range(n):
        p = problems[k % len(problems)]
        if k % 3 == 0:
            text = "".join(rng.choice(chars) for _ in range(rng.randrange(0, 20)))
        else:
            text = task.target(p)
            for _ in range(rng.randrange(1, 3)):
                text = _mutate(rng, text, task.alphabet)
        yield p, text


# ---- the tests -------------------------------------------------------------------------------

def test_add_verifiers_follow_their_docstrings():
    task = get_task("add")
    accepted = 0
    for p, text in fuzz_strings(task, N_STRINGS):
        v, steps = task.verify(p, text), task.verify_steps(p, text)
        assert v == add_verify_spec(p, text), (p.prompt, text)
        assert steps == add_steps_spec(task, p, text), (p.prompt, text, steps)
        r = process_reward(task, p, text)
        assert r == (sum(steps) + v) / (len(steps) + 1)
        assert (r == 1.0) == (text == task.target(p)), (p.prompt, text)  # 1.0: all right only
        assert prefix_verify(task, p, text) == prefix_spec(task, p, text), (p.prompt, text)
        accepted += v == 1.0
    assert 0 < accepted < N_STRINGS / 2   # the strings reach both sides of the verifier


def test_countdown_verifiers_follow_their_docstrings():
    task = get_task("countdown")
    accepted = 0
    for p, text in fuzz_strings(task, N_STRINGS):
        ok, last = countdown_steps_spec(p, text)
        assert task.verify_steps(p, text) == ok, (p.prompt, text)
        v = task.verify(p, text)
        assert v == float(bool(ok) and all(ok) and last == p.answer), (p.prompt, text)
        assert 0.0 <= process_reward(task, p, text) <= 1.0
        accepted += v == 1.0
    assert 0 < accepted < N_STRINGS / 2


@pytest.mark.parametrize("text, outcome, steps", [
    ("12,13,06|632", 1.0, [True, True, True]),
    ("\uff11\uff12,\uff11\uff13,\uff10\uff16|\uff16\uff13\uff12", 0.0, [False, False, False]),
    ("12,13,06,99|632", 1.0, [True, True, False]),     # a surplus column: not a full score
    ("12,13,06|0632", 0.0, [True, True, True]),        # a leading zero
    ("12,13,06|63\u0662", 0.0, [True, True, True]),    # an Arabic-Indic digit
])
def test_add_cases_from_the_issue(text, outcome, steps):
    task = get_task("add")
    p = Problem("347+285=", 632, 2, (347, 285))
    assert task.verify(p, text) == outcome
    assert task.verify_steps(p, text) == steps
    assert (process_reward(task, p, text) == 1.0) == (text == "12,13,06|632")


@pytest.mark.parametrize("text", ["\u06f7+9=16,16+4=20,20*4=\u06f80", "7+09=16,16+4=20,20*4=80",
                                  "7+9=16,16+4=20,20*4=080", "7+9=16,16+4=20,20*4=80,"])
def test_countdown_refuses_non_canonical_numbers(text):
    task = get_task("countdown")
    p = Problem("7,9,4,4>80:", 80, 3, (7, 9, 4, 4))
    assert task.verify(p, text) == 0.0
    assert task.verify(p, "7+9=16,16+4=20,20*4=80") == 1.0
