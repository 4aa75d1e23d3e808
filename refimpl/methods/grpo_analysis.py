"""Measurements behind notebook 03 (GRPO); ``refimpl.figures.plots_grpo`` draws them.

- the share of uniform groups, p^G + (1-p)^G (DAPO, Yu et al. 2025, sec. 3.2), predicted from
  per-prompt pass counts with the unbiased estimator C(c, G) / C(n, G) of p^G (claim C8);
- the noise of the GRPO gradient as a function of the group size G (claim C9), from
  per-sample gradients and their Gram matrix;
- the expected advantage mass per prompt with and without std scaling (Liu et al. 2025,
  Dr. GRPO, sec. 3.1: the "question-level difficulty bias", claim C11);
- the weight each loss aggregation gives a completion of a given length (Dr. GRPO's
  "response-level length bias", claim C11b).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch.func import functional_call, grad, vmap

from refimpl.core import checks
from refimpl.core.logprobs import sequence_logprobs
from refimpl.methods.grpo import LOSS_AGGS, group_advantages

# ------------------------------------------------------------------ uniform groups (C8)

def uniform_shares_from_counts(correct: torch.Tensor, n: int, G: int) -> dict[str, float]:
    """Unbiased estimates of E_prompts[p^G] (all correct) and E_prompts[(1-p)^G] (all wrong)
    from c correct out of n samples per prompt.

    C(c, G) / C(n, G) is the chance that G of the n samples drawn without replacement are all
    correct; its expectation over the n samples is exactly p^G. Plugging c / n into p^G instead
    would be biased upwards for G >= 2.

    Args:
        correct: (M,) number of correct samples for each of M prompts.
        n: samples per prompt (n >= G).
        G: group size.

    Returns:
        {"all_correct": ..., "all_wrong": ..., "uniform": their sum}.
    """
    if G > n:
        raise ValueError(f"need n >= G to estimate p^G without bias, got n={n}, G={G}")
    total, counts = math.comb(n, G), [int(c) for c in correct.tolist()]
    right = sum(math.comb(c, G) for c in counts) / total / len(counts)
    wrong = sum(math.comb(n - c, G) for c in counts) / total / len(counts)
    return {"all_correct": right, "all_wrong": wrong, "uniform": right + wrong}


def uniform_share_from_counts(correct: torch.Tensor, n: int, G: int) -> float:
    """Unbiased estimate of E_prompts[p^G + (1-p)^G] (see uniform_shares_from_counts)."""
    return uniform_shares_from_counts(correct, n, G)["uniform"]


# ------------------------------------------------------------------ gradient noise (C9)

def sequence_score_grads(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """Gradient of each completion's sequence log-prob w.r.t. all parameters.

    Args: the (N, P) prompt and (N, T) completion tensors of a rollout.
    Returns: (N, W) float tensor, W = number of trainable weights, row i = grad log pi(o_i | q_i).
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def logp(p, pi, pm, ci, cm):  # one sequence: (P,), (P,), (T,), (T,)
        fwd = lambda i, m: functional_call(model, p, (i, m))  # noqa: E731
        return sequence_logprobs(fwd, pi[None], pm[None], ci[None], cm[None]).sum()

    with warnings.catch_warnings():  # vmap has no batching rule for CPU flash attention
        warnings.simplefilter("ignore", UserWarning)
        g = vmap(grad(logp), in_dims=(None, 0, 0, 0, 0))(
            params, prompt_ids, prompt_mask, completion_ids, completion_mask)
    return torch.cat([v.flatten(1) for v in g.values()], dim=1)  # (N, W)


