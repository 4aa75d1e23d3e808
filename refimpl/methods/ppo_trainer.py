"""The PPO trainer: sample, score, estimate per-token advantages with a critic, clip, repeat.

One step (Ouyang et al. 2022, InstructGPT, with Schulman et al. 2017's clipped updates):

1. draw B prompts and sample G completions for each from the current policy (pi_old);
2. score them (verifier or reward model); run the frozen reference and the critic on them;
3. per-token rewards r_t (the score on the last token, minus reward_kl_coef * KL_t on every token),
   GAE(gamma, lam) advantages and returns (refimpl.methods.ppo), advantages whitened over the batch;
4. ``inner_updates`` steps of the clipped policy surrogate (policy optimiser) and the
   clipped value loss (critic optimiser) on that batch.

PPO does not need G > 1 completions per prompt (G = 1 is its usual layout); the default
G = 8 matches GRPO's batch so the two can be compared on the same rollouts.

Advantage quality (claim C15). Every ``mc_every`` steps the trainer draws ``mc_samples``
extra completions per prompt of the batch (not trained on, not counted in ``samples``, not
on the clock) to estimate the pass rate p(x) = E[R | x], the true value of the prompt.
Then r - p(x) is each sampled completion's advantage measured against the best possible
prompt-level baseline, and the history records how well each method's baseline and
advantage track it: the critic's V(x) (PPO) and the group mean (GRPO), on the same batch.

Values (claim C15). ``values`` says where V(s_t) comes from before GAE: "critic" (the learned
critic, PPO itself), "zero" (no critic: V = 0, so the advantages are the lambda-discounted
returns-to-go) or "mc" (``refimpl.methods.ppo.loo_values``: the prompt's pass rate estimated
from the group's other G-1 samples, held at every token; needs G >= 2). With "zero" or "mc"
the critic is neither run nor trained.

The registry row of PPO (``METHOD``) sits at the end of the module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import torch

from refimpl.core import checks
from refimpl.core.logprobs import token_logprobs
from refimpl.core.rollouts import completion_stats, sample_groups
from refimpl.core.training import (Clock, Method, StepBar, TrainResult, adamw, check_fields,
                                   heldout_row, log_heldout, problem_sets, start_history,
                                   start_policy)
from refimpl.methods.ppo import (ValueModel, explained_variance, gae_advantages, loo_values,
                                  ppo_policy_loss, rl_memory, token_rewards, value_loss, whiten)
from refimpl.methods.ppo_analysis import advantage_quality, mc_pass_rates

VALUE_SOURCES = ("critic", "zero", "mc")   # where V(s_t) comes from (module docstring)


@dataclass
class PPOConfig:
    """PPO hyper-parameters; the defaults train the cpu base in about 15-20 s (one thread)."""

    steps: int = 30
    prompts_per_step: int = 8         # B prompts per batch
    group_size: int = 8               # G completions per prompt (1 is enough for PPO)
    temperature: float = 1.0
    lr: float = 1e-4                  # policy learning rate (as GRPO's)
    critic_lr: float = 1e-3           # the critic's head starts at zero and must catch up
    max_grad_norm: float = 1.0
    clip_eps: float = 0.2             # policy ratio clip
    clip_range_value: float | None = 0.2  # value clip around the rollout-time values (None: off)
    vf_coef: float = 0.5              # weight of the value loss (reported total loss only)
    reward_kl_coef: float = 0.04      # weight of the per-token KL taken off the reward; 0: none
    gamma: float = 1.0
    lam: float = 0.95                 # GAE lambda (TRL's default)
    whiten_advantages: bool = True
    inner_updates: int = 2            # optimizer steps per batch (PPO epochs, full batch)
    critic_warmup_steps: int = 0      # first steps train only the critic (policy frozen)
    level: int | None = None
    train_pool: int = 4096
    eval_every: int = 10              # held-out greedy accuracy every this many steps (<= 0: never)
    eval_problems: int = 256
    mc_every: int = 0                 # Monte-Carlo advantage check every this many steps (0: never)
    mc_samples: int = 32              # extra samples per prompt for the p(x) estimate
    values: str = "critic"            # V(s_t): "critic", "zero" (V = 0) or "mc" (loo_values)
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"steps": 1, "prompts_per_step": 1, "group_size": 1, "inner_updates": 1,
                            "critic_warmup_steps": 0, "train_pool": 1, "eval_problems": 1,
                            "mc_every": 0, "mc_samples": 2, "eval_every": None, "seed": None,
                            "level": 0},
                     positive=("temperature", "lr", "critic_lr", "max_grad_norm",
                               "clip_range_value"),
                     nonnegative=("reward_kl_coef", "vf_coef"),
                     intervals={"clip_eps": (0, 1, "()"), "gamma": (0, 1, "[]"),
                                "lam": (0, 1, "[]")},
                     choices={"values": VALUE_SOURCES},
                     flags=("whiten_advantages",), optional=("clip_range_value", "level"),
                     why={"reward_kl_coef": "0 disables the KL penalty"})
        if self.values == "mc" and self.group_size < 2:
            raise ValueError("PPOConfig.values='mc' estimates V from the group's other samples: "
                             f"it needs group_size >= 2, got {self.group_size}")
        checks.at_least("PPOConfig.train_pool", self.train_pool, "prompts_per_step",
                        self.prompts_per_step,
                        "each step draws that many different prompts from the pool")


def _adam_state_numel(opt) -> int:
    """Floats in Adam's moment buffers (the step counters aside)."""
    return sum(st[k].numel() for st in opt.state.values()
               for k in ("exp_avg", "exp_avg_sq") if k in st)


