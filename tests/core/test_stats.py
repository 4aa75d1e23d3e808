"""Paired intervals and verdicts of the claims study (refimpl/core/stats.py).

Checked against values computed by hand, a slow bootstrap, and the coverage of the t interval
on simulated normal data (an interval that is too narrow would fail the coverage test).
"""
import math
import random

import numpy as np
import pytest
from scipy import stats as st

from refimpl.core import stats


def test_t_interval_known_values():
    # d = 1..5: mean 3, s = sqrt(2.5), se = sqrt(0.5), t_{0.975, 4} = 2.7764451
    ci = stats.t_interval([1, 2, 3, 4, 5])
    half = 2.7764451 * math.sqrt(0.5)
    assert ci["mean"] == 3 and ci["n"] == 5
    assert ci["lo"] == pytest.approx(3 - half, abs=1e-6)
    assert ci["hi"] == pytest.approx(3 + half, abs=1e-6)


def test_t_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(2000):
        ci = stats.t_interval(rng.normal(0.3, 1.0, size=15))
        hits += ci["lo"] <= 0.3 <= ci["hi"]
    assert 0.935 < hits / 2000 < 0.965        # binomial sd 0.0049 around 0.95


def test_bootstrap_agrees_with_t_on_normal_data():
    d = np.random.default_rng(1).normal(0.05, 0.02, size=30)
    t, b = stats.t_interval(d), stats.bootstrap_interval(d, n_boot=20_000)
    assert b["mean"] == pytest.approx(t["mean"])
    assert b["lo"] == pytest.approx(t["lo"], abs=0.003) and b["hi"] == pytest.approx(t["hi"], abs=0.003)


def test_bootstrap_matches_a_slow_loop():
    d = np.array([0.1, -0.05, 0.2, 0.0, 0.07])
    fast = stats.bootstrap_interval(d, n_boot=500, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 5, size=(500, 5))
    slow = sorted(sum(d[j] for j in row) / 5 for row in idx)
    assert fast["lo"] == pytest.approx(np.quantile(slow, 0.025))
    assert fast["hi"] == pytest.approx(np.quantile(slow, 0.975))


@pytest.mark.parametrize("lo, hi, predicted, expected", [
    (0.01, 0.2, 1, "holds"), (-0.2, -0.01, 1, "contradicted (erratum)"),
    (-0.01, 0.2, 1, "not shown"), (-0.2, -0.01, -1, "holds"), (0.01, 0.2, -1, "contradicted (erratum)"),
])
def test_verdict_follows_the_interval(lo, hi, predicted, expected):
    assert stats.verdict({"lo": lo, "hi": hi}, predicted) == expected
    assert expected in stats.VERDICTS


def test_se_of_a_difference_of_independent_estimates():
    assert stats.se_of_difference(0.03, 0.04) == pytest.approx(0.05)


def test_seeds_needed_shrinks_the_interval_below_the_mean():
    ci = stats.t_interval([0.02, -0.01, 0.03, 0.0, 0.01])
    n = stats.seeds_needed(ci)
    s_d = ci["se"] * math.sqrt(ci["n"])
    assert 1.96 * s_d / math.sqrt(n) < abs(ci["mean"]) <= 1.96 * s_d / math.sqrt(n - 2)


@pytest.mark.parametrize("bad", [[1.0], [1.0, float("nan")], [[1.0, 2.0]], []])
def test_bad_differences_are_refused(bad):
    with pytest.raises(ValueError, match="paired differences"):
        stats.t_interval(bad)


@pytest.mark.parametrize("level", [0, 1, float("nan"), "0.95"])
def test_bad_level_is_refused(level):
    with pytest.raises(ValueError, match="level"):
        stats.t_interval([1.0, 2.0], level)


def test_bad_predicted_sign_is_refused():
    with pytest.raises(ValueError, match="predicted"):
        stats.verdict({"lo": 0.1, "hi": 0.2}, 0)


def test_sign_test_counts_only_discordant_problems():
    before = [True, True, False, False, True, False]
    after = [True, False, True, True, True, False]
    out = stats.sign_test(before, after)
    assert (out["gained"], out["lost"]) == (2, 1)
    assert out["z"] == pytest.approx(1 / math.sqrt(3))
    assert stats.sign_test(after, before)["z"] == pytest.approx(-out["z"])
    assert stats.sign_test([True, False], [True, False]) == {"gained": 0, "lost": 0, "z": 0.0}


