"""pass@k and the sampling profile (refimpl/core/evaluation.py).

The estimator is checked against brute-force enumeration of every k-subset of n samples and
against exact rational arithmetic at sizes where binomial coefficients are huge; the profile is
checked at a near-zero temperature, where every sample is the greedy completion, against the
greedy accuracy computed independently.
"""
import itertools
import math
from fractions import Fraction

import pytest
import torch

from refimpl.core.evaluation import (accuracy, pass_at_k, powers_of_two, sample_counts,
                                     sampling_profile)


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of the k-subsets of n samples (the first c correct) holding a correct one."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_equals_brute_force_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_known_values():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)              # pass@1 = c / n
    assert pass_at_k(10, 0, 10) == 0.0 and pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)         # 1 - C(2,2)/C(4,2)
    assert pass_at_k(64, 1, 32) == pytest.approx(0.5)             # one correct: k / n


@pytest.mark.parametrize("n, c, k", [(200, 3, 100), (1000, 7, 500), (1000, 990, 5), (5000, 1, 4999)])
def test_pass_at_k_is_stable_where_binomials_are_huge(n, c, k):
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)


def test_pass_at_k_grows_with_k_and_rejects_bad_counts():
    for c in range(0, 65, 7):
        curve = [pass_at_k(64, c, k) for k in range(1, 65)]
        assert all(a <= b + 1e-15 for a, b in zip(curve, curve[1:]))
    for bad in ((4, 5, 1), (4, -1, 1), (4, 2, 0), (4, 2, 5)):
        with pytest.raises(ValueError, match="need 0 <= c <= n"):
            pass_at_k(*bad)


def test_powers_of_two_end_at_n():
    assert powers_of_two(64) == (1, 2, 4, 8, 16, 32, 64)
    assert powers_of_two(10) == (1, 2, 4, 8, 10) and powers_of_two(1) == (1,)
    with pytest.raises(ValueError):
        powers_of_two(0)


def test_near_greedy_sampling_reproduces_the_greedy_accuracy(cpu_base):
    """At temperature 1e-4 every sample is the argmax: each problem is solved by all n samples
    or by none, pass@k is flat in k and equals the greedy accuracy, and the entropy is ~0."""
    problems = cpu_base.heldout(24)
    prof = sampling_profile(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems, n=4,
                            temperature=1e-4, generator=torch.Generator().manual_seed(0))
    greedy = accuracy(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems)
    assert set(prof["correct"]) <= {0, 4}
    assert all(v == pytest.approx(greedy) for v in prof["pass_at_k"].values())
    assert prof["entropy"] < 1e-3 and prof["n"] == 4


def test_profile_at_temperature_one(cpu_base):
    problems = cpu_base.heldout(16)
    gen = lambda: torch.Generator().manual_seed(3)                          # noqa: E731
    prof = sampling_profile(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems, n=8,
                            generator=gen())
    curve = prof["pass_at_k"]
    assert list(curve) == [1, 2, 4, 8]
    assert curve[1] == pytest.approx(sum(prof["correct"]) / (8 * len(problems)))   # share correct
    assert curve[8] == pytest.approx(sum(c > 0 for c in prof["correct"]) / len(problems))
    assert all(a <= b for a, b in zip(curve.values(), list(curve.values())[1:]))
    assert prof["entropy"] > 0.01
    # the same generator seed gives the same samples
    again = sample_counts(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems, 8,
                          generator=gen())
    assert again == (prof["correct"], prof["entropy"])