@torch.no_grad()
def rollout_values(critic, batch, cfg: PPOConfig) -> torch.Tensor:
    """V(s_t) (B*G, T) of a rollout's states at rollout time, from cfg.values: the critic's,
    zeros (GAE then gives the lambda-discounted returns-to-go), or ``loo_values`` (the
    leave-one-out group mean reward at every token). 0 where masked."""
    mask = batch.completion_mask                                         # (B*G, T)
    if cfg.values == "zero":
        return torch.zeros(mask.shape, dtype=batch.rewards.dtype, device=mask.device)  # (B*G, T)
    if cfg.values == "mc":
        return loo_values(batch.rewards, mask, batch.group_size)         # (B*G, T)
    return critic(batch.prompt_ids, batch.prompt_mask, batch.completion_ids, mask)  # (B*G, T)


@torch.no_grad()
def rollout_advantages(critic, ref_model, batch, cfg: PPOConfig) -> dict:
    """Everything PPO computes from a scored rollout before its updates.

    batch: a Rollout (B*G completions). Returns a dict of (B*G, T) tensors: "ref_logps",
    "old_values" (V at rollout time, ``rollout_values``), "kl" (k1 = log pi_old - log pi_ref
    per token), "rewards" (token_rewards), "advantages" and "returns" (GAE, before whitening).
    """
    args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    mask = batch.completion_mask                                         # (B*G, T)
    ref_logps = token_logprobs(ref_model, *args, temperature=cfg.temperature,
                               group_size=batch.group_size)              # (B*G, T)
    old_values = rollout_values(critic, batch, cfg)                      # (B*G, T)
    kl = torch.where(mask, batch.old_logps - ref_logps, 0.0)            # (B*G, T)
    rewards = token_rewards(batch.rewards, mask, kl, cfg.reward_kl_coef)  # (B*G, T)
    advantages, returns = gae_advantages(rewards, old_values, mask, cfg.gamma, cfg.lam)  # (B*G, T)
    return {"ref_logps": ref_logps, "old_values": old_values, "kl": kl, "rewards": rewards,
            "advantages": advantages, "returns": returns}


def advantage_snapshot(policy, critics: dict, base, problems, cfg: PPOConfig, reward_fn=None,
                       mc_samples: int = 64, generator=None) -> dict:
    """advantage_quality of several critics and of GRPO's group baseline on one fresh batch.

    Samples cfg.group_size completions for each of the B ``problems`` from ``policy`` (no
    training), estimates p(x) from ``mc_samples`` more completions per problem, and for each
    ValueModel in ``critics`` ({label: critic}) computes PPO's advantages as a training step
    would. Returns {label: advantage_quality dict + "explained_variance"}; the GRPO keys
    ("adv_corr_mc/group", ...) are the same in every entry, computed on the same samples.
    """
    reward_fn = reward_fn or base.task.verify
    batch = sample_groups(policy, base.tokenizer, base.task, problems, cfg.group_size,
                          reward_fn=reward_fn, temperature=cfg.temperature, generator=generator)
    p = mc_pass_rates(policy, base, problems, mc_samples, reward_fn, cfg.temperature, generator)
    ref_model = base.reference().to(next(policy.parameters()).device)
    out = {}
    for label, critic in critics.items():
        adv = rollout_advantages(critic, ref_model, batch, cfg)
        q = advantage_quality(batch.rewards, p, adv["old_values"][:, 0], adv["advantages"][:, 0],
                              cfg.group_size)                             # A_0, V(x): first token
        q["explained_variance"] = explained_variance(adv["old_values"], adv["returns"],
                                                     batch.completion_mask)
        out[label] = q
    return out