def test_sign_test_matches_a_simulated_null():
    # Under no change the z of many random discordant splits has mean ~0 and sd ~1.
    rng = np.random.default_rng(0)
    zs = [stats.sign_test(rng.random(200) < 0.5, rng.random(200) < 0.5)["z"] for _ in range(2000)]
    assert abs(np.mean(zs)) < 0.1 and abs(np.std(zs) - 1) < 0.1


def test_sign_test_rejects_lists_of_different_lengths():
    with pytest.raises(ValueError, match="one length"):
        stats.sign_test([True], [True, False])


# --- cluster-aware intervals: runs on one base are a cluster, not independent draws ---------

def clustered(rng, bases=4, runs=5, between=1.0, within=0.1, mean=0.2):
    """Paired differences with a large per-base offset (sd ``between``) and a small per-run
    noise (sd ``within``): high within-base correlation. Returns (diffs (bases*runs,), bases)."""
    offsets = rng.normal(0, between, size=bases)                            # (bases,)
    d = mean + offsets[:, None] + rng.normal(0, within, size=(bases, runs))  # (bases, runs)
    return d.ravel(), np.repeat(np.arange(bases), runs)


def test_cluster_t_interval_known_values():
    # base means 0.2, 0.2, 0.3 (unequal sizes: the pooled mean 0.2429 is not the answer)
    d = [0.1, 0.3, 0.0, 0.2, 0.4, -0.1, 0.7]
    c = [0, 0, 1, 1, 1, 2, 2]
    m = np.array([0.2, 0.2, 0.3])
    half = st.t.ppf(0.975, df=2) * m.std(ddof=1) / math.sqrt(3)
    ci = stats.cluster_t_interval(d, c)
    assert ci["mean"] == pytest.approx(m.mean())
    assert ci["lo"] == pytest.approx(m.mean() - half) and ci["hi"] == pytest.approx(m.mean() + half)
    assert ci["se"] == pytest.approx(m.std(ddof=1) / math.sqrt(3))
    assert (ci["n"], ci["n_runs"], ci["level"]) == (3, 7, 0.95)
    assert ci["cluster_means"] == pytest.approx({"0": 0.2, "1": 0.2, "2": 0.3})


def test_cluster_t_interval_with_one_run_per_cluster_is_the_t_interval():
    d = [0.03, -0.01, 0.05, 0.02, 0.00]
    ci, t = stats.cluster_t_interval(d, [7, 3, 5, 1, 9], level=0.9), stats.t_interval(d, level=0.9)
    for key in ("mean", "lo", "hi", "se", "n", "level"):
        assert ci[key] == pytest.approx(t[key]), key


def test_cluster_t_interval_is_wider_than_pooled_when_runs_on_a_base_agree():
    d, c = clustered(np.random.default_rng(0))
    cl, pooled = stats.cluster_t_interval(d, c), stats.t_interval(d)
    assert cl["mean"] == pytest.approx(pooled["mean"])                       # balanced clusters
    assert cl["hi"] - cl["lo"] > 2 * (pooled["hi"] - pooled["lo"])


def test_cluster_t_interval_covers_the_true_mean_about_95_percent():
    # the pooled interval on the same data covers far less: it is too narrow for clusters
    rng = np.random.default_rng(1)
    hits = pooled_hits = 0
    for _ in range(1000):
        d, c = clustered(rng, bases=5, runs=4, between=0.3, within=0.1)
        ci, t = stats.cluster_t_interval(d, c), stats.t_interval(d)
        hits += ci["lo"] <= 0.2 <= ci["hi"]
        pooled_hits += t["lo"] <= 0.2 <= t["hi"]
    assert 0.93 < hits / 1000 < 0.97 and pooled_hits / 1000 < 0.85


def slow_two_level_bootstrap(d, c, n_boot, seed, level=0.95):
    """The two-level bootstrap as loops, with the draws in the order the docstring gives."""
    labels = sorted(set(c))
    groups = [[x for x, k in zip(d, c) if k == lab] for lab in labels]
    K, n_max = len(groups), max(len(g) for g in groups)
    rng = np.random.default_rng(seed)
    pick, u = rng.integers(0, K, size=(n_boot, K)), rng.random((n_boot, K, n_max))
    stat = []
    for b in range(n_boot):
        means = []
        for slot in range(K):
            g = groups[pick[b, slot]]
            draw = [g[int(u[b, slot, j] * len(g))] for j in range(len(g))]
            means.append(sum(draw) / len(draw))
        stat.append(sum(means) / K)
    return np.quantile(stat, [(1 - level) / 2, (1 + level) / 2])


