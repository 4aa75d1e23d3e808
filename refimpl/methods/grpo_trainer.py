"""The GRPO trainer: sample groups, score them, and take a few clipped steps on each batch.

Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, Algorithm 1 and eq. 3):
for each step, draw B prompts, sample G completions per prompt from the current policy
(which becomes pi_old), score them with the verifier, set A_i = (r_i - mean) / (std + eps)
within each group, and minimise the clipped surrogate plus beta * KL(pi_theta || pi_ref) for
``inner_updates`` optimizer steps on the same batch. The first inner step is exactly on-policy
(ratio 1, nothing clipped); later ones reuse the samples, which is where the ratio and the
clip matter.

Dynamic sampling (Yu et al. 2025, DAPO, sec. 3.2): a group whose G rewards are all equal has
advantage 0 and gives no policy gradient. With ``dynamic_sampling=True`` such groups are
dropped and more prompts are sampled until the batch holds ``prompts_per_step`` mixed groups
(at most ``max_sampling_rounds`` rounds). Either way the history counts the completions
generated (``samples``) and those that landed in uniform groups (``samples_wasted``).

Entropy bonus (off by default): with ``entropy_coef > 0`` the loss also subtracts entropy_coef
times the mean exact entropy of the policy's next-token distributions over the completion tokens
(``logprobs.token_entropy``; the sampled token's -log p would not do, its expected gradient is 0).
``entropy_target`` makes it a floor: no push once the mean entropy is above the target, so that a
fixed coefficient cannot inflate the entropy without bound (Skywork-OR1, arXiv:2505.22312, adapts
the coefficient to a target instead). refimpl.experiments.debugging.clinic_dynamics shows it against an
entropy collapse.

The pure pieces live in refimpl.methods.grpo (group_advantages, grpo_loss) and refimpl.methods.kl.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from functools import partial

import torch

from refimpl.core import checks
from refimpl.core.logprobs import (completion_logits, gather_token_logprobs, token_entropy,
                                   token_logprobs)
from refimpl.core.rollouts import completion_stats, mixed_groups, sample_groups, select_groups
from refimpl.core.training import (Clock, Method, StepBar, TrainResult, adamw, check_fields,
                                   heldout_row, log_heldout, problem_sets, start_history,
                                   start_policy)
from refimpl.methods.grpo import (IS_LEVELS, LOSS_AGGS, SCALES, SURROGATES, frac_reward_zero_std,
                   group_advantages, grpo_loss)
from refimpl.methods.kl import ESTIMATORS


@dataclass
class GRPOConfig:
    """GRPO hyper-parameters; the defaults train the cpu base in about 15-25 s."""

    steps: int = 40
    prompts_per_step: int = 16        # B prompts (groups) per update batch
    group_size: int = 8               # G completions per prompt
    temperature: float = 1.0          # sampling temperature (log-probs use the same one)
    lr: float = 1e-4                  # cpu base: 2e-4 can stall or collapse; 5e-5 is steadier
    max_grad_norm: float = 1.0        # gradient clipping (TRL's default)
    clip_eps: float = 0.2             # eps_low of the ratio clip
    clip_eps_high: float | None = None  # DAPO clip-higher; None = clip_eps
    beta: float = 0.04                # weight of the per-token KL in the loss (DeepSeekMath 0.04)
    entropy_coef: float = 0.0         # entropy bonus: minus this x mean token entropy; 0 = none
    entropy_target: float | None = None  # with a bonus: push only while mean entropy < this
    kl_estimator: str = "k3"
    kl_importance_weight: bool = False  # KL x live ratio pi/pi_old (TRL's use_bias_correction_kl)
    loss_agg: str = "grpo"            # "grpo", "dapo" or "dr_grpo" (refimpl.methods.grpo)
    surrogate: str = "clip"           # "clip" or "cispo" (MiniMax-M1; eps_max = clip_eps_high)
    importance_sampling_level: str = "token"  # "token" or "sequence" (GSPO)
    scale: str = "group"              # "group", "none" (Dr. GRPO) or "batch"
    eps: float = 1e-4                 # added to the group std
    inner_updates: int = 2            # optimizer steps per sampled batch (mu in DeepSeekMath)
    dynamic_sampling: bool = False    # DAPO: keep only groups with mixed rewards
    max_sampling_rounds: int = 8      # cap on sampling rounds per step with dynamic sampling
    level: int | None = None          # train on one difficulty level (None = the mix)
    max_new_tokens: int | None = None  # sampling budget per completion (None = the task's own)
    train_pool: int = 4096            # training prompts drawn from this fixed pool
    eval_every: int = 10              # held-out greedy accuracy every this many steps (<= 0: never)
    eval_problems: int = 256
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"steps": 1, "prompts_per_step": 1, "group_size": 2, "inner_updates": 1,
                            "max_sampling_rounds": 1, "train_pool": 1, "eval_problems": 1,
                            "eval_every": None, "seed": None, "level": 0, "max_new_tokens": 1},
                     positive=("temperature", "lr", "max_grad_norm", "clip_eps_high",
                               "entropy_target"),
                     nonnegative=("beta", "eps", "entropy_coef"),
                     intervals={"clip_eps": (0, 1, "()")},
                     choices={"loss_agg": LOSS_AGGS, "scale": SCALES, "kl_estimator": ESTIMATORS,
                              "surrogate": SURROGATES, "importance_sampling_level": IS_LEVELS},
                     flags=("dynamic_sampling", "kl_importance_weight"),
                     optional=("clip_eps_high", "level", "max_new_tokens", "entropy_target"),
                     why={"group_size": "a group needs two samples to compare",
                          "beta": "0 disables the KL penalty"})
        if self.surrogate == "cispo" and (self.clip_eps_high is None or self.clip_eps_high < 1):
            raise ValueError("GRPOConfig.surrogate='cispo' caps the ratio at clip_eps_high = "
                             "eps_max, which must be set and >= 1 (TRL recommends 5.0), "
                             f"got {self.clip_eps_high!r}")
        checks.at_least("GRPOConfig.train_pool", self.train_pool, "prompts_per_step",
                        self.prompts_per_step,
                        "each step draws that many different prompts from the pool")


def _timed(reward_fn, clock: list):
    """Wrap reward_fn so that the seconds spent inside it add up in clock[0]."""
    def fn(problem, text):
        t = time.perf_counter()
        try:
            return reward_fn(problem, text)
        finally:
            clock[0] += time.perf_counter() - t
    return fn


def _cat(parts: list, pad_id: int):
    """Concatenate rollouts group-wise (prompts left-padded, completions right-padded)."""
    if len(parts) == 1:
        return parts[0]
    P = max(p.prompt_ids.shape[1] for p in parts)
    T = max(p.completion_ids.shape[1] for p in parts)

    def pad(x, n, value, left=False):  # (N, m) -> (N, n)
        return torch.nn.functional.pad(x, (n - x.shape[1], 0) if left else (0, n - x.shape[1]),
                                       value=value)
    return replace(
        parts[0], problems=sum((p.problems for p in parts), []),
        prompt_ids=torch.cat([pad(p.prompt_ids, P, pad_id, True) for p in parts]),  # (B*G, P)
        prompt_mask=torch.cat([pad(p.prompt_mask, P, False, True) for p in parts]),  # (B*G, P)
        completion_ids=torch.cat([pad(p.completion_ids, T, pad_id) for p in parts]),  # (B*G, T)
        completion_mask=torch.cat([pad(p.completion_mask, T, False) for p in parts]),  # (B*G, T)
        old_logps=torch.cat([pad(p.old_logps, T, 0.0) for p in parts]),  # (B*G, T)
        rewards=torch.cat([p.rewards for p in parts]),  # (B*G,)
        texts=sum((p.texts for p in parts), []))


def collect_batch(policy, base, cfg: GRPOConfig, sample_prompts, reward_fn, generator):
    """Sample and score groups until the update batch is ready.

    Args:
        policy: the GPT to sample from (it becomes pi_old for this batch).
        base: the Base (tokenizer and task).
        cfg: prompts_per_step B, group_size G, temperature, max_new_tokens,
            dynamic_sampling and max_sampling_rounds are used.
        sample_prompts: callable n -> list of n problems (a fresh draw each call).
        reward_fn: reward_fn(problem, text) -> float.
        generator: torch.Generator for the sampler.

    Returns (batch, stats): the rollout to train on (B' <= prompts_per_step groups; all of
    them mixed when cfg.dynamic_sampling) and a dict with the rewards of *every* sampled
    group ("all_rewards", (N, G)), "samples" generated, "samples_wasted" (in uniform groups),
    "score_s" (seconds inside reward_fn) and "rounds".
    """
    B, G = cfg.prompts_per_step, cfg.group_size
    score_clock = [0.0]
    scorer = _timed(reward_fn, score_clock)
    kept, all_rewards, n_kept, rounds = [], [], 0, 0
    while rounds < (cfg.max_sampling_rounds if cfg.dynamic_sampling else 1):
        rounds += 1
        ro = sample_groups(policy, base.tokenizer, base.task, sample_prompts(B), G,
                           reward_fn=scorer, temperature=cfg.temperature,
                           max_new_tokens=cfg.max_new_tokens, generator=generator)
        all_rewards.append(ro.rewards.view(B, G))  # (B, G)
        if cfg.dynamic_sampling:
            mixed = mixed_groups(ro)  # (B,)
            mixed &= torch.cumsum(mixed.long(), 0) <= B - n_kept  # (B,) no more than needed
            if mixed.any():
                kept.append(select_groups(ro, mixed))
                n_kept += int(mixed.sum())
            if n_kept == B:
                break
        else:
            kept.append(ro)
    rewards = torch.cat(all_rewards)  # (N, G)
    uniform = (rewards == rewards[:, :1]).all(dim=1)  # (N,)
    stats = {"all_rewards": rewards, "samples": rewards.numel(),
             "samples_wasted": int(uniform.sum()) * G, "score_s": score_clock[0], "rounds": rounds}
    return (_cat(kept, base.tokenizer.pad_id) if kept else None), stats


def policy_logps(policy, args: tuple, cfg: GRPOConfig, group_size: int):
    """(logps, bonus): the token log-probs (B*G, T) of a batch's completions under ``policy``
    (args: prompt ids and mask, completion ids and mask) and the entropy bonus to subtract from
    the loss, cfg.entropy_coef x the mean exact entropy per completion token
    (``logprobs.token_entropy``, from the same forward pass). With entropy_coef = 0 the bonus is
    None and the pass is ``token_logprobs`` itself."""
    if cfg.entropy_coef == 0:
        return token_logprobs(policy, *args, temperature=cfg.temperature,
                              group_size=group_size), None           # (B*G, T)
    mask = args[3]                                                   # (B*G, T)
    logits = completion_logits(policy, *args, group_size=group_size)  # (B*G, T, V)
    logits = logits / cfg.temperature                                # (B*G, T, V)
    ent = token_entropy(logits, mask)                                # (B*G, T)
    h = ent.sum() / mask.sum().clamp(min=1)                          # ()
    if cfg.entropy_target is not None:                                # a floor: no push above it
        h = h.clamp(max=cfg.entropy_target)                          # ()
    bonus = cfg.entropy_coef * h                                     # ()
    return gather_token_logprobs(logits, args[2], mask), bonus       # (B*G, T), ()


def grpo_update(policy, ref_model, opt, batch, cfg: GRPOConfig, policy_loss=None) -> list[dict]:
    """``cfg.inner_updates`` clipped GRPO steps on one batch; one metrics dict per step.

    Args:
        policy: the GPT being trained (its weights at call time are pi_old of ``batch``).
        ref_model: the frozen reference pi_ref, or None when cfg.beta = 0 (no KL term).
        opt: the optimizer over policy's parameters.
        batch: a Rollout with B*G completions, old_logps (B*G, T) from the sampler and
            rewards (B*G,) grouped G at a time.
        cfg: loss settings (clip_eps, beta, kl_estimator, kl_importance_weight, loss_agg,
            surrogate, importance_sampling_level, scale, eps, entropy_coef, entropy_target).
        policy_loss: the hook for a learner's own clipped surrogate, with the signature of
            exercises/grpo.py's grpo_clipped_loss(logps, old_logps, advantages, mask,
            clip_eps, loss_agg) -> scalar. It replaces refimpl's surrogate in every inner
            step; the beta * KL term stays refimpl's. None: refimpl's grpo_loss alone.

    Returns:
        list of cfg.inner_updates dicts: grpo_loss's metrics plus "loss" and "grad_norm"
        (before clipping). The first has ratio 1 up to float error, hence clip_ratio 0.
    """
    args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    ref_logps = None                                     # beta = 0: no KL term, no reference pass
    if ref_model is not None:
        with torch.no_grad():
            ref_logps = token_logprobs(ref_model, *args, temperature=cfg.temperature,
                                       group_size=batch.group_size)  # (B*G, T)
    advantages = group_advantages(batch.rewards, cfg.group_size, scale=cfg.scale,
                                  eps=cfg.eps)  # (B*G,)
    variant = dict(clip_eps=cfg.clip_eps, clip_eps_high=cfg.clip_eps_high, loss_agg=cfg.loss_agg,
                   surrogate=cfg.surrogate, importance_sampling_level=cfg.importance_sampling_level)
    out = []
    for _ in range(cfg.inner_updates):
        logps, bonus = policy_logps(policy, args, cfg, batch.group_size)  # (B*G, T), () | None
        loss, metrics = grpo_loss(logps, batch.old_logps, advantages, batch.completion_mask,
                                  ref_logps=ref_logps, beta=cfg.beta, kl_estimator=cfg.kl_estimator,
                                  kl_importance_weight=cfg.kl_importance_weight, **variant)
        if policy_loss is not None:                      # swap in the learner's surrogate
            ours, _ = grpo_loss(logps, batch.old_logps, advantages, batch.completion_mask,
                                **variant)               # refimpl's surrogate alone (no KL)
            loss = loss - ours + policy_loss(logps, batch.old_logps, advantages,
                                             batch.completion_mask, cfg.clip_eps, cfg.loss_agg)
        if bonus is not None:                            # entropy bonus (cfg.entropy_coef > 0)
            loss = loss - bonus
        opt.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(
            policy.parameters(), cfg.max_grad_norm).item()
        opt.step()
        out.append({"loss": loss.item(), **metrics})
    return out


def grpo_log(batch, st: dict, inner: list, cfg: GRPOConfig, eos_id: int | None = None) -> dict:
    """Log: what a GRPO step records about every group it sampled (``st`` from
    collect_batch), the batch it updated on and its inner updates (train_grpo's history).
    eos_id: the tokenizer's EOS id, for completions/clipped_ratio (omitted when None)."""
    r = st["all_rewards"]                                                # (N, G)
    uniform = (r == r[:, :1]).all(dim=1)                                 # (N,)
    row = {"reward": r.mean().item(), "reward_std": r.std(dim=1).mean().item(),
           "frac_reward_zero_std": uniform.float().mean().item(),
           "frac_all_correct": (uniform & (r[:, 0] == 1)).float().mean().item(),
           "frac_all_wrong": (uniform & (r[:, 0] == 0)).float().mean().item(),
           "groups": 0 if batch is None else len(batch.problems), "sampling_rounds": st["rounds"]}
    if batch is not None:
        row["frac_update_zero_std"] = frac_reward_zero_std(batch.rewards, cfg.group_size)
        row.update(completion_stats(batch, eos_id))
        for k in inner[0]:
            row[k] = sum(m[k] for m in inner) / len(inner)
    row["inner"] = inner
    return row


def train_grpo(base, cfg: GRPOConfig | None = None, *, policy=None, reward_fn=None,
               policy_loss=None, progress: bool = True, heldout=None) -> TrainResult:
    """Train ``policy`` (default: a copy of the base) with GRPO against the frozen base.

    base: the SFT Base (its model is the frozen reference); cfg: a GRPOConfig (None: defaults).
    reward_fn(problem, text) -> float defaults to the verifier base.task.verify;
    policy_loss: a learner's own clipped surrogate, passed to ``grpo_update`` (its hook);
    progress: show a progress bar; heldout is a list of problems for greedy accuracy (default
    base.heldout(cfg.eval_problems)). Returns a TrainResult (model: the trained policy).

    History rows: step, time_s (training wall time, evaluation excluded), samples and
    samples_wasted (cumulative completions generated / in uniform groups), reward (mean),
    reward_std (mean within-group std), frac_reward_zero_std, frac_all_correct,
    frac_all_wrong (over every sampled group; "correct" means reward 1), groups and
    frac_update_zero_std (groups in the update batch, and the share of them that are
    uniform: 0 with dynamic sampling), sampling_rounds,
    completions/mean_length, completions/clipped_ratio and entropy
    (``rollouts.completion_stats``), the grpo_loss
    metrics averaged over the inner updates (clip_ratio, kl, ratio_mean, loss, grad_norm), "inner" (the per-inner-update metrics), sample_s,
    score_s and update_s (this step's seconds), and heldout_acc at step 0 and every
    eval_every steps.
    """
    cfg = checks.config("cfg", cfg, GRPOConfig)
    cfg.validate()
    checks.function("reward_fn", reward_fn)
    reward_fn = reward_fn or base.task.verify
    policy, device, gen = start_policy(base, policy, cfg.seed)
    ref_model = base.reference().to(device) if cfg.beta > 0 else None
    opt = adamw(policy.parameters(), cfg.lr)
    heldout, pool, rng = problem_sets(base, cfg, heldout)
    evaluate = partial(heldout_row, policy, base, heldout)

    clock = Clock()
    history = start_history(cfg, clock, evaluate, samples_wasted=0)
    samples, wasted = 0, 0
    bar = StepBar(cfg.steps, "GRPO", progress)
    for step in bar:
        t0 = time.perf_counter()
        batch, st = collect_batch(policy, base, cfg, lambda n: rng.sample(pool, n), reward_fn, gen)
        t1 = time.perf_counter()
        inner = (grpo_update(policy, ref_model, opt, batch, cfg, policy_loss)
                 if batch is not None else [])
        t2 = time.perf_counter()
        samples += st["samples"]
        wasted += st["samples_wasted"]
        row = {"step": step, "time_s": clock(), "samples": samples, "samples_wasted": wasted,
               **grpo_log(batch, st, inner, cfg, base.tokenizer.eos_id),
               "sample_s": t1 - t0 - st["score_s"], "score_s": st["score_s"], "update_s": t2 - t1}
        if log_heldout(row, cfg, clock, evaluate):
            bar.set_postfix(acc=f"{row['heldout_acc']:.2f}", reward=f"{row['reward']:.2f}")
        history.append(row)
    bar.close()
    return TrainResult(policy.eval(), history)


def benchmark_grpo(base, cfg: GRPOConfig | None = None, steps: int = 5) -> dict:
    """Throughput of GRPO on ``base``: completions per second for each part of a step.

    Runs ``steps`` training steps without held-out evaluation. Returns a dict with the
    seconds spent sampling, scoring and updating (reference forward + inner updates), the
    completions generated and trained on, and "sample_per_s", "score_per_s", "update_per_s"
    (completions trained on per update second), "total_per_s" and "s_per_step".
    """
    cfg = replace(cfg or GRPOConfig(), steps=steps, eval_every=0)
    res = train_grpo(base, cfg, progress=False)
    rows = res.history[1:]
    sample_s = sum(r["sample_s"] for r in rows)
    score_s = sum(r["score_s"] for r in rows)
    update_s = sum(r["update_s"] for r in rows)
    generated = rows[-1]["samples"]
    trained = sum(r["groups"] for r in rows) * cfg.group_size
    total = sample_s + score_s + update_s
    per = lambda n, s: n / s if s > 0 else float("inf")  # noqa: E731
    return {"steps": steps, "completions": generated, "completions_trained": trained,
            "sample_s": sample_s, "score_s": score_s, "update_s": update_s,
            "sample_per_s": per(generated, sample_s), "score_per_s": per(generated, score_s),
            "update_per_s": per(trained, update_s), "total_per_s": per(generated, total),
            "s_per_step": total / steps}


# ---- the registry row of GRPO (refimpl.methods.registry collects it); in the FLOPs model N is
# the parameter count, L the tokens per sequence (prompt + mean completion), N_critic unused ----
def grpo_study_fields(cc) -> dict:
    """The GRPOConfig fields a head-to-head run sets from ``cc`` (a CompareConfig): B and G."""
    return dict(prompts_per_step=cc.prompts_per_step, group_size=cc.group_size)


def grpo_flops(cfg, N, L, N_critic=0) -> float:
    """GRPO: sample, reference pass (when beta > 0), mu inner updates, over B x G sequences."""
    BG = cfg.prompts_per_step * cfg.group_size
    return (2 + (2 if cfg.beta > 0 else 0) + 6 * cfg.inner_updates) * N * BG * L


# Shao et al. 2024
METHOD = Method("grpo", "GRPO", "verifier", GRPOConfig, train_grpo, grpo_study_fields, grpo_flops)
