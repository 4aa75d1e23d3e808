"""One case of the run clinic: a failure practitioners report, reproduced on the arena.

A ``Case`` holds what a learner reads (the symptom in practitioners' words, a public report
of it, the diagnosis and the fix), what a grader needs (the failure and remedy labels from
the closed lists in ``refimpl.experiments.debugging.clinic``, and the metric that shows it) and how
to reproduce it: ``run(variant, seed)`` trains a small run on the arena and returns its
dashboard, for ``variant`` "broken" (the configuration that fails) or "fixed" (the same run
with the fix applied), and ``shows(dashboard)`` says whether the symptom is present.

A dashboard is what a training run logs, under TRL's metric names: a dict from metric name
("loss", "reward", "reward_std", "frac_reward_zero_std", "clip_ratio/region_mean", "kl",
"entropy", "completions/mean_length", "completions/clipped_ratio", "grad_norm",
"rewards/chosen", "rewards/margins", "logps/chosen", ...) to one float per logged step, with
"step" among them. Every list has the same length.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from refimpl.core.sft import base_seed, load_base

Dashboard = dict[str, list[float]]
VARIANTS = ("broken", "fixed")
_ARENAS: dict = {}


@dataclass(frozen=True)
class Case:
    """A failure of a GRPO or DPO run, reproduced broken and fixed.

    name: the case's id (snake_case), the key of ``refimpl.experiments.debugging.clinic.CASES``.
    title: the symptom as a practitioner would title an issue ("GRPO loss is 0").
    source: one public report of it, "owner/repo#number" or a paper ("arXiv:2503.20783").
    symptom, diagnosis, fix: one or two sentences each, for the notebook.
    failure, remedy: labels from the clinic's closed lists FAILURES and REMEDIES.
    panels: the dashboard metrics to plot, the one that shows the failure first.
    run: run(variant, seed) -> Dashboard, variant in VARIANTS; deterministic per seed.
    shows: shows(dashboard) -> bool, True when the dashboard has the symptom.
    """

    name: str
    title: str
    source: str
    symptom: str
    diagnosis: str
    fix: str
    failure: str
    remedy: str
    panels: tuple[str, ...]
    run: Callable[[str, int], Dashboard]
    shows: Callable[[Dashboard], bool]

    @property
    def read(self) -> str:
        """The metric a reader of the dashboard should look at first."""
        return self.panels[0]


def check_variant(variant: str) -> str:
    """Return ``variant`` or raise ValueError naming the choices."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    return variant


def dashboard(history: list[dict], keys: tuple[str, ...]) -> Dashboard:
    """The dashboard of a trainer's history: "step" and ``keys``, one float per row that has
    every key (rows missing one, such as a step-0 evaluation row, are skipped)."""
    rows = [r for r in history if all(k in r for k in ("step",) + tuple(keys))]
    if not rows:
        raise ValueError(f"no history row has every metric of {keys}")
    return {k: [float(r[k]) for r in rows] for k in ("step",) + tuple(keys)}


def mean(values: list[float]) -> float:
    """Mean of a non-empty list of finite floats (NaN is an error: a dashboard must be finite)."""
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"expected a non-empty list of finite floats, got {values!r}")
    return sum(values) / len(values)


def arena_base():
    """The arena's policy: the cpu base of ``$REFIMPL_BASE_SEED`` (default 0), loaded once per
    base seed and shared by every case module (runs train copies of it, never the base itself)."""
    seed = base_seed()
    if seed not in _ARENAS:
        _ARENAS[seed] = load_base("cpu", seed=seed, progress=False)
    return _ARENAS[seed]
