"""Exercise: REINFORCE with a leave-one-out baseline (RLOO).

With a binary verifier V(x, y), the policy gradient with a baseline b is

    grad J = E[(V(x, y) - b) * grad log pi_theta(y | x)]

and it stays unbiased as long as b does not depend on the sample y it multiplies.
Sampling G completions per prompt gives a baseline for free: for sample i, the mean reward
of the other G - 1 samples of the same prompt (REINFORCE leave-one-out; Kool et al. 2019,
Ahmadian et al. 2024, "Back to Basics").

Layout used throughout: the B*G rows are grouped by prompt, so rows b*G .. b*G + G - 1 are
the G samples of prompt b.

Write the two functions below. The reference implementation is refimpl/methods/reinforce.py; do
not import it here.
"""
import torch


def reinforce_loss(seq_logps: torch.Tensor, rewards: torch.Tensor, baselines: torch.Tensor) -> torch.Tensor:
    """REINFORCE surrogate loss whose gradient is the policy-gradient estimate.

    Args:
        seq_logps: (B*G,) sequence log-probs log pi_theta(y_i | x_i), attached to the graph.
        rewards: (B*G,) verifier rewards r_i.
        baselines: (B*G,) baselines b_i (for example from `rloo_baseline`).

    Returns:
        A scalar tensor: -mean_i (r_i - b_i) * seq_logps_i. The advantage (r_i - b_i) must
        be treated as a constant (detached), so that gradients reach seq_logps only and
        never rewards or baselines (which may come from a learned model). Minimising it
        moves theta along mean_i (r_i - b_i) * grad log pi_theta(y_i | x_i).
    """
    # BEGIN SOLUTION
    advantages = (rewards - baselines).detach()  # (B*G,)
    return -(advantages * seq_logps).mean()
    # END SOLUTION


def rloo_baseline(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Leave-one-out baseline: for each sample, the mean reward of the other samples of its group.

    Args:
        rewards: (B*G,) rewards, G consecutive samples per prompt.
        group_size: G, the number of samples per prompt.

    Returns:
        (B*G,) float tensor with b_i = (sum of the rewards in i's group - r_i) / (G - 1).
        Example: rewards [1, 0, 0, 1] with G = 4 give [1/3, 2/3, 2/3, 1/3].

    Raises:
        ValueError: if group_size < 2 (a group of one has no other sample) or the number of
            rewards is not a multiple of group_size.
    """
    # BEGIN SOLUTION
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2 for a leave-one-out baseline, got {group_size}")
    if rewards.numel() % group_size != 0:
        raise ValueError(f"{rewards.numel()} rewards are not a multiple of group_size={group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.float()  # (B*G,)
    grouped = rewards.reshape(-1, group_size)  # (B, G)
    total = grouped.sum(dim=1, keepdim=True)  # (B, 1)
    return ((total - grouped) / (group_size - 1)).reshape(-1)  # (B*G,)
    # END SOLUTION
