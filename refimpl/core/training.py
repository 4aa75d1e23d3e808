"""What every trainer shares: the result type, the held-out evaluation and the clock.

Each method's trainer (``train_dpo``, ``train_grpo``, ``train_reinforce``, ``train_ppo``) is a
short loop over its pure loss function and returns a ``TrainResult``. Its ``history`` is a list
of dicts, one per step, with at least ``step``, ``time_s`` (wall clock since the start),
``samples`` (completions generated, or preference pairs consumed, so far) and, every
``eval_every`` steps (and at step 0), ``heldout_acc``.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

import torch

from refimpl.core import checks
from refimpl.core.evaluation import accuracy
from refimpl.core.utils import seed_everything


@dataclass
class TrainResult:
    policy: object                         # the trained GPT
    history: list = field(default_factory=list)

    def curve(self, key: str) -> tuple[list, list]:
        """(steps, values) for the rows that have ``key``."""
        rows = [r for r in self.history if key in r]
        return [r["step"] for r in rows], [r[key] for r in rows]

    def last(self, key: str):
        """The most recent value of ``key`` (None if never logged)."""
        for r in reversed(self.history):
            if key in r:
                return r[key]
        return None


class Clock:
    """Wall time since construction, excluding the time spent inside ``paused()`` blocks
    (held-out evaluation is not training compute)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.excluded = 0.0

    def __call__(self) -> float:
        return time.perf_counter() - self.t0 - self.excluded

    def paused(self):
        clock = self

        class _Pause:
            def __enter__(self):
                self.t = time.perf_counter()

            def __exit__(self, *exc):
                clock.excluded += time.perf_counter() - self.t
        return _Pause()


def adamw(params, lr: float, weight_decay: float = 0.0) -> torch.optim.AdamW:
    """The optimiser of every trainer: AdamW with PyTorch's fused kernel (one pass over all
    parameters instead of a dozen small ops per tensor; about 5x faster at this model size)."""
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)


def check_fields(cfg, ints: dict, positive=(), why: dict | None = None, *, nonnegative=(),
                 intervals: dict | None = None, choices: dict | None = None,
                 flags=(), optional=()) -> None:
    """Raise TypeError or ValueError naming the first bad field of the config dataclass ``cfg``.

    ints: {field: lowest allowed value} for fields that must be ints (bools refused);
    positive / nonnegative: fields that must be finite numbers > 0 / >= 0;
    intervals: {field: (low, high, closed)}, closed as in refimpl.core.checks.interval ("[)" ...);
    choices: {field: allowed names}; flags: fields that must be bools; optional: fields for which None is also allowed;
    why: {field: reason appended to its message}. NaN and inf fail every numeric check.
    """
    why = why or {}
    for name, v, test in _field_tests(cfg, ints, positive, nonnegative, intervals or {},
                                      choices or {}, flags, optional):
        test(f"{type(cfg).__name__}.{name}", v, why.get(name, "").strip(" ()"))


def _field_tests(cfg, ints, positive, nonnegative, intervals, choices, flags, optional):
    """(field, value, check) for every field check_fields is asked to look at."""
    tests = [(n, lambda k, v, h, low=low: checks.count(k, v, low, h)) for n, low in ints.items()]
    tests += [(n, checks.positive) for n in positive]
    tests += [(n, lambda k, v, h: checks.positive(k, v, h, allow_zero=True)) for n in nonnegative]
    tests += [(n, lambda k, v, h, a=a: checks.interval(k, v, *a, hint=h))
              for n, a in intervals.items()]
    tests += [(n, lambda k, v, h, o=o: checks.one_of(k, v, o)) for n, o in choices.items()]
    tests += [(n, lambda k, v, h: checks.flag(k, v)) for n in flags]
    for name, test in tests:
        v = getattr(cfg, name)
        if not (v is None and name in optional):
            yield name, v, test


def start_policy(base, policy, seed: int):
    """Seed every RNG and get the policy ready for an online trainer.

    Returns (policy, device, gen): ``policy`` (``base.policy()``, a trainable copy of the base,
    when None is given) in train mode, its device, and the sampling generator seeded with
    ``seed`` on that device.
    """
    gen = seed_everything(seed)
    policy = base.policy() if policy is None else policy
    policy.train()
    device = next(policy.parameters()).device
    if device.type != "cpu":
        gen = torch.Generator(device=device).manual_seed(seed)
    return policy, device, gen


