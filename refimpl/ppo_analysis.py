"""How good an advantage is (claim C15, notebook 04), apart from the PPO trainer that logs it.

``mc_pass_rates`` estimates each prompt's pass rate p(x) = E[R | x], the true value of the
prompt, from extra samples; ``advantage_quality`` compares a method's baseline and advantages
with it: the critic's V(x) for PPO, the group mean for GRPO, on the same batch.
"""
from __future__ import annotations

import torch

from .grpo import group_advantages
from .ppo import pearson
from .rollouts import sample_groups


@torch.no_grad()
def mc_pass_rates(policy, base, problems, n_samples, reward_fn, temperature=1.0,
                  generator=None) -> torch.Tensor:
    """p(x) for each of the B problems: the mean reward of ``n_samples`` fresh completions
    from ``policy`` (the prompt's true value under that policy, up to sampling noise). (B,)"""
    mc = sample_groups(policy, base.tokenizer, base.task, problems, n_samples,
                       reward_fn=reward_fn, temperature=temperature, generator=generator)
    return mc.rewards.view(-1, n_samples).mean(1)                        # (B,)


def advantage_quality(rewards, pass_rates, values0=None, advantages0=None, group_size=1) -> dict:
    """How well each baseline and advantage tracks the Monte-Carlo advantage r - p(x).

    rewards: (B*G,) sampled rewards (group-major); pass_rates: (B,) p(x) from mc_pass_rates;
    values0, advantages0: (B*G,) the critic's V(x) and PPO's advantage at the first
    completion token (optional). Returns "mc_pass_rate" (mean p), and as available
    "value_mae_mc" (mean |V(x) - p(x)|), "value_corr_mc", "adv_corr_mc" (corr of PPO's A_0
    with r - p), and for G >= 2 GRPO's group mean and group advantage on the same rollouts:
    "baseline_mae_mc/group", "adv_corr_mc/group".
    """
    G = group_size
    if rewards.dim() != 1 or rewards.numel() != pass_rates.numel() * G:
        raise ValueError(f"rewards {tuple(rewards.shape)} must be (B*G,) with B = "
                         f"{pass_rates.numel()} pass rates and G = {G}")
    p = pass_rates.to(rewards.dtype).repeat_interleave(G)                # (B*G,)
    out = {"mc_pass_rate": pass_rates.mean().item()}
    if values0 is not None:
        out["value_mae_mc"] = (values0 - p).abs().mean().item()
        out["value_corr_mc"] = pearson(values0, p)
    if advantages0 is not None:
        out["adv_corr_mc"] = pearson(advantages0, rewards - p)
    if G >= 2:
        group_mean = rewards.view(-1, G).mean(1).repeat_interleave(G)    # (B*G,)
        out["baseline_mae_mc/group"] = (group_mean - p).abs().mean().item()
        out["baseline_corr_mc/group"] = pearson(group_mean, p)
        out["adv_corr_mc/group"] = pearson(group_advantages(rewards, G), rewards - p)
    return out
