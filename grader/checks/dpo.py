"""Checks for exercises/dpo.py: the DPO loss, its gradient weight, and article exercise 1.

Each check receives the student's module (its functions run in the sandbox) and raises
AssertionError with a hint. References: solutions/dpo.py (grader.reference.expected) and
closed forms.
"""
import math

import torch

from grader.checks import property_check
from grader.reference import expected as reference

f64 = torch.float64


def _batch(B: int, seed: int, requires_grad: bool = False):
    g = torch.Generator().manual_seed(seed)
    logps = [-20 * torch.rand(B, generator=g, dtype=f64) for _ in range(4)]  # 4 x (B,)
    for t in logps[:2]:
        t.requires_grad_(requires_grad)
    return logps


def _call_loss(mod, *args):
    out = mod.dpo_loss(*args)
    assert isinstance(out, tuple) and len(out) == 3, (
        "dpo_loss must return a tuple (losses, chosen_rewards, rejected_rewards), "
        f"got {type(out).__name__}")
    B = args[0].shape[0]
    for name, t in zip(("losses", "chosen_rewards", "rejected_rewards"), out):
        assert isinstance(t, torch.Tensor) and tuple(t.shape) == (B,), (
            f"{name} must be a tensor of shape (B,) = ({B},), got "
            f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}; "
            "return one value per pair, do not average over the batch")
    return out


# --- dpo_loss ----------------------------------------------------------------------------

def check_tie_gives_log2(mod):
    logps = torch.tensor([-1.0, -5.0, -12.5], dtype=f64)
    losses, r_w, r_l = _call_loss(mod, logps, logps, logps - 2.0, logps - 2.0, 0.1)
    assert torch.allclose(r_w, r_l), "equal log-ratios must give equal implicit rewards"
    assert torch.allclose(losses, torch.full((3,), math.log(2), dtype=f64), atol=1e-9), (
        f"when chosen and rejected have the same log-ratio the loss is -log sigmoid(0) = "
        f"log 2 = 0.6931, got {losses.tolist()}")


def check_hand_built_margins(mod):
    # log-ratios: chosen (1, -2, 0), rejected (-1, 1, -1.5); margins h = 2, -3, 1.5
    beta = 0.2
    pc = torch.tensor([-1.0, -4.0, -2.0], dtype=f64)
    pr = torch.tensor([-3.0, -1.0, -2.5], dtype=f64)
    rc = torch.tensor([-2.0, -2.0, -2.0], dtype=f64)
    rr = torch.tensor([-2.0, -2.0, -1.0], dtype=f64)
    losses, r_w, r_l = _call_loss(mod, pc, pr, rc, rr, beta)
    assert torch.allclose(r_w, torch.tensor([0.2, -0.4, 0.0], dtype=f64)), (
        f"chosen_rewards must be beta * (policy_chosen_logps - ref_chosen_logps) = "
        f"[0.2, -0.4, 0.0], got {r_w.tolist()}")
    assert torch.allclose(r_l, torch.tensor([-0.2, 0.2, -0.3], dtype=f64)), (
        f"rejected_rewards must be beta * (policy_rejected_logps - ref_rejected_logps) = "
        f"[-0.2, 0.2, -0.3], got {r_l.tolist()}")
    expected = [math.log1p(math.exp(-z)) for z in (0.4, -0.6, 0.3)]
    assert torch.allclose(losses, torch.tensor(expected, dtype=f64), atol=1e-9), (
        f"losses must be -log sigmoid(r_w - r_l) = {[round(v, 4) for v in expected]}, "
        f"got {[round(v, 4) for v in losses.tolist()]}")


def check_matches_reference(mod):
    for seed, beta in [(0, 0.1), (1, 0.5), (2, 0.01), (3, 2.0)]:
        pc, pr, rc, rr = _batch(16, seed)
        expected, e_w, e_l = reference("dpo.dpo_loss", pc, pr, rc, rr, beta)  # before the student's call
        losses, r_w, r_l = _call_loss(mod, pc, pr, rc, rr, beta)             # might change its inputs
        assert torch.allclose(losses, expected, rtol=1e-6, atol=1e-9), (
            f"losses differ from the reference on a random batch (beta={beta}); max error "
            f"{(losses - expected).abs().max().item():.3g}")
        assert torch.allclose(r_w, e_w) and torch.allclose(r_l, e_l), f"implicit rewards are wrong (beta={beta})"


def check_numerically_stable(mod):
    zero = torch.zeros(2, dtype=f64)
    big = torch.tensor([1e4, -1e4], dtype=f64)
    losses, _, _ = _call_loss(mod, big, zero, zero, zero, 0.1)
    assert torch.isfinite(losses).all(), (
        "loss is not finite for a margin of -1000: use torch.nn.functional.logsigmoid(z) "
        "rather than torch.log(torch.sigmoid(z))")
    assert torch.allclose(losses, torch.tensor([0.0, 1000.0], dtype=f64), atol=1e-6), (
        f"for margins +1000 and -1000 the losses are 0 and 1000, got {losses.tolist()}")


