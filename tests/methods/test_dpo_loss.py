"""The DPO loss against closed forms, autograd and hand-computed metrics (claim C2)."""
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.methods.dpo import dpo_gradient_weight, dpo_loss, dpo_loss_grad, implicit_reward

f64 = torch.float64


def _batch(B=7, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    logps = [-10 * torch.rand(B, generator=g, dtype=f64) for _ in range(4)]
    for t in logps[:2]:
        t.requires_grad_(requires_grad)
    return logps


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


def test_equal_logps_give_ln2():
    # z = 0 for every pair, so the loss is -log(1/2) whatever beta and the log-probs are.
    logps = torch.tensor([-3.0, -7.5, -0.1], dtype=f64)
    for beta in (0.01, 0.1, 2.0):
        losses, m = dpo_loss(logps, logps, logps - 1.0, logps - 1.0, beta=beta)
        assert torch.equal(losses, torch.full((3,), math.log(2), dtype=f64))
        assert m["rewards/margins"] == 0.0


def test_known_margins():
    # Rewards r = beta * logratio; loss = -log sigmoid(r_w - r_l), computed with math by hand.
    beta = 0.2
    pc = torch.tensor([-1.0, -4.0, -2.0], dtype=f64)
    pr = torch.tensor([-3.0, -1.0, -2.5], dtype=f64)
    rc = torch.tensor([-2.0, -2.0, -2.0], dtype=f64)
    rr = torch.tensor([-2.0, -2.0, -1.0], dtype=f64)
    # log-ratio margins h = (pc - rc) - (pr - rr) = 2, -3, 1.5; z = beta * h
    margins = [0.4, -0.6, 0.3]
    losses, _ = dpo_loss(pc, pr, rc, rr, beta=beta)
    assert losses.tolist() == pytest.approx([-_log_sigmoid(z) for z in margins], rel=1e-12)


def test_loss_sees_only_log_ratios():
    # Adding c to log pi(y_w) and log pi_ref(y_w) changes nothing (beta log Z cancels too).
    pc, pr, rc, rr = _batch()
    base, _ = dpo_loss(pc, pr, rc, rr, beta=0.3)
    shifted, _ = dpo_loss(pc + 1.7, pr - 0.4, rc + 1.7, rr - 0.4, beta=0.3)
    torch.testing.assert_close(base, shifted)


def test_large_margins_are_finite():
    # A naive log(sigmoid(z)) gives log(0) = -inf at z = -1000; logsigmoid gives -z.
    big = torch.tensor([1e4], dtype=f64)
    zero = torch.zeros(1, dtype=f64)
    losses, _ = dpo_loss(zero, -big, zero, zero, beta=0.1)  # margin h = +1e4
    assert losses.item() == pytest.approx(0.0, abs=1e-300)
    losses, _ = dpo_loss(-big, zero, zero, zero, beta=0.1)  # h = -1e4
    assert losses.item() == pytest.approx(1e3, rel=1e-12)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 0.3])
