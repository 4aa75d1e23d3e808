"""How good an advantage is, and whether PPO's critic can learn at all (claim C15, notebook 04),
apart from the PPO trainer that logs it.

``mc_pass_rates`` estimates each prompt's pass rate p(x) = E[R | x], the true value of the
prompt, from extra samples; ``advantage_quality`` compares a method's baseline and advantages
with it: the critic's V(x) for PPO, the group mean for GRPO, on the same batch.
``critic_run`` fits the critic alone to a fixed policy's returns and measures its explained
variance on held-out rollouts against the prompt-level oracle V = p(x): the claims study's
check of whether a learned value function is accurate enough to be evidence.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from refimpl.core import checks
from refimpl.core.rollouts import sample_groups
from refimpl.core.training import adamw, check_fields
from refimpl.methods.grpo import group_advantages
from refimpl.methods.ppo import ValueModel, explained_variance, pearson


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


# ------------------------------------------------------------------ can the critic learn? (C15)

CRITIC_METHODS = ("critic", "critic_head")


@dataclass
class CriticRunConfig:
    """One critic fit: ``budget_samples`` completions of the fixed base policy in batches of
    B x G, then held-out rollouts of G samples per test problem, each problem's p(x) estimated
    from ``mc_samples`` more."""

    budget_samples: int = 20480
    prompts_per_step: int = 32       # B
    group_size: int = 8              # G
    mc_samples: int = 32
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 1,
                            "mc_samples": 2, "seed": None})


def critic_run(method: str, base, lr: float, cfg: CriticRunConfig, problems) -> dict:
    """Fit PPO's critic (``refimpl.methods.ppo.ValueModel``: the SFT trunk and a zero value head) to
    the Monte Carlo returns of the base policy, and measure it on held-out rollouts.

    method: "critic" trains trunk and head, "critic_head" the head alone (the SFT features
    frozen). The policy never changes and every token's target is its completion's final
    reward (gamma = lambda = 1, no KL), so the target is the cleanest a critic can get:
    V(s_t) should learn P(right | x, y_<t). Returns {"explained_variance" (tokens of the
    held-out rollouts), "oracle_ev" (the same for the prompt-level oracle V = p(x)),
    "half_oracle_ev", "corr_v0_p" (Pearson of V at the first token, mean per prompt, with
    p(x)), "steps", "samples"}.
    """
    checks.one_of("method", method, CRITIC_METHODS)
    checks.positive("lr", lr)
    cfg = checks.config("cfg", cfg, CriticRunConfig)
    cfg.validate()
    if not problems:
        raise ValueError("critic_run got no problems to measure on")
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    critic = ValueModel(base.model)
    opt = adamw(critic.v_head.parameters() if method == "critic_head" else critic.parameters(), lr)
    pool = base.train_problems(4096, seed=cfg.seed)
    rng = random.Random(cfg.seed)
    steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
    for _ in range(steps):
        ro = sample_groups(base.model, base.tokenizer, base.task,
                           rng.sample(pool, cfg.prompts_per_step), cfg.group_size, generator=gen)
        values = critic(ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
        target = ro.rewards[:, None].expand_as(values)                    # (B*G, T)
        loss = ((values - target) ** 2)[ro.completion_mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return {**critic_quality(critic, base, problems, cfg, gen), "steps": steps,
            "samples": steps * cfg.prompts_per_step * cfg.group_size}


@torch.no_grad()
def critic_quality(critic, base, problems, cfg: CriticRunConfig, gen) -> dict:
    """The held-out measures of ``critic_run`` for a fitted critic (its docstring)."""
    G = cfg.group_size
    ro = sample_groups(base.model, base.tokenizer, base.task, problems, G, generator=gen)
    p = mc_pass_rates(base.model, base, problems, cfg.mc_samples, base.task.verify,
                      generator=gen)                                      # (B,)
    mask = ro.completion_mask                                             # (B*G, T)
    returns = ro.rewards[:, None].expand(-1, mask.shape[1]).clone()      # (B*G, T)
    values = critic(ro.prompt_ids, ro.prompt_mask, ro.completion_ids, mask)
    oracle = p.repeat_interleave(G)[:, None].expand_as(returns).clone()  # (B*G, T)
    ev, oracle_ev = explained_variance(values, returns, mask), explained_variance(oracle, returns, mask)
    return {"explained_variance": ev, "oracle_ev": oracle_ev, "half_oracle_ev": oracle_ev / 2,
            "corr_v0_p": pearson(values[:, 0].view(-1, G).mean(1), p)}
