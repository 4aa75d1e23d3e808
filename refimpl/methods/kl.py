"""Per-token estimators of KL(pi_theta || pi_ref), as used in GRPO's penalty term.

Terms (docs/ARCHITECTURE.md): reverse KL = KL(pi_theta || pi_ref), the penalty GRPO writes;
forward KL = KL(pi_ref || pi_theta). Notebook 03's KL lab (refimpl/experiments/labs/kl_lab.py) checks the
expected gradient of each estimator used as a loss against both.

GRPO (Shao et al. 2024, DeepSeekMath, eq. 3-4) regularises the policy towards a frozen
reference with beta * KL(pi_theta || pi_ref). The exact KL over whole completions cannot be
computed, so it is estimated from the tokens that were sampled from the policy. J. Schulman's
note "Approximating KL divergence" (2020) gives three estimators built from

    logratio = log pi_ref(y) - log pi_theta(y),    r = exp(logratio) = pi_ref(y) / pi_theta(y),

with y drawn from pi_theta:

    k1 = -logratio                    unbiased, high variance, negative on some samples
    k2 = logratio**2 / 2              biased (always >= 0); close to KL when the two are close
    k3 = (r - 1) - logratio           unbiased (E[r] = 1 under pi_theta), always >= 0,
                                      low variance when the two are close (DeepSeekMath eq. 4)

k3 >= 0 because exp(x) >= 1 + x. Unbiasedness of k3: E[r - 1] = sum_y pi_ref(y) - 1 = 0, so
E[k3] = E[k1] = KL(pi_theta || pi_ref).

Gradients when an estimator is used as a loss. Take one categorical distribution (one token,
with its prefix fixed), samples y ~ pi_theta and differentiate k(y) through log pi_theta(y)
only (the sampling itself is not differentiated, as in every GRPO implementation). Writing
g(y) = grad log pi_theta(y) and using E[g] = 0 under pi_theta:

    grad k1 = g                      -> expected gradient 0: k1 as a loss gives only noise
    grad k2 = -logratio * g          -> expected gradient = grad KL(pi_theta || pi_ref)
    grad k3 = (1 - r) * g            -> expected gradient = grad KL(pi_ref || pi_theta),
                                        the gradient of the *forward* KL, not of the
                                        reverse KL that k3 estimates

So k3 is an unbiased estimate of the value of the reverse KL, but its gradient is, in
expectation, that of the forward KL; the two agree to first order when pi_theta is close to
pi_ref. These statements hold on-policy (samples from the current pi_theta). With samples
from pi_old (several inner steps) an importance weight is missing, and over whole sequences
the per-token terms ignore how a token changes the distribution of later prefixes. The tests
check the three expected gradients exactly on a small categorical distribution.

Importance-weighted k3 (TRL 1.16's default, use_bias_correction_kl=True; DeepSeek-V3.2,
arXiv:2512.02556). With tokens sampled from pi_old, GRPO's inner steps weight the estimate by
the live ratio w = pi_theta / pi_old (not detached):

    k3_w = w * k3,     E_old[w * k3] = E_theta[k3] = KL(pi_theta || pi_ref),
    grad k3_w = w * (1 - r + k3) * g,   E_old[grad k3_w] = E_theta[(grad k3) + k3 g]
                                                      = grad KL(pi_theta || pi_ref),

so both the value and the expected gradient are those of the reverse KL, also off-policy.
Even on-policy (w = 1) the gradient changes: k3 * g is added to k3's forward-KL gradient.
`importance_weighted_kl` applies the weight; grpo_loss uses it with kl_importance_weight=True
(with GSPO's sequence ratio the weight is s_i for every token of o_i, as in TRL).

Also here: `exact_kl` for small categorical distributions and `estimator_bias_variance`,
which measures each estimator's bias and variance against the exact KL (claim C18).
"""

from __future__ import annotations

import math

import torch

from refimpl.core import checks

ESTIMATORS = ("k1", "k2", "k3")


def _check_estimator(estimator: str) -> None:
    checks.one_of("estimator", estimator, ESTIMATORS)


def _estimate_from_logratio(logratio: torch.Tensor, estimator: str) -> torch.Tensor:
    """The estimator as a function of logratio = log pi_ref - log pi_theta (any shape)."""
    if estimator == "k1":
        return -logratio
    if estimator == "k2":
        return 0.5 * logratio**2
    return torch.expm1(logratio) - logratio  # k3; expm1 keeps precision near logratio = 0


def kl_estimate(
    logps: torch.Tensor, ref_logps: torch.Tensor, estimator: str = "k3"
) -> torch.Tensor:
    """Per-token KL estimate from log-probs of tokens sampled from the policy.

    Args:
        logps: (B, T) log pi_theta of the sampled tokens (0 at masked positions).
        ref_logps: (B, T) log pi_ref of the same tokens (0 at masked positions).
        estimator: "k1", "k2" or "k3" (see the module docstring).

    Returns:
        (B, T) per-token estimates; 0 wherever logps == ref_logps (so at masked positions
        that follow the 0-padding convention). Gradients flow into both arguments; detach
        ref_logps yourself if the reference is not meant to be trained (it usually comes
        from a frozen model under no_grad).
    """
    _check_estimator(estimator)
    checks.logprobs("logps", logps)
    checks.logprobs("ref_logps", ref_logps)
    checks.same_shape(logps=logps, ref_logps=ref_logps)
    logratio = ref_logps - logps  # (B, T)
    return _estimate_from_logratio(logratio, estimator)  # (B, T)


