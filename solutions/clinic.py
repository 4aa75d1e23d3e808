"""Bug clinic: six short functions from RL-for-LLM trainers, each with one silent bug.

Every function here runs and returns plausible numbers, and each is wrong in a way that real
trainers have shipped: the kind of bug that no exception reveals, only a check against what
the function is supposed to compute. Read the docstring, find the line that disagrees with it,
and fix it. Grade your fixes with ``python -m grader --only clinic``.

1. ``kl_penalized_rewards``: a KL penalty with the wrong sign of the log-ratio (it rewards
   drifting away from the reference).
2. ``group_mean_baseline``: GRPO groups scrambled by reshaping the batch in the wrong order.
3. ``stable_k3``: the k3 KL estimator written with exp(x) - 1, which cancels catastrophically
   in float32 for the small log-ratios that training produces (use expm1).
4. ``whiten_kept``: advantages normalised with statistics of the whole batch although some
   completions were filtered out.
5. ``micro_batches_per_step``: a batch size counted in prompts instead of completions.
6. ``length_unbiased_loss``: a per-sequence length normalisation that shrinks the gradient
   of long answers, so long wrong answers are punished less (Dr. GRPO, Liu et al. 2025).
"""
import torch


def kl_penalized_rewards(rewards: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> torch.Tensor:
    """Sequence rewards with a KL penalty: r_i - beta * KL_i (as in PPO-style RLHF).

    KL_i is the k1 estimate of KL(pi_theta || pi_ref) on completion i, the sum over its tokens
    of log pi_theta - log pi_ref, so a policy that drifts away from the reference where it
    samples is penalised.

    Args:
        rewards: (B,) verifier rewards of the completions.
        logps: (B, T) log pi_theta of the sampled tokens.
        ref_logps: (B, T) log pi_ref of the same tokens.
        mask: (B, T) bool, True on completion tokens.
        beta: KL coefficient (>= 0).

    Returns:
        (B,) penalised rewards.
    """
    # BEGIN SOLUTION
    # BUGGY: log_ratio = ref_logps - logps  # (B, T)
    log_ratio = logps - ref_logps  # (B, T)
    # END SOLUTION
    kl = torch.where(mask, log_ratio, torch.zeros_like(log_ratio)).sum(dim=1)  # (B,)
    return rewards - beta * kl  # (B,)


def group_mean_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each completion's baseline: the mean reward of its own group (GRPO, Shao et al. 2024).

    The B*G rewards come from B prompts with G completions each, prompt-major:
    rewards[b * G + g] is completion g of prompt b (prompts.repeat_interleave(G) order).

    Args:
        rewards: (B*G,) rewards, each prompt's G rewards contiguous.
        group_size: G >= 1.

    Returns:
        (B*G,) the mean of each completion's group, in the order of rewards.
    """
    # BEGIN SOLUTION
    # BUGGY: grouped = rewards.reshape(group_size, -1).T  # (B, G)
    grouped = rewards.reshape(-1, group_size)  # (B, G)
    # END SOLUTION
    return grouped.mean(dim=1, keepdim=True).expand_as(grouped).reshape(-1)  # (B*G,)


def stable_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi_theta || pi_ref), accurate in float32.

    With x = ref_logps - logps, k3 = exp(x) - 1 - x (Schulman 2020). Near convergence x is tiny
    (1e-4 and below) and k3 ~ x^2 / 2 is far below float32's resolution of exp(x) around 1,
    so exp(x) - 1 loses every significant digit; torch.expm1(x) computes exp(x) - 1 exactly.

    Args:
        logps: (B, T) log pi_theta of the sampled tokens (any float dtype).
        ref_logps: (B, T) log pi_ref of the same tokens.

    Returns:
        (B, T) k3 >= 0, in the dtype of logps, with a small relative error even when x is tiny.
    """
    x = ref_logps - logps  # (B, T)
    # BEGIN SOLUTION
    # BUGGY: return torch.exp(x) - 1 - x  # (B, T)
    return torch.expm1(x) - x  # (B, T)
    # END SOLUTION


def whiten_kept(advantages: torch.Tensor, keep: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise advantages over the completions that survived a filter; zero the others.

    A trainer filters completions out of the loss (truncated ones, or groups whose rewards are
    all equal); the mean and standard deviation must then come from the kept completions only,
    or the filtered ones shift and squeeze the advantages of the rest.

    Args:
        advantages: (N,) raw advantages.
        keep: (N,) bool, True for the completions that enter the loss (at least two).
        eps: added to the (unbiased) standard deviation.

    Returns:
        (N,) (A - mean_kept) / (std_kept + eps) where keep is True, 0 elsewhere.
    """
    # BEGIN SOLUTION
    # BUGGY: mean, std = advantages.mean(), advantages.std()
    kept = advantages[keep]  # (K,)
    mean, std = kept.mean(), kept.std()
    # END SOLUTION
    white = (advantages - mean) / (std + eps)  # (N,)
    return torch.where(keep, white, torch.zeros_like(white))  # (N,)


def micro_batches_per_step(prompts_per_step: int, group_size: int, micro_batch_size: int) -> int:
    """How many micro-batches of completions one optimiser step accumulates.

    Each prompt is sampled group_size times, and a micro-batch holds micro_batch_size
    completions (not prompts), so a step sees prompts_per_step * group_size completions.

    Args:
        prompts_per_step: prompts in one optimiser step.
        group_size: completions per prompt (G).
        micro_batch_size: completions per forward/backward pass.

    Returns:
        The number of micro-batches; ValueError when they do not divide the step evenly.
    """
    # BEGIN SOLUTION
    # BUGGY: completions = prompts_per_step  # one per prompt
    completions = prompts_per_step * group_size  # every prompt has G completions
    # END SOLUTION
    if completions % micro_batch_size != 0:
        raise ValueError(f"{completions} completions do not split into micro-batches of {micro_batch_size}")
    return completions // micro_batch_size


def length_unbiased_loss(per_token_loss: torch.Tensor, mask: torch.Tensor, max_tokens: int) -> torch.Tensor:
    """Dr. GRPO's aggregation: sum of the masked token losses over B * max_tokens.

    Dividing each completion's sum by its own length (the original GRPO loss) gives every
    token of a long completion a smaller gradient, so a long wrong answer is pushed down less
    than a short one. A constant normaliser (the generation budget) treats every token alike.

    Args:
        per_token_loss: (B, T) loss of every token.
        mask: (B, T) bool, True on completion tokens.
        max_tokens: the generation budget (a constant, >= T).

    Returns:
        A scalar: sum_{i,t} mask * per_token_loss / (B * max_tokens).
    """
    masked = per_token_loss.masked_fill(~mask, 0.0)  # (B, T)
    # BEGIN SOLUTION
    # BUGGY: return (masked.sum(dim=1) / mask.sum(dim=1).clamp(min=1)).mean()
    return masked.sum() / (per_token_loss.shape[0] * max_tokens)
    # END SOLUTION
