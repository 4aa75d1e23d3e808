"""Tests for refimpl.methods.kl: Schulman's k1/k2/k3 estimators of KL(pi_theta || pi_ref) (claim C18)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.methods.kl import (estimator_bias_variance, estimator_moments, exact_kl,
                                importance_weighted_kl, kl_estimate)

DT = torch.float64


def tilted(p, delta, seed=0):
    """q proportional to p * exp(delta * z): a distribution at distance O(delta) from p."""
    z = torch.randn(len(p), generator=torch.Generator().manual_seed(seed), dtype=DT)
    q = p * torch.exp(delta * z)
    return q / q.sum()


P5 = torch.tensor([0.1, 0.2, 0.3, 0.25, 0.15], dtype=DT)
FAR = (torch.tensor([0.9, 0.1], dtype=DT), torch.tensor([0.1, 0.9], dtype=DT))


# ---------------------------------------------------------------- values ----------------------

@settings(max_examples=200, deadline=None)
@given(st.floats(-50, 0), st.floats(-50, 0))
def test_k3_and_k2_are_non_negative(logp, ref):
    logps, ref_logps = torch.tensor([[logp]], dtype=DT), torch.tensor([[ref]], dtype=DT)
    assert kl_estimate(logps, ref_logps, "k3").item() >= 0
    assert kl_estimate(logps, ref_logps, "k2").item() >= 0


def test_formulas_and_k1_can_be_negative():
    logps = torch.tensor([[-1.0, -2.0, -0.5]], dtype=DT)
    ref = torch.tensor([[-1.5, -1.0, -0.5]], dtype=DT)
    lr = ref - logps
    torch.testing.assert_close(kl_estimate(logps, ref, "k1"), -lr)
    torch.testing.assert_close(kl_estimate(logps, ref, "k2"), lr**2 / 2)
    torch.testing.assert_close(kl_estimate(logps, ref, "k3"), lr.exp() - 1 - lr)
    assert kl_estimate(logps, ref, "k1")[0, 1] < 0  # the reference likes this token more
    assert (kl_estimate(logps, ref, "k3")[0, 2] == 0)  # equal log-probs: exactly 0


def test_k3_is_precise_for_small_logratios_in_float32():
    # k3(x) = x^2/2 + x^3/6 + ...; exp(x) - 1 - x in float32 loses about 10% at x = 1e-3
    x = torch.tensor([[1e-3, -1e-3, 1e-4]], dtype=torch.float32)
    got = kl_estimate(torch.zeros_like(x), x, "k3").double()
    series = x.double() ** 2 / 2 + x.double() ** 3 / 6
    torch.testing.assert_close(got, series, rtol=1e-3, atol=0)


def test_exact_kl():
    p, q = FAR
    assert exact_kl(p, q).item() == pytest.approx(0.8 * math.log(9))
    assert exact_kl(P5, P5).item() == 0
    logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=DT)
    q_logits = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=DT)
    torch.testing.assert_close(exact_kl(logits, q_logits, from_logits=True),
                               exact_kl(logits.softmax(-1), q_logits.softmax(-1)))
    # 0 log 0 = 0, and mass where q = 0 gives inf
    assert exact_kl(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])).item() == pytest.approx(math.log(2))
    assert exact_kl(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == math.inf


# ---------------------------------------------------------------- bias ------------------------

@pytest.mark.parametrize("delta", [0.05, 0.5, 2.0])
def test_k1_k3_exactly_unbiased_by_enumeration(delta):
    q = tilted(P5, delta)
    kl = exact_kl(P5, q).item()
    for est in ("k1", "k3"):
        mean, _ = estimator_moments(P5, q, est)
        assert mean == pytest.approx(kl, rel=1e-10)


def test_k2_bias_far_and_near():
    p, q = FAR
    mean, _ = estimator_moments(p, q, "k2")
    assert mean == pytest.approx(math.log(9) ** 2 / 2)  # every sample has |logratio| = log 9
    assert (mean - exact_kl(p, q).item()) / exact_kl(p, q).item() > 0.3  # 2.41 vs 1.76
    # near: with u = logratio and E[e^u] = 1, bias(k2) = E[u^2]/2 + E[u] = -sum_{n>=3} E[u^n]/n!,
    # so |bias| <= M e^M E[u^2] / 6 with M = max |u|, while KL = E[e^u - 1 - u] >= e^-M E[u^2] / 2:
    # the relative bias is at most M e^{2M} / 3 <= M for M <= 0.5, and vanishes as q -> p
    for delta in (0.15, 0.05, 0.02):
        q = tilted(P5, delta)
        kl = exact_kl(P5, q).item()
        M = (q.log() - P5.log()).abs().max().item()
        rel = abs(estimator_moments(P5, q, "k2")[0] - kl) / kl
        assert M <= 0.5 and rel <= M * math.exp(2 * M) / 3


@pytest.mark.parametrize("delta", [0.1, 1.0])
def test_monte_carlo_k1_k3_unbiased_k2_not(delta):
    q = tilted(P5, delta, seed=3)
    g = torch.Generator().manual_seed(0)
    for est in ("k1", "k3"):
        res = estimator_bias_variance(P5, q, 40_000, est, generator=g)
        assert abs(res["bias"]) < 5 * res["std_err"], (est, res)
    res = estimator_bias_variance(*FAR, 40_000, "k2", generator=g)
    assert res["bias"] > 5 * res["std_err"] and res["bias"] == pytest.approx(
        math.log(9) ** 2 / 2 - 0.8 * math.log(9), rel=1e-9)  # constant estimator: var 0
    # the Monte Carlo mean and variance agree with enumeration
    for est in ("k1", "k2", "k3"):
        res = estimator_bias_variance(P5, q, 40_000, est, generator=g)
        mean, var = estimator_moments(P5, q, est)
        assert abs(res["mean"] - mean) < 5 * res["std_err"]
        assert res["var"] == pytest.approx(var, rel=0.1)


# ---------------------------------------------------------------- variance --------------------

def test_k3_has_lower_variance_than_k1_for_close_distributions():
    for delta in (0.02, 0.1, 0.3):
        q = tilted(P5, delta, seed=1)
        _, var1 = estimator_moments(P5, q, "k1")
        _, var3 = estimator_moments(P5, q, "k3")
        # var(k1) = Var(u) = O(delta^2) while k3 = u^2/2 + ... has variance O(delta^4)
        assert var3 < var1 * delta
    g = torch.Generator().manual_seed(2)
    q = tilted(P5, 0.1, seed=1)
    r1 = estimator_bias_variance(P5, q, 20_000, "k1", generator=g)
    r3 = estimator_bias_variance(P5, q, 20_000, "k3", generator=g)
    assert r3["var"] < r1["var"] / 5


def test_schulman_gaussian_example():
    # Schulman's note: policy N(0, 1), reference N(0.1, 1), KL = 0.1^2 / 2 = 0.005.
    # k1 = m^2/2 - m x has std exactly m = 0.1, i.e. 20 x KL; k3's std is about sqrt(2) x KL.
    m, n = 0.1, 200_000
    x = torch.randn(n, generator=torch.Generator().manual_seed(0), dtype=DT)
    logp = torch.distributions.Normal(0.0, 1.0).log_prob(x)[None]  # (1, N)
    ref = torch.distributions.Normal(m, 1.0).log_prob(x)[None]  # (1, N)
    kl = m**2 / 2
    k1, k3 = kl_estimate(logp, ref, "k1"), kl_estimate(logp, ref, "k3")
    for k in (k1, k3):
        assert abs(k.mean().item() - kl) < 5 * k.std().item() / math.sqrt(n)
    assert k1.std().item() / kl == pytest.approx(20.0, rel=0.01)  # sample std, SE ~ 0.2%
    # exact std of k3 by quadrature of its density (a slow, obvious reference)
    grid = torch.linspace(-12, 12, 200_001, dtype=DT)
    w = torch.distributions.Normal(0.0, 1.0).log_prob(grid).exp() * (grid[1] - grid[0])
    u = m * grid - m**2 / 2  # logratio at x
    k3_grid = u.exp() - 1 - u
    mean3 = (w * k3_grid).sum()
    std3 = ((w * (k3_grid - mean3) ** 2).sum()).sqrt().item()
    assert mean3.item() == pytest.approx(kl, rel=1e-6)
    assert k3.std().item() == pytest.approx(std3, rel=0.02)
    assert std3 / kl == pytest.approx(math.sqrt(2), rel=0.1)  # leading order sqrt(2)


# ---------------------------------------------------------------- gradients -------------------

def expected_grad(logits, ref_logprobs, estimator):
    """E_{y ~ p}[grad k(y)] by enumeration, with the sampling weights p(y) held fixed."""
    logits = logits.clone().requires_grad_(True)
    logp = logits.log_softmax(-1)  # (V,)
    k = kl_estimate(logp[None], ref_logprobs[None], estimator)[0]  # (V,)
    (grad,) = torch.autograd.grad((logp.exp().detach() * k).sum(), logits)
    return grad


@pytest.mark.parametrize("seed", [0, 1])
def test_expected_gradients_of_the_estimators(seed):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, generator=g, dtype=DT)
    ref_logprobs = (2 * torch.randn(6, generator=g, dtype=DT)).log_softmax(-1)

    def grad_of(fn):
        x = logits.clone().requires_grad_(True)
        return torch.autograd.grad(fn(x), x)[0]

    reverse = grad_of(lambda x: exact_kl(x.softmax(-1), ref_logprobs.exp()))  # KL(p || ref)
    forward = grad_of(lambda x: exact_kl(ref_logprobs.exp(), x.softmax(-1)))  # KL(ref || p)
    torch.testing.assert_close(expected_grad(logits, ref_logprobs, "k1"), torch.zeros(6, dtype=DT))
    torch.testing.assert_close(expected_grad(logits, ref_logprobs, "k2"), reverse)
    torch.testing.assert_close(expected_grad(logits, ref_logprobs, "k3"), forward)
    assert (forward - reverse).abs().max() > 0.05  # so k3's gradient is not the reverse KL's


@pytest.mark.parametrize("seed", [0, 1])
def test_weighted_k3_off_policy_has_the_reverse_kl_value_and_gradient(seed):
    # samples y ~ pi_old; weighting k3 by the live w = pi / pi_old makes both the expected
    # value and the expected gradient those of KL(pi || ref); detaching w, or no weight, does not
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, generator=g, dtype=DT)
    old = (logits + torch.randn(6, generator=g, dtype=DT)).softmax(-1)  # (V,) pi_old != pi
    ref_logprobs = (2 * torch.randn(6, generator=g, dtype=DT)).log_softmax(-1)

    def expected_under_old(x, detach_w=False):
        logp = x.log_softmax(-1)[None, :]  # (1, V): one "token" per outcome y
        k3 = kl_estimate(logp, ref_logprobs[None, :])  # (1, V)
        log_w = logp - old.log()[None, :]  # (1, V)
        k = importance_weighted_kl(k3, log_w.detach() if detach_w else log_w)  # (1, V)
        return (old * k[0]).sum()

    x = logits.clone().requires_grad_(True)
    value = expected_under_old(x)
    (grad,) = torch.autograd.grad(value, x)
    x2 = logits.clone().requires_grad_(True)
    kl = exact_kl(x2.softmax(-1), ref_logprobs.exp())
    (reverse,) = torch.autograd.grad(kl, x2)
    torch.testing.assert_close(value, kl.detach())
    torch.testing.assert_close(grad, reverse)
    x3 = logits.clone().requires_grad_(True)
    (detached,) = torch.autograd.grad(expected_under_old(x3, detach_w=True), x3)
    assert (detached - reverse).abs().max() > 0.05


def test_importance_weighted_kl_broadcasts_a_sequence_weight():
    k3 = torch.rand(3, 4, dtype=DT)
    log_w = torch.tensor([[0.0], [0.5], [-1.0]], dtype=DT)  # (B, 1)
    torch.testing.assert_close(importance_weighted_kl(k3, log_w), k3 * log_w.exp())
    with pytest.raises(ValueError, match="log_w"):
        importance_weighted_kl(k3, torch.zeros(3, 2, dtype=DT))


# ---------------------------------------------------------------- errors ----------------------

def test_errors():
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same shape"):
        kl_estimate(z, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="finite"):
        kl_estimate(z, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="unknown estimator"):
        kl_estimate(z, z, "k5")
    with pytest.raises(ValueError, match="sum to 1"):
        exact_kl(torch.tensor([0.5, 0.6]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="non-negative"):
        exact_kl(torch.tensor([1.5, -0.5]), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="same shape"):
        exact_kl(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="n_samples"):
        estimator_bias_variance(P5, P5, 1)
    with pytest.raises(ValueError, match="strictly positive"):
        estimator_bias_variance(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), 10)
    with pytest.raises(ValueError, match="unknown estimator"):
        estimator_moments(P5, P5, "k0")
