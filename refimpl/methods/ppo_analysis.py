"""How good an advantage is, and whether PPO's critic can learn at all (claim C15, notebook 04),
apart from the PPO trainer that logs it.

``mc_pass_rates`` estimates each prompt's pass rate p(x) = E[R | x], the true value of the
prompt, from extra samples; ``advantage_quality`` compares a method's baseline and advantages
with it: the critic's V(x) for PPO, the group mean for GRPO, on the same batch.
``critic_run`` fits the critic alone to a fixed policy's returns and measures its explained
variance on held-out rollouts, at checkpoints of the budget, against the prompt-level oracle
V = p(x): the claims study's check (C15) of whether more completions, or training the head
alone on the SFT features, make a learned value function accurate.
``dense_critic_run`` fits the same critic to dense rewards from the step verifier
(``step_token_rewards``), which it can learn, and scores GAE's advantages at several lambda
against Monte Carlo advantages (``mc_prefix_values``): the lambda trade-off of notebook 04.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from refimpl.core import checks
from refimpl.core.model import eval_mode
from refimpl.core.rewards import process_reward
from refimpl.core.rollouts import sample_groups
from refimpl.core.sampling import generate
from refimpl.core.training import adamw, check_fields
from refimpl.methods.grpo import group_advantages
from refimpl.methods.ppo import ValueModel, explained_variance, gae_advantages, pearson


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
    B x G, measured on held-out rollouts of G samples per test problem (each problem's p(x)
    estimated from ``mc_samples`` more) before the first step, every ``eval_every`` steps
    (0: never) and after the last."""

    budget_samples: int = 20480
    prompts_per_step: int = 32       # B
    group_size: int = 8              # G
    mc_samples: int = 32
    eval_every: int = 0
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 1,
                            "mc_samples": 2, "eval_every": 0, "seed": None})


