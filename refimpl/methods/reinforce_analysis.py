"""The variance of the REINFORCE gradient estimate for each baseline, on the real model (claim
C12, notebook 05), apart from the trainer.

``score_gram`` builds the Gram matrix K = S S^T of the per-sample scores s_j = grad log
pi(y_j | x_j) of a pool of scored completions; ``estimator_variance`` resamples groups of G
from the pool and returns E||g - E g||^2 of g = 1/(B G) sum_i (r_i - b_i) s_i for each
baseline, computed from K alone. ``best_constant_baseline`` is the variance-minimising fixed
b*(x); ``rloo_excess_variance`` is what RLOO's random leave-one-out baseline costs on top of
the fixed baseline b = p(x) it estimates, in closed form. ``difficulty_bins`` and
``pass_rate_by_bin`` sort prompts by their measured pass rate (not by the task's level).
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
                       generator=None, fixed: dict | None = None) -> dict[str, float]:
    """Variance (trace of the covariance) of the REINFORCE gradient estimate per baseline.

    gram: (BN, BN) from ``score_gram``; rewards: (B, N) rewards of that pool (N samples per
        prompt, N >> G). One resample draws G = ``group_size`` of the N samples of each
        prompt with replacement (i.i.d. draws from the pool's empirical distribution),
        computes the baselines of each kind and g = 1/(B G) sum_i (r_i - b_i) s_i.
    running_values: (B,) the b(x) of kind "running" (default: each prompt's pool pass rate,
        the value a running average settles to while the policy stays put).
    fixed: {name: (B,) b(x)} more fixed baselines, measured on the same draws under ``name``
        (e.g. ``best_constant_baseline``'s b*).
    Returns {kind or name: E||g - E g||^2} estimated over ``resamples`` draws (the same draws
    for every kind), using K = L L^T: the rows of W L have the pairwise distances of W S.
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
    consts = {"running": running_values, **{k: v.double() for k, v in (fixed or {}).items()}}
    out = {}
    for kind in list(kinds) + list(fixed or {}):
        if kind in consts:
            b = consts[kind][None, :, None].expand_as(r)  # (Z, B, G)
        else:
            b = baseline(r.reshape(-1), group_size, kind).reshape(r.shape)  # (Z, B, G)
        w = torch.zeros(resamples, B * N, dtype=torch.float64)  # (Z, BN)
        w.scatter_add_(1, cols, ((r - b) / (B * group_size)).reshape(resamples, -1))
        out[kind] = gradient_variance(w @ L)
    return out


def _pool_blocks(gram: torch.Tensor, rewards: torch.Tensor):
    """Each prompt's (N, N) block of the Gram matrix and its (N,) rewards, as float64."""
    B, N = rewards.shape
    if gram.shape != (B * N, B * N):
        raise ValueError(f"gram {tuple(gram.shape)} does not match rewards (B, N) = {(B, N)}")
    idx = torch.arange(B * N).view(B, N)  # (B, N)
    return gram.double()[idx[:, :, None], idx[:, None, :]], rewards.double()  # (B, N, N), (B, N)


def best_constant_baseline(gram: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """b*(x) = E[r |s|^2] / E[|s|^2] over each prompt's pool (notebook 05, eq. 2): the fixed
    baseline of least variance, the pass rate weighted by the squared score norms.

    gram: (BN, BN) from ``score_gram``; rewards: (B, N). Returns (B,). A fixed b(x) lowers
    the variance below b = 0 exactly when |b - b*| < |b*|: when it is nearer b* than 0 is.
    """
    K, R = _pool_blocks(gram, rewards)                       # (B, N, N), (B, N)
    sq = K.diagonal(dim1=1, dim2=2)                          # (B, N) |s_j|^2
    return (R * sq).sum(1) / sq.sum(1)                       # (B,)


def rloo_excess_variance(gram: torch.Tensor, rewards: torch.Tensor, group_size: int) -> float:
    """Var(g) with RLOO's baseline minus Var(g) with the fixed baseline b = p(x), exactly, for
    groups of G i.i.d. draws from each prompt's pool (the draws of ``estimator_variance``).

    RLOO's b_i is the mean of G - 1 other rewards: an unbiased but noisy estimate of p(x).
    With c = r - p, m = E[s] and v = E[c s] over a prompt's pool, its noise costs

        (Var(r) E|s|^2 + |v|^2 + (G - 2) Var(r) |m|^2) / (G (G - 1)) - 2 <E[c^2 s], m> / G

    per prompt, over B^2 (the batch mean). Under the policy itself E[s] = 0 (m = 0) and the
    cost, (Var(r) E|s|^2 + |v|^2) / (G (G - 1)), is never negative: RLOO is the fixed b = p
    plus a penalty shrinking like 1 / G^2. gram: (BN, BN); rewards: (B, N). Returns a float.
    """
    G = group_size
    if G < 2:
        raise ValueError(f"RLOO needs group_size >= 2, got {G}")
    K, R = _pool_blocks(gram, rewards)                       # (B, N, N), (B, N)
    B, N = R.shape
    c = R - R.mean(1, keepdim=True)                          # (B, N)
    var_r, s2 = (c ** 2).mean(1), K.diagonal(dim1=1, dim2=2).mean(1)     # (B,), (B,)
    Kc = K @ c[:, :, None]                                   # (B, N, 1)
    v2 = (c[:, None, :] @ Kc).flatten() / N ** 2             # (B,) |E[c s]|^2
    m2 = K.sum((1, 2)) / N ** 2                              # (B,) |E[s]|^2
    c2m = (c ** 2 * K.sum(2)).sum(1) / N ** 2                # (B,) <E[c^2 s], E[s]>
    per_prompt = (var_r * s2 + v2 + (G - 2) * var_r * m2) / (G * (G - 1)) - 2 * c2m / G
    return (per_prompt.sum() / B ** 2).item()


def difficulty_bins(rewards: torch.Tensor) -> torch.Tensor:
    """Sort prompts by measured difficulty: (B,) bin 0 "hard" (no right sample among the
    row's n), 1 "medium" (exactly one), 2 "easy" (two or more). rewards: (B, n) in {0, 1}.
    Sort on one set of samples and measure on another: measuring on the sorting samples
    flatters the easy bin and slanders the hard one (selection bias)."""
    right = (rewards > 0.5).sum(1)                           # (B,)
    return right.clamp(max=2)                                # (B,)


def pass_rate_by_bin(rewards: torch.Tensor, bins: torch.Tensor, n_bins: int = 3) -> dict:
    """Per bin: {"prompts", "pass_rate", "all_zero"} lists of n_bins entries: the number of
    prompts, their mean reward and the share of rows of ``rewards`` (B, n) that are all 0,
    a group with no signal (NaN for an empty bin)."""
    out = {"prompts": [], "pass_rate": [], "all_zero": []}
    for b in range(n_bins):
        rows = rewards[bins == b]                            # (B_b, n)
        out["prompts"].append(int(rows.shape[0]))
        out["pass_rate"].append(rows.mean().item() if rows.numel() else float("nan"))
        out["all_zero"].append((rows.sum(1) == 0).double().mean().item() if rows.numel()
                               else float("nan"))
    return out
