"""Paired intervals and verdicts of the claims study (refimpl/core/stats.py).

Checked against values computed by hand, a slow bootstrap, and the coverage of the t interval
on simulated normal data (an interval that is too narrow would fail the coverage test).
"""
import math

import numpy as np
import pytest

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