def critic_step(critic, crit_opt, args: tuple, old_values, returns, cfg: PPOConfig) -> dict:
    """One step of the clipped value loss (``value_loss``) on the critic's optimiser; args are
    the batch's prompt ids and mask, completion ids and mask. Returns value_loss's metrics."""
    values = critic(*args)                                               # (B*G, T)
    vf_loss, vm = value_loss(values, old_values, returns, args[3], cfg.clip_range_value)
    crit_opt.zero_grad(set_to_none=True)
    (cfg.vf_coef * vf_loss).backward()
    torch.nn.utils.clip_grad_norm_(critic.parameters(), cfg.max_grad_norm)
    crit_opt.step()
    return vm


def ppo_update(policy, critic, ref_model, opts, batch, cfg: PPOConfig, update_policy=True):
    """One PPO batch: rewards, GAE, then cfg.inner_updates clipped steps (of the critic too
    when cfg.values is "critic").

    Returns (per-inner-update metrics, batch statistics: rollout-time values and
    advantages at the first token, explained variance, mean per-token KL).
    """
    args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    mask = batch.completion_mask                                         # (B*G, T)
    adv = rollout_advantages(critic, ref_model, batch, cfg)
    ref_logps, old_values, returns = adv["ref_logps"], adv["old_values"], adv["returns"]
    with torch.no_grad():
        advantages = adv["advantages"]                                   # (B*G, T)
        adv_used = whiten(advantages, mask) if cfg.whiten_advantages else advantages  # (B*G, T)
    stats = {"values0": old_values[:, 0], "advantages0": advantages[:, 0],
             "explained_variance": explained_variance(old_values, returns, mask),
             "kl": (adv["kl"].sum() / mask.sum()).item()}
    pol_opt, crit_opt = opts
    out = []
    for _ in range(cfg.inner_updates):
        m = {}
        if update_policy:
            logps = token_logprobs(policy, *args, temperature=cfg.temperature,
                                   group_size=batch.group_size)          # (B*G, T)
            pg_loss, m = ppo_policy_loss(logps, batch.old_logps, adv_used, mask, cfg.clip_eps,
                                         ref_logps)
            pol_opt.zero_grad(set_to_none=True)
            pg_loss.backward()
            m["grad_norm"] = torch.nn.utils.clip_grad_norm_(policy.parameters(),
                                                            cfg.max_grad_norm).item()
            pol_opt.step()
        vm = (critic_step(critic, crit_opt, args, old_values, returns, cfg)
              if cfg.values == "critic" else {})
        m.update(vm)
        m["loss"] = m.get("loss/policy", 0.0) + cfg.vf_coef * vm.get("value_loss", 0.0)
        out.append(m)
    return out, stats


def mc_check(step, policy, base, batch, cfg: PPOConfig, reward_fn, mc_gen, clock):
    """Every cfg.mc_every steps (and at step 1): p(x) of the batch's prompts under pi_old,
    before the update, from cfg.mc_samples extra completions, off the training clock.
    Returns (p (B,) or None, seconds it took)."""
    if not (cfg.mc_every and (step % cfg.mc_every == 0 or step == 1)):
        return None, 0.0
    with clock.paused():
        t = time.perf_counter()
        p = mc_pass_rates(policy, base, batch.problems, cfg.mc_samples, reward_fn,
                          cfg.temperature, mc_gen)                       # (B,)
    return p, time.perf_counter() - t


def ppo_log(batch, inner: list, st: dict) -> dict:
    """Log: what a PPO step records about its samples and its update (train_ppo's history
    rows): reward statistics, completion statistics, explained variance, the KL of pi_old,
    the inner updates' metrics averaged (and each one under "inner")."""
    r = batch.rewards                                                    # (B*G,)
    row = {"reward": r.mean().item(), "reward_std": r.std().item() if r.numel() > 1 else 0.0,
           **completion_stats(batch), "explained_variance": st["explained_variance"],
           "kl": st["kl"]}
    for k in inner[0]:
        if k != "kl":                                                    # kl: of pi_old, above
            row[k] = sum(m[k] for m in inner) / len(inner)
    row["inner"] = inner
    return row


def ppo_measurements(step: int, p, batch, st: dict, cfg: PPOConfig, policy, critic, opts) -> dict:
    """Log: what train_ppo measures beside the losses: at step 1 the floats held in weights and
    Adam buffers; where the Monte-Carlo check ran (p (B,) its pass rates, else None) the
    advantage-quality keys of the step's first inner epoch."""
    out = {}
    if step == 1:
        used = critic if cfg.values == "critic" else None              # "zero", "mc": no critic
        out["memory/params"] = rl_memory(policy, used)["params"]
        out["memory/optimizer_state"] = sum(_adam_state_numel(o) for o in opts)
    if p is not None:
        out.update(advantage_quality(batch.rewards, p, st["values0"], st["advantages0"],
                                     cfg.group_size))
    return out