# --- dpo_gradient_weight -----------------------------------------------------------------

def check_weight_values(mod):
    r_w = torch.tensor([0.0, 1.0, -2.0, 30.0], dtype=f64)
    r_l = torch.tensor([0.0, 0.0, 2.0, 0.0], dtype=f64)
    w = mod.dpo_gradient_weight(r_w, r_l)
    expected = torch.sigmoid(r_l - r_w)
    assert isinstance(w, torch.Tensor) and w.shape == r_w.shape, "return one weight per pair"
    assert torch.allclose(w, expected, atol=1e-12), (
        f"the weight is sigmoid(r_l - r_w) = {[round(v, 4) for v in expected.tolist()]}, got "
        f"{[round(v, 4) for v in w.tolist()]}; it must be large when the rejected completion "
        "has the higher implicit reward")


def check_weight_random(mod):
    g = torch.Generator().manual_seed(0)
    r_w, r_l = torch.randn(2, 32, generator=g, dtype=f64)
    w = mod.dpo_gradient_weight(r_w, r_l)
    assert torch.allclose(w, torch.sigmoid(r_l - r_w), atol=1e-12), "wrong on a random batch"
    assert torch.allclose(w + mod.dpo_gradient_weight(r_l, r_w), torch.ones(32, dtype=f64)), (
        "swapping chosen and rejected must give 1 - w")


# --- article exercise 1: autograd of the student's loss vs the closed form -----------------

def check_autograd_equals_closed_form(mod):
    for seed, beta in [(3, 0.1), (4, 1.0)]:
        pc, pr, rc, rr = _batch(12, seed, requires_grad=True)
        losses, r_w, r_l = _call_loss(mod, pc, pr, rc, rr, beta)
        assert losses.requires_grad, (
            "losses carry no gradient: compute them from the log-prob tensors, not from "
            "the detached rewards")
        g_chosen, g_rejected = torch.autograd.grad(losses.sum(), [pc, pr])
        weight = torch.sigmoid(beta * ((pr - rr) - (pc - rc))).detach()  # (B,) closed form
        c_chosen, c_rejected = -beta * weight, beta * weight
        assert torch.allclose(g_chosen, c_chosen, atol=1e-9), (
            f"d loss / d log pi(y_w) should be -beta * sigmoid(r_l - r_w) (beta={beta}); max "
            f"error {(g_chosen - c_chosen).abs().max().item():.3g}")
        assert torch.allclose(g_rejected, c_rejected, atol=1e-9), (
            f"d loss / d log pi(y_l) should be +beta * sigmoid(r_l - r_w) (beta={beta})")
        assert (g_chosen < 0).all() and (g_rejected > 0).all(), (
            "a gradient step must raise log pi(y_w) and lower log pi(y_l)")
        w = mod.dpo_gradient_weight(r_w.detach(), r_l.detach())
        assert torch.allclose(g_chosen, -beta * w, atol=1e-9), (
            "autograd and -beta * dpo_gradient_weight(chosen_rewards, rejected_rewards) "
            "disagree: check both functions use the same implicit rewards")


@property_check
def check_rewards_are_detached(mod):
    pc, pr, rc, rr = _batch(6, 5, requires_grad=True)
    _, r_w, r_l = _call_loss(mod, pc, pr, rc, rr, 0.3)
    assert not r_w.requires_grad and not r_l.requires_grad, (
        "chosen_rewards and rejected_rewards must be detached (the docstring says so: they are "
        "for logging, and a gradient through them would double-count the loss); use .detach()")


@property_check
def check_inputs_are_not_modified(mod):
    logps = _batch(5, 6)
    copies = [t.clone() for t in logps]
    _call_loss(mod, *logps, 0.2)
    names = ("policy_chosen_logps", "policy_rejected_logps", "ref_chosen_logps", "ref_rejected_logps")
    for name, t, c in zip(names, logps, copies):
        assert torch.equal(t, c), (
            f"dpo_loss modified {name} in place (e.g. with -= or .sub_()); the caller still needs "
            "its log-probs: compute the log-ratios as new tensors")


EXERCISES = {
    "dpo_loss": [check_tie_gives_log2, check_hand_built_margins, check_matches_reference,
                 check_numerically_stable, check_rewards_are_detached, check_inputs_are_not_modified],
    "dpo_gradient_weight": [check_weight_values, check_weight_random],
    "dpo_gradient_autograd": [check_autograd_equals_closed_form],
}
