"""Exercise: GRPO's group-relative advantages, clipped loss and k3 KL estimator.

Shao et al. 2024, "DeepSeekMath", eq. 3 (the clipped objective) and eq. 4 (the k3 KL
estimator); DAPO (Yu et al. 2025) for the token-level aggregation. Notebook 03a derives the
advantages and the clipped loss, notebook 03b the uniform-group probability and k3. Check your work with ``python -m grader --only group_advantages`` (and
``grpo_clipped_loss``, ``kl_k3``, ``prob_uniform_group``, ``grpo_zero_gradient``; the last is
article exercise 2, see solutions/exercise2_grpo_zero_gradient.md).
"""
import torch

LOSS_AGGS = ("grpo", "dapo")


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised advantages A_i = (r_i - mean(r)) / (std(r) + eps).

    The B*G rewards come from B prompts with G sampled completions each, stored
    contiguously: rewards[0:G] belong to prompt 0, rewards[G:2G] to prompt 1, and so on.
    Within each group, subtract the group's mean and divide by the group's *unbiased*
    standard deviation (``correction=1``, the default of ``torch.std``; TRL, verl and CS336
    use it too) plus eps. The eps keeps the division finite when every reward in a group is
    the same (the std is then 0, and so is the numerator).

    Args:
        rewards: (B*G,) float rewards, each prompt's G rewards contiguous.
        group_size: G >= 2, completions per prompt.
        eps: added to the std before dividing (1e-4, as TRL).

    Returns:
        (B*G,) advantages, in the same order as rewards; they sum to zero within each group.

    Example: rewards [1, 0, 0, 0] with G = 4 have mean 0.25 and unbiased std 0.5, so the
    advantages are [0.75, -0.25, -0.25, -0.25] / 0.5001 = [1.4997, -0.4999, -0.4999, -0.4999].
    """
    if group_size < 2 or rewards.numel() % group_size != 0:
        raise ValueError(f"need G >= 2 and a multiple of G rewards, got G={group_size}, "
                         f"{rewards.numel()} rewards")
    # BEGIN SOLUTION
    grouped = rewards.reshape(-1, group_size)  # (B, G)
    mean = grouped.mean(dim=1, keepdim=True)  # (B, 1)
    std = grouped.std(dim=1, keepdim=True)  # (B, 1), unbiased
    return ((grouped - mean) / (std + eps)).reshape(-1)  # (B*G,)
    # END SOLUTION


def grpo_clipped_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                      mask: torch.Tensor, clip_eps: float = 0.2,
                      loss_agg: str = "grpo") -> torch.Tensor:
    """The clipped GRPO surrogate loss at token level (no KL term), to minimise.

    For completion i and token t, with ratio rho = exp(logps - old_logps) (pi_old is the
    policy that sampled the completions, so treat old_logps as a constant):

        per_token_loss[i, t] = -min(rho * A_i, clip(rho, 1 - clip_eps, 1 + clip_eps) * A_i)

    Only tokens where mask is True count. Two ways to average them:

    - "grpo" (DeepSeekMath): average each completion's tokens, then average the B
      completions: sum_i (1/B) (1/|o_i|) sum_t per_token_loss[i, t].
    - "dapo" (DAPO's token-level loss): sum over every completion token of the batch
      divided by the number of such tokens.

    Args:
        logps: (B, T) log pi_theta of the completion tokens (differentiable).
        old_logps: (B, T) log pi_old of the same tokens.
        advantages: (B,) one advantage per completion (every token of o_i shares A_i).
        mask: (B, T) bool, True on completion tokens, False on padding.
        clip_eps: the clip range; 0.2 as in PPO and DeepSeekMath.
        loss_agg: "grpo" or "dapo".

    Returns:
        a scalar tensor (0-d), differentiable w.r.t. logps.

    Example: at the first inner step logps == old_logps, every ratio is 1, and the gradient
    of the "grpo" loss w.r.t. logps[i, t] is -A_i / (B |o_i|).
    """
    if loss_agg not in LOSS_AGGS:
        raise ValueError(f"unknown loss_agg {loss_agg!r}: use one of {LOSS_AGGS}")
    # BEGIN SOLUTION
    ratio = torch.exp(logps - old_logps.detach())  # (B, T)
    A = advantages.detach()[:, None]  # (B, 1)
    surr1 = ratio * A  # (B, T)
    surr2 = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A  # (B, T)
    per_token_loss = -torch.min(surr1, surr2)  # (B, T)
    masked = torch.where(mask, per_token_loss, torch.zeros_like(per_token_loss))  # (B, T)
    if loss_agg == "grpo":
        lengths = mask.sum(dim=1).clamp(min=1)  # (B,)
        return (masked.sum(dim=1) / lengths).mean()
    return masked.sum() / mask.sum()
    # END SOLUTION


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi_theta || pi_ref) (DeepSeekMath eq. 4; Schulman 2020).

    With the tokens sampled from pi_theta and logratio = ref_logps - logps,

        k3 = exp(logratio) - 1 - logratio.

    It is never negative (exp(x) >= 1 + x), it is 0 where both log-probs agree, and its
    mean over samples from pi_theta is the exact KL (an unbiased estimate).

    Args:
        logps: (B, T) log pi_theta of the sampled tokens.
        ref_logps: (B, T) log pi_ref of the same tokens.

    Returns:
        (B, T) per-token estimates (do not reduce them), differentiable w.r.t. logps.

    Example: logps = log 0.5 and ref_logps = log 0.25 give logratio = -log 2 and
    k3 = 0.5 - 1 + log 2 = 0.1931.
    """
    # BEGIN SOLUTION
    logratio = ref_logps - logps  # (B, T)
    return torch.expm1(logratio) - logratio  # (B, T)
    # END SOLUTION


def prob_uniform_group(p, G: int):
    """Probability that a group of G binary rewards is uniform (all 1 or all 0).

    If each of the G completions of a prompt is correct independently with probability p,
    the group gives GRPO no policy gradient exactly when all G agree.

    Args:
        p: success probability in [0, 1], a float or a tensor of them.
        G: group size (>= 2).

    Returns:
        p**G + (1 - p)**G, with the type of p (float or tensor).

    Example: p = 0.5, G = 4 gives 2 / 16 = 0.125; p = 0.05, G = 8 gives 0.6634.
    """
    # BEGIN SOLUTION
    return p**G + (1 - p) ** G
    # END SOLUTION
