"""What every trainer shares: the result type, the registry row, the evaluation and the clock.

Each method's trainer (``train_dpo``, ``train_grpo``, ``train_reinforce``, ``train_ppo``, and
the scorers' ``train_reward_model``, ``train_prm``) has the one signature
``train_x(base, cfg=None, *, <its own inputs>, progress=True, heldout=None) -> TrainResult``
(a short loop over its pure loss function). A policy trainer's ``history`` is a list of dicts,
one per step, with at least ``step``, ``time_s`` (wall clock since the start), ``samples``
(completions generated so far: sampled by an online trainer, or generated to build an offline
trainer's data) and, every ``eval_every`` steps (and at step 0), ``heldout_acc``.

Each trainer module also declares its registry row(s) (``Method``, ``OfflineData``) beside its
trainer; ``refimpl.methods.registry`` collects them.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from refimpl.core import checks
from refimpl.core.evaluation import accuracy
from refimpl.core.utils import seed_everything


@dataclass
class TrainResult:
    """What every trainer returns.

    model: the trained network (TRL's word): the policy GPT of a policy trainer, the scorer of
        ``train_reward_model`` (a RewardModel) and ``train_prm`` (a ProcessRewardModel);
    history: one dict per logged step (module docstring; the PRM: its one metrics row);
    critic: PPO's trained ValueModel (None for every other trainer).
    """

    model: object
    history: list = field(default_factory=list)
    critic: object = None

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


@dataclass(frozen=True)
class OfflineData:
    """How an offline method of the registry gets its data for a head-to-head run, and what
    the data costs; ``refimpl.experiments.head_to_head.compare`` knows offline methods through
    this alone, so another offline method (KTO, say) is one more ``Method`` row with its own.

    what: the data's name, as a record's note shows it ("preference pairs");
    arg: the trainer's keyword for the data (``train_dpo(..., pairs=...)``), which is also the
        history key of the items consumed so far (DPO's ``pairs``); the data has a ``len``
        and the config a ``batch_size`` (items per step) and an ``eval_at`` (the steps after
        which it is evaluated, ``eval_due``);
    sequences: completions in one item of the data (a preference pair: 2, chosen and rejected);
    make: ``make(base, cc, seed, n_prompts) -> data or None``: the data built from base
        samples, ``cc.group_size`` on each of ``n_prompts`` training prompts (``cc``: a
        ``CompareConfig``); None when nothing could be formed;
    tokens: ``tokens(data) -> float``: mean completion tokens of one sequence of the data;
    flops: ``flops(data, n_generated, N, L) -> float``: FLOPs of making the data once
        (sampling ``n_generated`` completions, and what the trainer computes once on it) for
        a model of N parameters and L tokens per sequence.
    """

    what: str
    arg: str
    sequences: int
    make: Callable
    tokens: Callable
    flops: Callable


@dataclass(frozen=True)
class Method:
    """One training method of the registry (``refimpl.methods.registry``), declared in its
    trainer's module beside the trainer.

    name: the key learners type (``--methods dpo,grpo``); label: as tables and legends show it;
    signal: what its update learns from; config: its trainer's config dataclass;
    trainer: ``trainer(base, cfg, *, progress, heldout, [<offline.arg>=data]) -> TrainResult``;
    study_fields: ``fn(cc) -> dict`` of the config fields a study run sets from ``cc`` (a
        ``refimpl.experiments.head_to_head.compare.CompareConfig``, or any config with the
        fields it reads, such as C3's ``CoverageRunConfig``: B and G);
    flops: ``fn(cfg, N, L, N_critic) -> FLOPs`` of one update step (N parameters, L tokens per
        sequence, N_critic parameters of a critic);
    offline: None for an online method (it samples from the current policy while it trains);
        an offline method's data (``OfflineData``: drawn once from the base).
    """

    name: str
    label: str
    signal: str
    config: type
    trainer: Callable
    study_fields: Callable
    flops: Callable
    offline: OfflineData | None = None

    @property
    def online(self) -> bool:
        """Whether the method samples from the current policy while it trains."""
        return self.offline is None

    def make_config(self, cc, **common):
        """The trainer config of one run of the study ``cc``; ``common``: steps, seed, ..."""
        cfg = self.config(**common, **self.study_fields(cc))
        return replace(cfg, **cc.overrides.get(self.name, {}))

    def train(self, base, cfg, *, heldout, data=None, progress: bool = False):
        """Train from ``base`` with ``cfg``, judged on ``heldout`` (a list of problems); an
        offline method learns from ``data`` (None: its trainer builds its own)."""
        kw = {} if self.online else {self.offline.arg: data}
        return self.trainer(base, cfg, progress=progress, heldout=heldout, **kw)


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
    steps (step 0 included) and after the last step ``cfg.steps``; never if eval_every is 0.
    A config with a non-empty ``eval_at`` (explicit steps; DPO's, which the head-to-head sets
    to the online methods' share of the budget, ``eval_steps_at``) is evaluated at those."""
    at = getattr(cfg, "eval_at", ())
    if at:
        return step in at
    return cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps)


def eval_steps_at(fractions, steps: int) -> tuple:
    """The steps of a run of ``steps`` steps nearest to each share of it in ``fractions``
    (each in [0, 1]), sorted and without repeats: an ``eval_at`` schedule that evaluates a run
    at the same shares of its length as another run of a different length (at most
    len(fractions) steps, rounded half up)."""
    if any(not 0 <= f <= 1 for f in fractions):
        raise ValueError(f"fractions must lie in [0, 1], got {list(fractions)}")
    return tuple(sorted({min(steps, math.floor(f * steps + 0.5)) for f in fractions}))


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
    each of ``counters``), evaluated as every later row is (``log_heldout``). ``counters``:
    {history key: its value at step 0}, usually 0; an offline trainer passes ``samples``, the
    completions generated for its data before step 0."""
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
