"""The KL lab of notebook 03: what each KL estimator does when it is a *loss* (claim C18).

On one categorical distribution everything is exact. The policy is pi_theta = softmax(z)
over V outcomes (one token, its prefix fixed), the reference is pi_ref, and samples come
from pi_theta. Two words fix the direction (docs/ARCHITECTURE.md, "Terms"):

    reverse KL = KL(pi_theta || pi_ref)  the penalty GRPO and RLHF write in their objective
    forward KL = KL(pi_ref || pi_theta)

An estimator k(y) used as a loss is differentiated through log pi_theta(y) only (the
sampling is not differentiated), so its expected gradient is sum_y pi_theta(y) grad k(y)
with pi_theta(y) held fixed. With g(y) = grad log pi_theta(y) and E[g] = 0 (Schulman 2020;
derivation in ``refimpl/methods/kl.py``):

    k1 as a loss: E[g]                           = 0                (only noise)
    k2 as a loss: E[-log(pi_ref/pi_theta) g]     = grad reverse KL
    k3 as a loss: E[(1 - pi_ref/pi_theta) g]     = grad forward KL  (not the KL it estimates)
    k1 in the reward (detached, times g): E[k1 g] = grad reverse KL (the RLHF/PPO way)
"""
from __future__ import annotations

import torch

from refimpl.methods.kl import exact_kl, kl_estimate

WAYS = ("k1 loss", "k2 loss", "k3 loss", "k1 in reward")


def expected_gradient(z: torch.Tensor, ref_probs: torch.Tensor, way: str) -> torch.Tensor:
    """Exact expected gradient w.r.t. the logits z (V,) of one way of adding the KL.

    z: (V,) policy logits; ref_probs: (V,) pi_ref, all > 0; way: one of ``WAYS``.
    Returns (V,) float64: grad_z of sum_y sg[pi_theta(y)] * term(y), sg = stop-gradient.
    """
    if way not in WAYS:
        raise ValueError(f"unknown way {way!r}: use one of {WAYS}")
    z = z.detach().double().requires_grad_(True)                    # (V,)
    logp = torch.log_softmax(z, -1)                                 # (V,)
    ref_logp = ref_probs.double().log()                             # (V,)
    weight = logp.exp().detach()                                    # (V,) sampling probabilities
    if way == "k1 in reward":                                       # REINFORCE on reward -k1
        term = kl_estimate(logp[None], ref_logp[None], "k1")[0].detach() * logp   # (V,)
    else:
        term = kl_estimate(logp[None], ref_logp[None], way[:2])[0]  # (V,)
    (grad,) = torch.autograd.grad((weight * term).sum(), z)
    return grad


def true_gradients(z: torch.Tensor, ref_probs: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"reverse": grad_z KL(pi_theta || pi_ref), "forward": grad_z KL(pi_ref || pi_theta)}, (V,) each."""
    out = {}
    for name in ("reverse", "forward"):
        zz = z.detach().double().requires_grad_(True)               # (V,)
        p = torch.softmax(zz, -1)                                   # (V,)
        kl = exact_kl(p, ref_probs.double()) if name == "reverse" else exact_kl(ref_probs.double(), p)
        (out[name],) = torch.autograd.grad(kl, zz)
    return out


def k3_naive(logratio: torch.Tensor) -> torch.Tensor:
    """k3 written as exp(x) - 1 - x (x = log pi_ref - log pi_theta): loses every digit near 0."""
    return torch.exp(logratio) - 1 - logratio


def k3_relative_error(logratio: torch.Tensor) -> dict[str, torch.Tensor]:
    """Relative error of k3 in the dtype of ``logratio``, against float64 expm1 (a reference
    at twice the precision): {"expm1": refimpl's k3, "exp(x)-1-x": the naive form}."""
    exact = torch.expm1(logratio.double()) - logratio.double()       # (n,)
    zeros = torch.zeros_like(logratio)
    ours = kl_estimate(-logratio[None], zeros[None], "k3")[0]        # log pi_ref - log pi = x
    return {"expm1": ((ours.double() - exact) / exact).abs(),
            "exp(x)-1-x": ((k3_naive(logratio).double() - exact) / exact).abs()}