def problem_sets(base, cfg, heldout=None):
    """(heldout, pool, rng) of an online trainer whose config has eval_every, eval_problems,
    train_pool, level and seed: the held-out problems (``base.heldout(cfg.eval_problems)``
    unless given; None when eval_every <= 0), the fixed pool of training prompts, and the
    ``random.Random(cfg.seed)`` that draws each step's prompts from it."""
    if heldout is None and cfg.eval_every > 0:
        heldout = base.heldout(cfg.eval_problems)
    pool = base.train_problems(cfg.train_pool, level=cfg.level, seed=cfg.seed)
    return heldout, pool, random.Random(cfg.seed)


def eval_due(step: int, cfg) -> bool:
    """Whether a trainer measures held-out accuracy after ``step``: every ``cfg.eval_every``
    steps (step 0 included) and after the last step ``cfg.steps``; never if eval_every is 0."""
    return cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps)


def log_heldout(row: dict, cfg, clock: Clock, evaluate) -> bool:
    """The evaluation step every trainer shares: when ``eval_due(row["step"], cfg)``, call
    ``evaluate()`` with the training clock paused and add what it returns ({name: value}, at
    least ``heldout_acc``) to ``row``. Returns whether it ran."""
    if not eval_due(row["step"], cfg):
        return False
    with clock.paused():
        row.update(evaluate())
    return True


def heldout_accuracy(policy, base, problems) -> float:
    """Greedy held-out accuracy of ``policy`` on ``problems`` with the base's tokenizer/task."""
    return accuracy(policy, base.tokenizer, base.task, problems)


def heldout_row(policy, base, problems) -> dict:
    """The evaluation of most trainers, ``{"heldout_acc": ...}``; a trainer passes
    ``partial(heldout_row, policy, base, heldout)`` as its ``evaluate``."""
    return {"heldout_acc": heldout_accuracy(policy, base, problems)}


def start_history(cfg, clock: Clock, evaluate, **counters) -> list[dict]:
    """Every trainer's history starts with the row of step 0: no samples yet (and zero for
    each of ``counters``), evaluated as every later row is (``log_heldout``)."""
    row0 = {"step": 0, "time_s": 0.0, "samples": 0, **counters}
    log_heldout(row0, cfg, clock, evaluate)
    return [row0]


class StepBar:
    """The progress bar of every training loop: ``for step in StepBar(steps, "GRPO"): ...``.

    Yields the steps 1..total. A loop that stops early (``break``) still ends with a green
    bar at the number of steps it ran: ``close()`` sets the bar's total to the steps reached
    (tqdm turns a bar red when it closes short of its total, and iterating a tqdm object
    directly marks it red on ``break``). In a notebook the bar's plain-text form, what a
    notebook shows before its widgets are rendered, is refreshed on ``close()`` too, so a
    stored notebook shows the final count rather than ``0/total``.

    total: the most steps the loop may run; desc: the bar's label; enabled: False for no bar.
    """

    def __init__(self, total: int, desc: str, enabled: bool = True):
        from tqdm.auto import tqdm
        from tqdm.notebook import tqdm as tqdm_notebook
        self.reached, self._handle = 0, None
        self._widget = in_notebook = enabled and issubclass(tqdm, tqdm_notebook)
        self.bar = tqdm(total=total, desc=desc, disable=not enabled,
                        **({"display": False} if in_notebook else {}))
        if in_notebook:
            from IPython.display import display
            self._handle = display(self.bar.container, display_id=True)
            self.bar.displayed = True

    def __iter__(self):
        for step in range(1, self.bar.total + 1):
            self.reached = step
            yield step
            self.bar.update(1)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more steps done (for loops that do not iterate the bar)."""
        self.reached += n
        self.bar.update(n)

    def set_postfix(self, **kw) -> None:
        self.bar.set_postfix(**kw)

    def close(self) -> None:
        """End the bar at the steps reached, green (also after an early stop)."""
        bar = self.bar
        bar.n = max(bar.n, self.reached)
        if bar.n < bar.total:
            bar.total = bar.n
            if self._widget:
                bar.container.children[1].max = bar.n    # the widget keeps its own maximum
        bar.refresh()
        bar.close()
        if self._handle is not None:
            self._handle.update(bar.container)