def critic_run(method: str, base, lr: float, cfg: CriticRunConfig, problems) -> dict:
    """Fit PPO's critic (``refimpl.methods.ppo.ValueModel``: the SFT trunk and a zero value head) to
    the Monte Carlo returns of the base policy, and measure it on held-out rollouts.

    method: "critic" trains trunk and head, "critic_head" the head alone (the SFT features
    frozen). The policy never changes and every token's target is its completion's final
    reward (gamma = lambda = 1, no KL), so the target is the cleanest a critic can get:
    V(s_t) should learn P(right | x, y_<t). The held-out rollouts and their p(x) are drawn
    once, before training, so every checkpoint is scored on the same tokens.

    Returns {"explained_variance" (tokens of the held-out rollouts, after the last step),
    "oracle_ev" (the same for the prompt-level oracle V = p(x)), "half_oracle_ev",
    "corr_v0_p" (Pearson of V at the first token, mean per prompt, with p(x)), "ev_curve"
    (the explained variance before step 1, every eval_every steps and after the last),
    "ev_samples" (the completions trained on at each of those points), "steps", "samples"}.
    """
    checks.one_of("method", method, CRITIC_METHODS)
    checks.positive("lr", lr)
    cfg = checks.config("cfg", cfg, CriticRunConfig)
    cfg.validate()
    if not problems:
        raise ValueError("critic_run got no problems to measure on")
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    held_out = critic_eval_set(base, problems, cfg, gen)
    critic = ValueModel(base.model)
    opt = adamw(critic.v_head.parameters() if method == "critic_head" else critic.parameters(), lr)
    pool = base.train_problems(4096, seed=cfg.seed)
    rng = random.Random(cfg.seed)
    BG = cfg.prompts_per_step * cfg.group_size
    steps = -(-cfg.budget_samples // BG)
    curve, at = [critic_quality(critic, *held_out)["explained_variance"]], [0]
    for step in range(1, steps + 1):
        ro = sample_groups(base.model, base.tokenizer, base.task,
                           rng.sample(pool, cfg.prompts_per_step), cfg.group_size, generator=gen)
        values = critic(ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
        target = ro.rewards[:, None].expand_as(values)                    # (B*G, T)
        loss = ((values - target) ** 2)[ro.completion_mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == steps or (cfg.eval_every and step % cfg.eval_every == 0):
            last = critic_quality(critic, *held_out)
            curve.append(last["explained_variance"])
            at.append(step * BG)
    return {**last, "ev_curve": curve, "ev_samples": at, "steps": steps, "samples": steps * BG}


@torch.no_grad()
def critic_eval_set(base, problems, cfg: CriticRunConfig, gen) -> tuple:
    """The held-out rollouts of ``critic_run``: (G samples of each problem from the base, their
    p(x) from ``mc_samples`` more (B,), G)."""
    ro = sample_groups(base.model, base.tokenizer, base.task, problems, cfg.group_size,
                       generator=gen)
    p = mc_pass_rates(base.model, base, problems, cfg.mc_samples, base.task.verify,
                      generator=gen)                                      # (B,)
    return ro, p, cfg.group_size


@torch.no_grad()
def critic_quality(critic, ro, p: torch.Tensor, G: int) -> dict:
    """The held-out measures of ``critic_run`` for a critic on the rollouts ``ro`` of B problems
    x G samples with pass rates ``p`` (B,) (its docstring)."""
    mask = ro.completion_mask                                             # (B*G, T)
    returns = ro.rewards[:, None].expand(-1, mask.shape[1]).clone()      # (B*G, T)
    values = critic(ro.prompt_ids, ro.prompt_mask, ro.completion_ids, mask)
    oracle = p.repeat_interleave(G)[:, None].expand_as(returns).clone()  # (B*G, T)
    ev, oracle_ev = explained_variance(values, returns, mask), explained_variance(oracle, returns, mask)
    return {"explained_variance": ev, "oracle_ev": oracle_ev, "half_oracle_ev": oracle_ev / 2,
            "corr_v0_p": pearson(values[:, 0].view(-1, G).mean(1), p)}


# ------------------------------------------- a critic that can learn: dense step rewards (04)

def prefix_step_score(task, problem, prefix: str) -> float:
    """Phi(prefix): the part of the process reward a partial completion has earned so far,
    (working steps of ``prefix`` that ``task.verify_steps`` marks right) / (J + 1), J the
    number of steps (the denominator of ``refimpl.core.rewards.process_reward``, whose
    (J + 1)-th step is the answer). Never raises: junk scores 0."""
    try:
        steps = task.verify_steps(problem, prefix)
        return sum(bool(s) for s in steps) / (len(steps) + 1)
    except Exception:
        return 0.0


def step_token_rewards(task, problems, texts, mask: torch.Tensor) -> torch.Tensor:
    """Dense per-token rewards from the step verifier (N, T): r_t = Phi(y_<=t) - Phi(y_<t),
    plus the answer's share verify(x, y) / (J + 1) on the last token.

    problems, texts: N problems and their completions (text without EOS); mask: (N, T) bool,
    right-padded completion tokens (EOS included when the completion ended). Token t is
    character t of the text; EOS adds no character. A row's rewards telescope to
    ``refimpl.core.rewards.process_reward(task, x, y)`` exactly (a potential-based shaping
    of that reward, Ng et al. 1999): paid column by column instead of once at the end.
    """
    checks.tensor("mask", mask, dims=(2,), floating=False)
    if not len(problems) == len(texts) == mask.shape[0]:
        raise ValueError(f"{len(problems)} problems, {len(texts)} texts and {mask.shape[0]} "
                         "mask rows must match")
    rewards = torch.zeros(mask.shape)                                     # (N, T)
    for i, (q, text) in enumerate(zip(problems, texts)):
        n_tok = int(mask[i].sum())
        if n_tok == 0:
            continue
        phi = torch.tensor([prefix_step_score(task, q, text[:t]) for t in range(n_tok + 1)])
        rewards[i, :n_tok] = phi[1:] - phi[:-1]                           # (n_tok,)
        rewards[i, n_tok - 1] += task.verify(q, text) / (len(task.verify_steps(q, text)) + 1)
    return rewards.to(mask.device)


@torch.no_grad()
def mc_prefix_values(policy, base, problems, texts, mask: torch.Tensor, n_samples: int,
                     generator=None) -> torch.Tensor:
    """Monte Carlo values V(s_t) of every state s_t = (x, y_<t) of N completions (N, T).

    For each completion token t, ``n_samples`` continuations of the prefix y_<t are sampled
    from ``policy`` (temperature 1, within the task's token budget) and scored by the
    process reward; V(s_t) is their mean minus Phi(y_<t), the reward already paid: the
    expected dense return-to-go from s_t (``step_token_rewards``). 0 where masked.
    """
    checks.count("n_samples", n_samples, 1)
    tok, task = base.tokenizer, base.task
    lengths = mask.sum(1).tolist()
    budget = max(task.max_new_tokens(q.level) for q in problems)
    values = torch.zeros(mask.shape)                                      # (N, T)
    for t in range(mask.shape[1]):
        rows = [i for i, n in enumerate(lengths) if n > t]
        if not rows:
            break
        prefixes = [texts[i][:t] for i in rows]
        ids, pmask = tok.encode_prompts([problems[i].prompt + pre for i, pre in zip(rows, prefixes)])
        device = next(policy.parameters()).device
        with eval_mode(policy):
            out = generate(policy, ids.to(device), pmask.to(device), budget - t, tok.eos_id,
                           tok.pad_id, generator=generator, num_samples=n_samples)
        conts = tok.decode_completions(out.ids.cpu())                     # len(rows) * n_samples
        for k, (i, pre) in enumerate(zip(rows, prefixes)):
            got = [process_reward(task, problems[i], pre + c)
                   for c in conts[k * n_samples:(k + 1) * n_samples]]
            values[i, t] = sum(got) / n_samples - prefix_step_score(task, problems[i], pre)
    return values.to(mask.device)


DENSE_LAMS = (0.0, 0.5, 0.95, 1.0)


@dataclass
class DenseCriticConfig:
    """The critic that learns (notebook 04): ``steps`` regression steps of the critic on the
    dense step-reward returns of B x G fresh base samples each, checked at ``checkpoints``
    on ``eval_problems`` held-out completions whose true advantages come from ``mc_samples``
    continuations per token."""

    steps: int = 24
    prompts_per_step: int = 16       # B
    group_size: int = 2              # G
    lr: float = 2e-3
    eval_problems: int = 16
    mc_samples: int = 8
    checkpoints: tuple = (0, 3, 6, 12, 24)
    lams: tuple = DENSE_LAMS
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"steps": 1, "prompts_per_step": 1, "group_size": 1,
                            "eval_problems": 2, "mc_samples": 1, "seed": None},
                     positive=("lr",))
        if not self.checkpoints or any(not 0 <= c <= self.steps for c in self.checkpoints):
            raise ValueError(f"DenseCriticConfig.checkpoints {self.checkpoints} must lie in "
                             f"[0, steps={self.steps}]")
        for lam in self.lams:
            checks.interval("DenseCriticConfig.lams", lam, 0.0, 1.0)


def dense_targets(base, ro) -> tuple[torch.Tensor, torch.Tensor]:
    """Step-verifier rewards (N, T) of a rollout and their returns-to-go (N, T): the sum of
    the rewards from each token on (gamma = 1)."""
    mask = ro.completion_mask
    rewards = step_token_rewards(base.task, [q for q in ro.problems for _ in range(ro.group_size)],
                                 ro.texts, mask)                          # (N, T)
    _, returns = gae_advantages(rewards, torch.zeros_like(rewards), mask, 1.0, 1.0)  # (N, T)
    return rewards, returns


def dense_eval_set(base, cfg: DenseCriticConfig, gen) -> dict:
    """One held-out completion per problem, its dense rewards and returns, and the Monte
    Carlo advantages A_MC(s_t, y_t) = r_t + V_MC(s_t+1) - V_MC(s_t) of its tokens."""
    problems = base.heldout(cfg.eval_problems)
    ro = sample_groups(base.model, base.tokenizer, base.task, problems, 1, generator=gen)
    rewards, returns = dense_targets(base, ro)
    v_mc = mc_prefix_values(base.model, base, problems, ro.texts, ro.completion_mask,
                            cfg.mc_samples, gen)                          # (N, T)
    adv_mc, _ = gae_advantages(rewards, v_mc, ro.completion_mask, 1.0, 0.0)  # (N, T)
    return {"rollout": ro, "rewards": rewards, "returns": returns, "v_mc": v_mc,
            "adv_mc": adv_mc}


@torch.no_grad()
def dense_checkpoint(critic, ev: dict, step: int, lams) -> dict:
    """The critic's explained variance of the eval returns, and corr(GAE(lambda) advantage,
    A_MC) over the eval tokens for each lambda (PPO whitens its advantages, so their
    correlation with the true ones is what counts)."""
    ro, mask = ev["rollout"], ev["rollout"].completion_mask
    values = critic(ro.prompt_ids, ro.prompt_mask, ro.completion_ids, mask)  # (N, T)
    row = {"step": step, "explained_variance": explained_variance(values, ev["returns"], mask)}
    for lam in lams:
        adv, _ = gae_advantages(ev["rewards"], values, mask, 1.0, lam)   # (N, T)
        row[f"adv_corr/lam_{lam:g}"] = pearson(adv[mask], ev["adv_mc"][mask])
    return row


def dense_critic_run(base, cfg: DenseCriticConfig | None = None) -> dict:
    """Fit PPO's critic to dense step-verifier returns of the frozen base policy, and watch
    GAE's lambda trade-off as it learns (Schulman et al. 2016, GAE).

    Like ``critic_run`` (C15: the critic on the sparse outcome reward, which it cannot
    predict), but every column of the working is paid when written (``step_token_rewards``),
    so the return-to-go depends on how much of the working is left: something a critic can
    learn. Returns {"rows": one ``dense_checkpoint`` row per checkpoint, "mc_ev": the
    explained variance of the Monte Carlo values (the ceiling), "eval_tokens", "samples"}.
    """
    cfg = checks.config("cfg", cfg, DenseCriticConfig)
    cfg.validate()
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    ev = dense_eval_set(base, cfg, gen)
    critic = ValueModel(base.model)
    opt = adamw(critic.parameters(), cfg.lr)
    pool, rng, rows = base.train_problems(4096, seed=cfg.seed), random.Random(cfg.seed), []
    for step in range(cfg.steps + 1):
        if step in cfg.checkpoints:
            rows.append(dense_checkpoint(critic, ev, step, cfg.lams))
        if step == cfg.steps:
            break
        ro = sample_groups(base.model, base.tokenizer, base.task,
                           rng.sample(pool, cfg.prompts_per_step), cfg.group_size, generator=gen)
        _, returns = dense_targets(base, ro)
        values = critic(ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
        loss = ((values - returns) ** 2)[ro.completion_mask].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    mask = ev["rollout"].completion_mask
    return {"rows": rows, "mc_ev": explained_variance(ev["v_mc"], ev["returns"], mask),
            "eval_tokens": int(mask.sum()), "samples": cfg.steps * cfg.prompts_per_step * cfg.group_size}
