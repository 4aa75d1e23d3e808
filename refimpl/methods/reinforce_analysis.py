"""The variance of the REINFORCE gradient estimate for each baseline, on the real model (claim
C12, notebook 05), apart from the trainer.

``score_gram`` builds the Gram matrix K = S S^T of the per-sample scores s_j = grad log
pi(y_j | x_j) of a pool of scored completions; ``estimator_variance`` resamples groups of G
from the pool and returns E||g - E g||^2 of g = 1/(B G) sum_i (r_i - b_i) s_i for each
baseline, computed from K alone.
"""
from __future__ import annotations

import torch

from refimpl.core.logprobs import token_logprobs
from refimpl.methods.reinforce import BASELINE_KINDS, baseline, gradient_variance, per_sample_grads


def score_gram(model, rollout) -> torch.Tensor:
    """Gram matrix K = S S^T (BN, BN) of the per-sample scores s_j = grad log pi(y_j | x_j).

    rollout: B prompts x N samples (N = rollout.group_size) sampled from ``model``. Row j of
    S (BN, W) is the gradient of sample j's sequence log-prob w.r.t. every trainable
    parameter (refimpl.methods.reinforce.per_sample_grads, one small backward pass per sample).
    Every REINFORCE estimate on these samples is a weighted sum g = w^T S, so its squared
    norm is w^T K w: K is all that the variance needs, and it is small.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    args = (rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, rollout.completion_mask)
    S = torch.empty(rollout.num_samples, sum(p.numel() for p in params))  # (BN, W)
    for j in range(rollout.num_samples):
        seq = token_logprobs(model, *(a[j:j + 1] for a in args)).sum(dim=1)  # (1,)
        S[j] = per_sample_grads(list(seq), params)[0]  # (W,)
    return (S @ S.T).double()  # (BN, BN)


def estimator_variance(gram: torch.Tensor, rewards: torch.Tensor, group_size: int,
                       kinds=BASELINE_KINDS, resamples: int = 4000, running_values=None,
                       generator=None) -> dict[str, float]:
    """Variance (trace of the covariance) of the REINFORCE gradient estimate per baseline.

    gram: (BN, BN) from ``score_gram``; rewards: (B, N) rewards of that pool (N samples per
        prompt, N >> G). One resample draws G = ``group_size`` of the N samples of each
        prompt with replacement (i.i.d. draws from the pool's empirical distribution),
        computes the baselines of each kind and g = 1/(B G) sum_i (r_i - b_i) s_i.
    running_values: (B,) the b(x) of kind "running" (default: each prompt's pool pass rate,
        the value a running average settles to while the policy stays put).
    Returns {kind: E||g - E g||^2} estimated over ``resamples`` draws (the same draws for
    every kind), using K = L L^T: the rows of W L have the pairwise distances of W S.
    """
    B, N = rewards.shape
    if gram.shape != (B * N, B * N):
        raise ValueError(f"gram {tuple(gram.shape)} does not match rewards (B, N) = {(B, N)}")
    if group_size < 2 or resamples < 2:
        raise ValueError(f"need group_size >= 2 and resamples >= 2, got {group_size}, {resamples}")
    jitter = 1e-9 * gram.diagonal().mean() * torch.eye(B * N, dtype=torch.float64)  # (BN, BN)
    L = torch.linalg.cholesky(gram.double() + jitter)  # (BN, BN)
    R = rewards.double()  # (B, N)
    running_values = R.mean(dim=1) if running_values is None else running_values.double()  # (B,)
    gen = generator or torch.Generator().manual_seed(0)
    idx = torch.randint(0, N, (resamples, B, group_size), generator=gen)  # (Z, B, G)
    r = torch.gather(R.expand(resamples, B, N), 2, idx)  # (Z, B, G)
    cols = (idx + torch.arange(B)[None, :, None] * N).reshape(resamples, -1)  # (Z, B*G)
    out = {}
    for kind in kinds:
        if kind == "running":
            b = running_values[None, :, None].expand_as(r)  # (Z, B, G)
        else:
            b = baseline(r.reshape(-1), group_size, kind).reshape(r.shape)  # (Z, B, G)
        w = torch.zeros(resamples, B * N, dtype=torch.float64)  # (Z, BN)
        w.scatter_add_(1, cols, ((r - b) / (B * group_size)).reshape(resamples, -1))
        out[kind] = gradient_variance(w @ L)
    return out