def gradient_noise_vs_g(scores, rewards, lengths, pools, Gs, n_resamples=4000, generator=None,
                        scale="group", eps=1e-4) -> list[dict]:
    """Mean and noise of the GRPO policy gradient when each prompt gets G samples.

    At ratio 1 with beta = 0 and the "grpo" aggregation, the gradient of grpo_loss over B
    prompts with G samples each is g = sum_i c_i s_i with c_i = -A_i / (B G |o_i|) and
    s_i = grad log pi(o_i). Groups are redrawn with replacement from each prompt's pool
    of samples (so the pool is the population), and everything is computed from the Gram
    matrix S S^T, so no (resamples x W) tensor is ever formed.

    Args:
        scores: (M, W) per-sample gradients s_i of all pooled samples.
        rewards: (M,) their rewards; lengths: (M,) their completion lengths |o_i|.
        pools: list of B index tensors into 0..M-1, one per prompt.
        Gs: group sizes to try; n_resamples: Z redraws per G.

    Returns: one dict per G with "G", "mean_norm" (||E g||), "var" (E||g - E g||^2, the trace
    of the covariance), "rel_noise" (sqrt(var) / ||E g||), "frac_zero" (share of redrawn
    groups that were uniform) and "var_x_G" (var * G, the noise per sample budget).
    """
    gram = scores.double() @ scores.double().T  # (M, M)
    M, B = scores.shape[0], len(pools)
    out = []
    for G in Gs:
        coef = torch.zeros(n_resamples, M, dtype=torch.float64)  # (Z, M)
        zero = 0.0
        for pool in pools:
            pick = torch.randint(len(pool), (n_resamples, G), generator=generator)  # (Z, G)
            idx = pool[pick]  # (Z, G)
            adv = group_advantages(rewards[idx].reshape(-1).double(), G, scale=scale, eps=eps)
            adv = adv.view(n_resamples, G)  # (Z, G)
            zero += (adv == 0).all(dim=1).double().mean().item() / B
            coef.scatter_add_(1, idx, -adv / (B * G * lengths[idx].double()))  # (Z, M)
        mean_coef = coef.mean(0)  # (M,)
        second = ((coef @ gram) * coef).sum(1).mean()  # E ||g||^2
        mean_sq = mean_coef @ gram @ mean_coef  # ||E g||^2
        var = (second - mean_sq).item()
        norm = math.sqrt(max(mean_sq.item(), 0.0))
        out.append({"G": G, "mean_norm": norm, "var": var, "rel_noise": math.sqrt(max(var, 0)) / norm,
                    "frac_zero": zero, "var_x_G": var * G})
    return out


# ------------------------------------------------------------------ difficulty bias (C11)

def expected_abs_advantage(p: float, G: int, scale: str = "group", eps: float = 1e-4) -> float:
    """E[sum_i |A_i|] over one group of G binary rewards with pass rate p (exact enumeration).

    With scale="none" this is 2 G p (1-p) (1 - 1/G)-like and vanishes at p = 0 or 1 as the
    group variance does; with "group" the division by the std lifts prompts whose groups
    rarely disagree (Dr. GRPO's difficulty bias).
    """
    total = 0.0
    for c in range(G + 1):
        r = torch.tensor([1.0] * c + [0.0] * (G - c), dtype=torch.float64)  # (G,)
        a = group_advantages(r, G, scale=scale, eps=eps).abs().sum().item()
        total += math.comb(G, c) * p**c * (1 - p) ** (G - c) * a
    return total


def sequence_weights(mask: torch.Tensor, loss_agg: str, max_tokens: int | None = None) -> torch.Tensor:
    """The weight w_i that ``grpo_loss``'s aggregation gives completion i (claim C11b).

    At ratio 1 with beta = 0 every token of o_i gets the same weight, so the loss's gradient
    is -sum_i w_i A_i grad log pi(o_i): w_i scales the push on the whole completion.

        grpo      w_i = 1 / (B G |o_i|)      short completions pushed harder (length bias)
        dapo      w_i = 1 / sum_j |o_j|      the same for every completion of the batch
        dr_grpo   w_i = 1 / (B G T)          a constant (T = max_tokens, default the width)

    mask: (B*G, T) bool completion mask; returns (B*G,) float64 weights.
    """
    checks.one_of("loss_agg", loss_agg, LOSS_AGGS)
    checks.tensor("mask", mask, dims=(2,), floating=False)
    rows, T = mask.shape                                               # rows = B*G
    lengths = mask.sum(1).double()                                     # (B*G,)
    if loss_agg == "grpo":
        return 1.0 / (rows * lengths.clamp(min=1))
    if loss_agg == "dapo":
        return torch.full((rows,), 1.0 / lengths.sum().clamp(min=1).item(), dtype=torch.float64)
    return torch.full((rows,), 1.0 / (rows * (max_tokens or T)), dtype=torch.float64)