def test_autograd_matches_closed_form_gradient(label_smoothing):
    pc, pr, rc, rr = _batch(requires_grad=True)
    losses, _ = dpo_loss(pc, pr, rc, rr, beta=0.25, label_smoothing=label_smoothing)
    g_chosen, g_rejected = torch.autograd.grad(losses.sum(), [pc, pr])
    c_chosen, c_rejected = dpo_loss_grad(pc, pr, rc, rr, beta=0.25,
                                         label_smoothing=label_smoothing)
    torch.testing.assert_close(g_chosen, c_chosen, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(g_rejected, c_rejected, rtol=1e-12, atol=1e-14)


def test_gradient_raises_chosen_lowers_rejected_with_weight():
    # C2: dL/dlogpi_w = -beta w, dL/dlogpi_l = +beta w, w = sigmoid(r_l - r_w) in (0, 1).
    beta = 0.5
    pc, pr, rc, rr = _batch(requires_grad=True, seed=3)
    losses, _ = dpo_loss(pc, pr, rc, rr, beta=beta)
    g_chosen, g_rejected = torch.autograd.grad(losses.sum(), [pc, pr])
    w = dpo_gradient_weight(implicit_reward(pc, rc, beta), implicit_reward(pr, rr, beta))
    assert (g_chosen < 0).all() and (g_rejected > 0).all()
    torch.testing.assert_close(g_chosen, -beta * w.detach())
    torch.testing.assert_close(g_rejected, beta * w.detach())


def test_gradient_weight_values():
    r_w = torch.tensor([0.0, 1.0, -2.0, 30.0], dtype=f64)
    r_l = torch.tensor([0.0, 0.0, 2.0, 0.0], dtype=f64)
    w = dpo_gradient_weight(r_w, r_l)
    expected = [0.5, 1 / (1 + math.e), 1 / (1 + math.exp(-4)), 1 / (1 + math.exp(30))]
    assert w.tolist() == pytest.approx(expected, rel=1e-12)
    # Wrong ordering and correct ordering share the unit mass: w(a, b) + w(b, a) = 1.
    torch.testing.assert_close(w + dpo_gradient_weight(r_l, r_w), torch.ones(4, dtype=f64))
    with pytest.raises(ValueError, match="same shape"):
        dpo_gradient_weight(r_w, r_l[:2])


@settings(max_examples=50, deadline=None)
@given(st.floats(-30, 30), st.floats(0.01, 5))
def test_swapping_labels_shifts_loss_by_margin(h, beta):
    # -log sigmoid(z) - (-log sigmoid(-z)) = -z for z = beta * h.
    t = lambda v: torch.tensor([v], dtype=f64)  # noqa: E731
    # log-probs are <= 0: the margin h = pc - pr is carried by the more negative of the two
    fwd, _ = dpo_loss(t(min(h, 0.0)), t(min(-h, 0.0)), t(0.0), t(0.0), beta=beta)
    bwd, _ = dpo_loss(t(min(-h, 0.0)), t(min(h, 0.0)), t(0.0), t(0.0), beta=beta)
    assert (fwd - bwd).item() == pytest.approx(-beta * h, abs=1e-9)


def test_ipo_closed_form():
    beta = 0.25  # target margin 1 / (2 beta) = 2
    h = torch.tensor([2.0, 0.0, 5.0], dtype=f64)  # log-ratio margins
    zero = torch.zeros(3, dtype=f64)
    losses, _ = dpo_loss(zero, -h, zero, zero, beta=beta, loss_type="ipo")
    assert losses.tolist() == pytest.approx([0.0, 4.0, 9.0], abs=1e-12)


def test_cdpo_closed_form_and_finite_optimum():
    eps, beta = 0.2, 0.5
    h = torch.tensor([1.0, -2.0], dtype=f64)
    zero = torch.zeros(2, dtype=f64)
    losses, _ = dpo_loss(h - 3.0, zero, zero - 3.0, zero, beta=beta, label_smoothing=eps)
    expected = [-(1 - eps) * _log_sigmoid(beta * v) - eps * _log_sigmoid(-beta * v)
                for v in h.tolist()]
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)
    # Unlike DPO, cDPO stops pushing at the margin z* = log((1 - eps) / eps): zero gradient.
    z_star = math.log((1 - eps) / eps)
    pc = torch.tensor([z_star / beta - 10.0], dtype=f64, requires_grad=True)
    loss, _ = dpo_loss(pc, zero[:1], zero[:1] - 10.0, zero[:1], beta=beta, label_smoothing=eps)
    (grad,) = torch.autograd.grad(loss.sum(), [pc])
    assert abs(grad.item()) < 1e-12


def test_metrics_on_hand_built_batch():
    beta = 0.5
    pc = torch.tensor([-1.0, -3.0], dtype=f64)
    pr = torch.tensor([-2.0, -2.0], dtype=f64)
    rc = torch.tensor([-2.0, -2.0], dtype=f64)
    rr = torch.tensor([-2.0, -1.0], dtype=f64)
    _, m = dpo_loss(pc, pr, rc, rr, beta=beta)
    # chosen rewards 0.5*(1, -1) = (0.5, -0.5); rejected 0.5*(0, -1) = (0, -0.5)
    assert m == pytest.approx({
        "rewards/chosen": 0.0, "rewards/rejected": -0.25, "rewards/margins": 0.25,
        "rewards/accuracies": 0.5, "logps/chosen": -2.0, "logps/rejected": -2.0})
    assert all(isinstance(v, float) for v in m.values())


@pytest.mark.parametrize("kwargs, match", [
    ({"beta": 0.0}, "beta"), ({"beta": -0.1}, "beta"), ({"beta": float("nan")}, "beta"),
    ({"beta": float("inf")}, "beta"), ({"beta": "big"}, "beta"),
    ({"loss_type": "hinge"}, "loss_type"),
    ({"label_smoothing": 0.5}, "label_smoothing"), ({"label_smoothing": -0.1}, "label_smoothing"),
    ({"loss_type": "ipo", "label_smoothing": 0.1}, "label_smoothing"),
])
def test_bad_options_raise(kwargs, match):
    error = TypeError if kwargs.get("beta") == "big" else ValueError
    with pytest.raises(error, match=match):
        dpo_loss(*_batch(), **kwargs)


def test_bad_tensors_raise():
    pc, pr, rc, rr = _batch(B=4)
    with pytest.raises(ValueError, match="same shape"):
        dpo_loss(pc, pr[:3], rc, rr)
    with pytest.raises(ValueError, match="policy_chosen_logps must be 1-D"):
        dpo_loss(pc[None], pr[None], rc[None], rr[None])
    empty = torch.zeros(0, dtype=f64)
    with pytest.raises(ValueError, match="policy_chosen_logps is empty"):
        dpo_loss(empty, empty, empty, empty)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for i, name in enumerate(["policy_chosen_logps", "policy_rejected_logps",
                                  "ref_chosen_logps", "ref_rejected_logps"]):
            args = [t.clone() for t in (pc, pr, rc, rr)]
            args[i][1] = bad
            with pytest.raises(ValueError, match=name):
                dpo_loss(*args)