def train_ppo(base, cfg: PPOConfig | None = None, *, policy=None, reward_fn=None,
              progress: bool = True, heldout=None) -> TrainResult:
    """Train ``policy`` (default: a copy of the base) with PPO and a separate critic.

    base: the SFT Base (its model is the frozen reference); cfg: a PPOConfig (None: defaults);
    reward_fn(problem, text) -> float defaults to base.task.verify; progress: show a progress
    bar; heldout (a list of problems) defaults to base.heldout(cfg.eval_problems). Returns a
    TrainResult (model: the trained policy; critic: the trained ValueModel; history).

    History rows: step, time_s (training clock, evaluation and Monte-Carlo checks excluded),
    samples (completions generated so far), reward, reward_std, completions/mean_length, entropy,
    value_loss and vf_clipfrac (values="critic" only), explained_variance (of the values
    used, before this step's update), clip_ratio, ratio_mean, kl, loss/policy,
    grad_norm (averaged over the inner updates), sample_s / update_s / step_s (this step's
    seconds), heldout_acc (step 0 and every eval_every steps), the advantage_quality keys
    every mc_every steps (and at step 1), and at step 1 "memory/params" and
    "memory/optimizer_state" (floats held in weights and in the Adam buffers, the latter
    measured from the optimisers). The critic always starts from base.model (plus a zero
    head), even when ``policy`` is given; with cfg.values "zero" or "mc" it is never run or
    trained (TrainResult.critic is that untrained copy).
    """
    cfg = checks.config("cfg", cfg, PPOConfig)
    cfg.validate()
    checks.function("reward_fn", reward_fn)
    reward_fn = reward_fn or base.task.verify
    policy, device, gen = start_policy(base, policy, cfg.seed)
    mc_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)  # never perturbs training
    ref_model = base.reference().to(device)
    critic = ValueModel(base.model).to(device)
    opts = (adamw(policy.parameters(), cfg.lr),
            adamw(critic.parameters(), cfg.critic_lr))
    heldout, pool, rng = problem_sets(base, cfg, heldout)
    evaluate = partial(heldout_row, policy, base, heldout)

    clock = Clock()
    history = start_history(cfg, clock, evaluate)
    samples = 0
    bar = StepBar(cfg.steps, "PPO", progress)
    for step in bar:
        t0 = time.perf_counter()
        problems = rng.sample(pool, cfg.prompts_per_step)
        batch = sample_groups(policy, base.tokenizer, base.task, problems, cfg.group_size,
                              reward_fn=reward_fn, temperature=cfg.temperature, generator=gen)
        t1 = time.perf_counter()
        p, mc_s = mc_check(step, policy, base, batch, cfg, reward_fn, mc_gen, clock)
        inner, st = ppo_update(policy, critic, ref_model, opts, batch, cfg,
                               update_policy=step > cfg.critic_warmup_steps)
        t2 = time.perf_counter()
        samples += batch.num_samples
        row = {"step": step, "time_s": clock(), "samples": samples, **ppo_log(batch, inner, st),
               "sample_s": t1 - t0, "update_s": t2 - t1 - mc_s, "step_s": t2 - t0 - mc_s}
        row.update(ppo_measurements(step, p, batch, st, cfg, policy, critic, opts))
        if log_heldout(row, cfg, clock, evaluate):
            bar.set_postfix(acc=f"{row['heldout_acc']:.2f}", reward=f"{row['reward']:.2f}")
        history.append(row)
    bar.close()
    return TrainResult(policy.eval(), history, critic.eval())


# ---- the registry row of PPO (refimpl.methods.registry collects it); in the FLOPs model N is the
# parameter count, L the tokens per sequence (prompt + mean completion), N_critic the critic's ----
def ppo_study_fields(cc) -> dict:
    """The PPOConfig fields a head-to-head run sets from ``cc`` (a CompareConfig): B and G."""
    return dict(prompts_per_step=cc.prompts_per_step, group_size=cc.group_size)


def ppo_flops(cfg, N, L, N_critic=0) -> float:
    """PPO: sample, reference, critic values, mu updates of policy and critic."""
    BG = cfg.prompts_per_step * cfg.group_size
    return (2 * N + 2 * N + 2 * N_critic + cfg.inner_updates * 6 * (N + N_critic)) * BG * L


# PPO with a learned critic, Ouyang et al. 2022
METHOD = Method("ppo", "PPO (critic)", "verifier + critic", PPOConfig, train_ppo,
                ppo_study_fields, ppo_flops)
