"""Paired confidence intervals and the verdict vocabulary of the claims study.

Every trained comparison in the study is *paired*: the treatment and the control run on the
same base policy with the same run seed, so the quantity of interest is the per-pair
difference d_i = treatment_i - control_i (i over bases x run seeds). Its mean has the
Student-t interval (e.g. Wasserman 2004, "All of Statistics", sec. 10.4)

    d_bar +- t_{1 - alpha/2, n - 1} * s_d / sqrt(n),      s_d^2 = sum_i (d_i - d_bar)^2 / (n - 1),

which is exact when the d_i are i.i.d. normal and a good approximation for n >= 10. A
percentile bootstrap over the same d_i (``bootstrap_interval``) is the assumption-light check
beside it; the study reports the t interval and stores both.

A verdict follows from the interval alone (shared/EVIDENCE.md, sec. 5), with the direction the
article predicts given as ``predicted = +1`` (treatment > control) or ``-1``:

    holds          the interval excludes 0 on the predicted side
    contradicted   the interval excludes 0 on the other side (an erratum)
    not shown      the interval contains 0 at this budget and replicate count

"holds with a caveat" is "holds" plus a measured condition that limits it; the study's claim
declarations add the caveat, never the statistics.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

VERDICTS = ("holds", "holds with a caveat", "contradicted (erratum)", "not shown")


def _check_diffs(diffs) -> np.ndarray:
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise ValueError(f"need a 1-D sequence of at least 2 paired differences, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("paired differences must be finite (a run returned NaN or inf)")
    return d


def _check_level(level: float) -> None:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be a probability in (0, 1), e.g. 0.95; got {level!r}")


def t_interval(diffs, level: float = 0.95) -> dict:
    """Mean of the paired differences with its Student-t confidence interval.

    diffs: (n,) paired differences treatment - control, n >= 2. Returns
    {mean, lo, hi, se, n, level}; se = s_d / sqrt(n). Zero spread gives lo = hi = mean.
    """
    d = _check_diffs(diffs)
    _check_level(level)
    n = d.size
    se = float(d.std(ddof=1) / math.sqrt(n))
    half = float(_st.t.ppf(0.5 + level / 2, df=n - 1)) * se
    mean = float(d.mean())
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "se": se, "n": n, "level": level}


def bootstrap_interval(diffs, level: float = 0.95, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Percentile bootstrap interval of the mean paired difference (Efron & Tibshirani 1993,
    ch. 13): resample the n differences with replacement ``n_boot`` times. Returns
    {mean, lo, hi, n, level}."""
    d = _check_diffs(diffs)
    _check_level(level)
    if not (isinstance(n_boot, int) and n_boot >= 100):
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)   # (n_boot,)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "n": d.size, "level": level}


def se_of_difference(se1: float, se2: float) -> float:
    """Standard error of the difference of two INDEPENDENT estimates: sqrt(se1^2 + se2^2)."""
    for name, v in (("se1", se1), ("se2", se2)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return math.sqrt(se1 ** 2 + se2 ** 2)


def verdict(ci: dict, predicted: int) -> str:
    """The verdict of a paired comparison from its interval ``ci`` ({lo, hi}) and the sign the
    article predicts (+1: treatment > control, -1: treatment < control)."""
    if predicted not in (1, -1):
        raise ValueError(f"predicted must be +1 or -1, got {predicted!r}")
    lo, hi = predicted * ci["lo"], predicted * ci["hi"]
    lo, hi = min(lo, hi), max(lo, hi)
    if lo > 0:
        return "holds"
    if hi < 0:
        return "contradicted (erratum)"
    return "not shown"


def seeds_needed(ci: dict, level: float = 0.95) -> int | None:
    """Rough number of paired runs at which an interval of this spread would exclude zero, if
    the mean difference stayed where it is: n with t * s_d / sqrt(n) < |mean| (normal
    approximation). None when the mean is zero."""
    if ci["mean"] == 0:
        return None
    s_d = ci["se"] * math.sqrt(ci["n"])
    z = float(_st.norm.ppf(0.5 + level / 2))
    return max(ci["n"], math.ceil((z * s_d / abs(ci["mean"])) ** 2) + 1)


def sign_test(before, after) -> dict:
    """Problem-by-problem comparison of two graders' pass/fail lists on the SAME problems.

    ``before`` and ``after``: sequences of bools of one length (problem i solved or not). Only
    discordant problems count: ``gained`` (solved after, not before) and ``lost`` (the other
    way). Under "no change" gained - lost has mean 0 and variance gained + lost (each discordant
    problem is a fair coin: the sign test, normal approximation), so
    z = (gained - lost) / sqrt(gained + lost); |z| > 2 is a difference beyond noise at about
    the 5% level. Returns {gained, lost, z}; z is 0.0 when no problem changed.
    """
    before, after = [bool(b) for b in before], [bool(a) for a in after]
    if len(before) != len(after) or not before:
        raise ValueError(f"before and after must be non-empty and of one length, got "
                         f"{len(before)} and {len(after)}")
    gained = sum(a and not b for b, a in zip(before, after))
    lost = sum(b and not a for b, a in zip(before, after))
    z = (gained - lost) / math.sqrt(gained + lost) if gained + lost else 0.0
    return {"gained": gained, "lost": lost, "z": z}