def importance_weighted_kl(per_token_kl: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """w * KL estimate with the live weight w = exp(log_w) = pi_theta / pi_old (module docstring).

    Args:
        per_token_kl: (B, T) per-token estimate, e.g. k3 from kl_estimate.
        log_w: (B, T) per-token log pi_theta - log pi_old, or (B, 1) one log-weight per
            sequence (GSPO); not detached, so that its gradient makes the KL gradient unbiased.

    Returns:
        (B, T) weighted estimate; equal to per_token_kl in value where log_w = 0.
    """
    checks.tensor("per_token_kl", per_token_kl, dims=(2,))
    checks.tensor("log_w", log_w, dims=(2,))
    if log_w.shape[0] != per_token_kl.shape[0] or log_w.shape[1] not in (1, per_token_kl.shape[1]):
        raise ValueError(f"log_w of shape {tuple(log_w.shape)} must be (B, T) or (B, 1) for "
                         f"per_token_kl of shape {tuple(per_token_kl.shape)}")
    return per_token_kl * torch.exp(log_w)  # (B, T)


def _as_probs(x: torch.Tensor, from_logits: bool, name: str) -> torch.Tensor:
    if isinstance(x, (list, tuple)):
        x = torch.tensor(x, dtype=torch.float64)
    x = checks.tensor(name, x, floating=False).to(torch.float64)
    if x.dim() == 0 or x.shape[-1] < 2:
        raise ValueError(f"{name} must have a last dimension V >= 2 (a categorical distribution)")
    if from_logits:
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} logits must be finite")
        return torch.softmax(x, dim=-1)
    if not torch.isfinite(x).all() or (x < 0).any():
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    if not torch.allclose(x.sum(-1), torch.ones((), dtype=x.dtype), atol=1e-6):
        raise ValueError(
            f"{name} must sum to 1 over its last dimension (pass from_logits=True for logits)"
        )
    return x


def exact_kl(p: torch.Tensor, q: torch.Tensor, from_logits: bool = False) -> torch.Tensor:
    """Exact KL(p || q) = sum_y p(y) log(p(y) / q(y)) for small categorical distributions.

    Args:
        p: (..., V) probabilities (or logits with from_logits=True): the sampling
            distribution, the policy pi_theta in GRPO.
        q: (..., V) probabilities (or logits): the reference pi_ref.
        from_logits: apply a softmax over the last dimension first.

    Returns:
        (...) float64 KL; terms with p(y) = 0 contribute 0, and the result is inf where
        q(y) = 0 < p(y).
    """
    p = _as_probs(p, from_logits, "p")  # (..., V)
    q = _as_probs(q, from_logits, "q")  # (..., V)
    if p.shape != q.shape:
        raise ValueError(f"p {tuple(p.shape)} and q {tuple(q.shape)} must have the same shape")
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(-1)  # (...)


def estimator_moments(
    p: torch.Tensor, q: torch.Tensor, estimator: str = "k3"
) -> tuple[float, float]:
    """Exact mean and variance of one estimator under y ~ p, by enumerating the V outcomes.

    Args:
        p: (V,) sampling (policy) probabilities, all > 0.
        q: (V,) reference probabilities, all > 0.

    Returns:
        (mean, variance) as floats. For k1 and k3 the mean equals exact_kl(p, q).
    """
    _check_estimator(estimator)
    p, q = _as_probs(p, False, "p"), _as_probs(q, False, "q")  # (V,), (V,)
    if p.dim() != 1 or p.shape != q.shape:
        raise ValueError("p and q must both be 1-D of the same length V")
    if (p <= 0).any() or (q <= 0).any():
        raise ValueError("p and q must be strictly positive for the estimators to be finite")
    k = _estimate_from_logratio(q.log() - p.log(), estimator)  # (V,)
    mean = (p * k).sum()
    var = (p * (k - mean) ** 2).sum()
    return mean.item(), var.item()


def estimator_bias_variance(
    p: torch.Tensor,
    q: torch.Tensor,
    n_samples: int,
    estimator: str = "k3",
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Monte Carlo bias and variance of a KL estimator against the exact KL(p || q).

    Draws n_samples outcomes y ~ p (the policy), evaluates the estimator on each, and
    compares the sample mean with the exact KL.

    Args:
        p: (V,) policy probabilities (the sampling distribution), all > 0.
        q: (V,) reference probabilities, all > 0.
        n_samples: number of Monte Carlo samples (>= 2).
        estimator: "k1", "k2" or "k3".
        generator: optional torch.Generator for reproducible draws.

    Returns:
        dict with "kl" (exact), "mean" (sample mean of the estimator), "bias" (mean - kl),
        "var" (unbiased sample variance of one estimate), "std_err" (standard error of the
        mean, sqrt(var / n)) and "rel_std" (sample std / kl, the figure Schulman's note
        reports).
    """
    _check_estimator(estimator)
    checks.count("n_samples", n_samples, 2)
    p, q = _as_probs(p, False, "p"), _as_probs(q, False, "q")  # (V,), (V,)
    if p.dim() != 1 or p.shape != q.shape:
        raise ValueError("p and q must both be 1-D of the same length V")
    if (p <= 0).any() or (q <= 0).any():
        raise ValueError("p and q must be strictly positive for the estimators to be finite")
    kl = exact_kl(p, q).item()
    y = torch.multinomial(p, n_samples, replacement=True, generator=generator)  # (N,)
    logratio = q.log()[y] - p.log()[y]  # (N,)
    k = _estimate_from_logratio(logratio, estimator)  # (N,)
    mean, var = k.mean().item(), k.var(correction=1).item()
    return {
        "kl": kl,
        "mean": mean,
        "bias": mean - kl,
        "var": var,
        "std_err": math.sqrt(var / n_samples),
        "rel_std": math.sqrt(var) / kl if kl > 0 else float("inf"),
    }