def test_two_level_bootstrap_matches_a_slow_loop():
    d = [0.1, -0.05, 0.2, 0.0, 0.07, 0.3, -0.2, 0.15, 0.05]
    c = ["b", "b", "a", "a", "a", "c", "c", "c", "c"]                         # unequal sizes
    fast = stats.two_level_bootstrap(d, c, n_boot=300, seed=4)
    lo, hi = slow_two_level_bootstrap(d, c, 300, 4)
    assert fast["lo"] == pytest.approx(lo, abs=1e-12) and fast["hi"] == pytest.approx(hi, abs=1e-12)
    assert fast["mean"] == pytest.approx(np.mean([np.mean(d[2:5]), np.mean(d[0:2]), np.mean(d[5:])]))
    assert (fast["n"], fast["n_runs"]) == (3, 9)


def test_two_level_bootstrap_agrees_with_an_independent_resampler():
    # a different random source and plain Python: the same distribution, so close quantiles
    # (runs vary more within a base than between: resampling only the bases would be too narrow)
    d, c = clustered(np.random.default_rng(2), bases=4, runs=3, between=0.05, within=0.5)
    groups = [list(d[c == k]) for k in range(4)]
    r = random.Random(0)
    stat = [np.mean([np.mean(r.choices(g, k=len(g))) for g in r.choices(groups, k=4)])
            for _ in range(20_000)]
    lo, hi = np.quantile(stat, [0.025, 0.975])
    fast = stats.two_level_bootstrap(d, c, n_boot=20_000, seed=1)
    assert abs(fast["lo"] - lo) < 0.05 * (hi - lo) and abs(fast["hi"] - hi) < 0.05 * (hi - lo)


def test_two_level_bootstrap_contains_the_mean_and_is_wider_than_one_level():
    d, c = clustered(np.random.default_rng(3))
    two, one = stats.two_level_bootstrap(d, c), stats.bootstrap_interval(d)
    assert two["lo"] < two["mean"] < two["hi"]
    assert two["hi"] - two["lo"] > 2 * (one["hi"] - one["lo"])


@pytest.mark.parametrize("fn", [stats.cluster_t_interval, stats.two_level_bootstrap])
@pytest.mark.parametrize("diffs, clusters, level, match", [
    ([0.1, 0.2, 0.3], [0, 1], 0.95, "one length"),
    ([0.1, 0.2, 0.3], [0, 0, 0], 0.95, "at least 2 clusters"),
    ([0.1, float("nan"), 0.3], [0, 1, 1], 0.95, "finite"),
    ([0.1, 0.2, 0.3], [0, 1, 1], 1.5, "level"),
])
def test_cluster_intervals_refuse_bad_input(fn, diffs, clusters, level, match):
    with pytest.raises(ValueError, match=match):
        fn(diffs, clusters, level)


def test_two_level_bootstrap_refuses_few_resamples():
    with pytest.raises(ValueError, match="n_boot"):
        stats.two_level_bootstrap([0.1, 0.2], [0, 1], n_boot=10)


@pytest.mark.parametrize("lo, hi, predicted, expected", [
    (0.01, 0.2, 1, "holds"), (-0.2, -0.01, 1, "contradicted"), (0.01, 0.2, -1, "contradicted"),
    (-0.01, 0.2, 1, "not shown"), (-0.2, -0.01, -1, "holds"),
    (0.05, 0.05, 1, "not shown"), (-0.05, -0.05, 1, "not shown"),          # zero width
    (0.05, float("inf"), 1, "not shown"), (float("nan"), 0.1, 1, "not shown"),
])
def test_test_verdict_speaks_the_test_vocabulary(lo, hi, predicted, expected):
    assert stats.test_verdict({"lo": lo, "hi": hi}, predicted) == expected
    assert expected in stats.TEST_VERDICTS


def test_the_two_vocabularies_are_disjoint_and_verdict_is_unchanged():
    assert not set(stats.TEST_VERDICTS) & set(stats.ARTICLE_VERDICTS)
    assert "erratum" not in " ".join(stats.TEST_VERDICTS)
    assert stats.verdict({"lo": 0.05, "hi": 0.05}, 1) == "holds"            # the records' rule
    with pytest.raises(ValueError, match="predicted"):
        stats.test_verdict({"lo": 0.1, "hi": 0.2}, 0)
