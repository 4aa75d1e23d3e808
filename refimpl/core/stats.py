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

Runs on one base policy are correlated (they share its starting weights), so the n paired
differences are K clusters (bases), not n independent draws. Two intervals respect them. The
t interval over the K per-base means (``cluster_t_interval``; Cameron & Miller 2015, "A
Practitioner's Guide to Cluster-Robust Inference", sec. II; the "summary statistics" approach)

    m_k = mean of the d_i of base k,   m_bar = sum_k m_k / K,
    m_bar +- t_{1 - alpha/2, K - 1} * s_m / sqrt(K),      s_m^2 = sum_k (m_k - m_bar)^2 / (K - 1),

and a two-level percentile bootstrap (``two_level_bootstrap``; Davison & Hinkley 1997, sec.
3.8): draw K bases with replacement, then within each drawn base its n_k differences with
replacement, and take the mean of the K resampled base means. With one run per base both are
the pooled intervals above; when runs on a base agree with each other more than with runs on
another base, they are wider than the pooled ones, which treat the n runs as independent.

A claim carries two verdicts (shared/EVIDENCE.md, sec. 5) in two vocabularies:
``TEST_VERDICTS`` for the project's declared test (``test_verdict``: "contradicted" with no
"(erratum)", and an interval of zero width decides nothing) and ``ARTICLE_VERDICTS`` for the
article's sentence. ``VERDICTS`` and ``verdict`` stay the vocabulary of the committed records.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

VERDICTS = ("holds", "holds with a caveat", "contradicted (erratum)", "not shown")
TEST_VERDICTS = ("holds", "holds with a caveat", "not shown", "contradicted")
ARTICLE_VERDICTS = ("supported", "refuted", "nuanced")


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


def _check_clusters(diffs, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d, labels, index): the checked differences (n,), the K sorted cluster labels (K,) and
    each difference's cluster number in 0..K-1 (n,); ValueError unless K >= 2."""
    d = _check_diffs(diffs)
    c = np.asarray(clusters)
    if c.ndim != 1 or c.size != d.size:
        raise ValueError(f"diffs and clusters must be 1-D and of one length, got {d.size} "
                         f"differences and clusters of shape {c.shape}")
    labels, index = np.unique(c, return_inverse=True)                     # (K,), (n,)
    if labels.size < 2:
        raise ValueError(f"need at least 2 clusters (bases) for a cluster-aware interval, "
                         f"got {labels.size}: {labels.tolist()}")
    return d, labels, index


def cluster_t_interval(diffs, clusters, level: float = 0.95) -> dict:
    """Student-t interval over the K per-cluster means m_k (module docstring; df = K - 1).

    diffs: (n,) paired differences; clusters: (n,) the cluster (base) of each. Returns
    {mean, lo, hi, se, n (= K), n_runs (= n), level, cluster_means: {str(label): m_k}};
    mean is the unweighted mean of the m_k. With one difference per cluster it is
    ``t_interval(diffs)``.
    """
    d, labels, index = _check_clusters(diffs, clusters)
    _check_level(level)
    m = np.bincount(index, weights=d) / np.bincount(index)                 # (K,)
    ci = t_interval(m, level)
    return {**ci, "n_runs": int(d.size),
            "cluster_means": {str(k): float(v) for k, v in zip(labels.tolist(), m)}}


def two_level_bootstrap(diffs, clusters, level: float = 0.95, n_boot: int = 10_000,
                        seed: int = 0) -> dict:
    """Percentile interval of the two-level bootstrap (module docstring): clusters, then the
    differences within each drawn cluster, both with replacement; the statistic is the mean of
    the K resampled cluster means. Returns {mean (= mean of the m_k), lo, hi, n (= K), n_runs,
    level}.

    The draws, in this order: clusters ``rng.integers(0, K, (n_boot, K))`` (in sorted label
    order), then uniforms u = ``rng.random((n_boot, K, n_max))``; the j-th resampled difference
    of a drawn cluster with n_k differences (j < n_k) is its difference number floor(u n_k),
    in their order in ``diffs``.
    """
    d, labels, index = _check_clusters(diffs, clusters)
    _check_level(level)
    if not (isinstance(n_boot, int) and n_boot >= 100):
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    sizes = np.bincount(index)                                             # (K,)
    K, n_max = labels.size, int(sizes.max())
    table = np.zeros((K, n_max))                                           # (K, n_max), 0-padded
    for k in range(K):
        table[k, :sizes[k]] = d[index == k]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, K, size=(n_boot, K))                            # (n_boot, K)
    n_k = sizes[pick][..., None]                                           # (n_boot, K, 1)
    j = np.minimum((rng.random((n_boot, K, n_max)) * n_k).astype(int), n_k - 1)  # (n_boot, K, n_max)
    used = np.arange(n_max) < n_k                                          # (n_boot, K, n_max)
    values = table[pick[..., None], j] * used                              # (n_boot, K, n_max)
    stat = (values.sum(-1) / n_k[..., 0]).mean(-1)                         # (n_boot,)
    lo, hi = np.quantile(stat, [(1 - level) / 2, (1 + level) / 2])
    mean = float((np.bincount(index, weights=d) / sizes).mean())
    return {"mean": mean, "lo": float(lo), "hi": float(hi), "n": int(K), "n_runs": int(d.size),
            "level": level}


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


def test_verdict(ci: dict, predicted: int) -> str:
    """The project's test of a claim in ``TEST_VERDICTS``' words: ``verdict`` of the interval
    ``ci`` ({lo, hi}), with "contradicted" for "contradicted (erratum)" (an erratum is a word
    about the article's sentence, not about the test); an interval of zero or non-finite width
    decides nothing: "not shown". ("holds with a caveat" is added by the claim, not here.)"""
    v = verdict(ci, predicted)
    width = ci["hi"] - ci["lo"]
    if not (math.isfinite(width) and width != 0):
        return "not shown"
    return "contradicted" if v == "contradicted (erratum)" else v


test_verdict.__test__ = False   # a library function, not a test, wherever it is imported


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
