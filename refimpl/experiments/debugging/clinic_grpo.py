"""Run-clinic cases of GRPO: what its loss means, and batches that carry no learning signal.

Every case is a small GRPO run (``refimpl.methods.grpo_trainer``) on the arena, the cpu base
policy and its 3-digit additions, read through the TRL metrics the trainer logs at every
step. The clinic's reference run is on-policy GRPO as TRL runs it by default: one optimizer
step per sampled batch (``inner_updates=1``, TRL's ``num_iterations=1``) and no KL term
(``beta=0``), 16 prompts x 8 completions per step at lr 1e-4.

* ``grpo_loss_zero``: the loss reads 0 at every step while grad_norm is not 0. On-policy the
  ratio is 1 and the advantages are centred in each group, so the surrogate's *value* is 0;
  its gradient is the policy gradient. Nothing is broken (TRL's issue #2703 and many more).
* ``grpo_loss_sign``: with the token-level mean (DAPO's aggregation) the loss flips sign from
  step to step: each completion's advantage is weighted by its length.
* ``too_hard_prompts``: prompts the policy never solves give groups of equal rewards, so
  reward_std is 0 and frac_reward_zero_std near 1: no gradient (DAPO, Yu et al. 2025, sec. 3.2).
* ``shared_group_seed``: the G samples of a group drawn with one random seed are one sample
  copied G times, so every group is uniform whatever the prompts.
* ``truncated_completions``: a token budget shorter than any answer cuts every completion
  (completions/clipped_ratio 1), so every reward is 0.
* ``detached_ratio``: clip_ratio is 0 on-policy, as it must be; the tempting "fix" of
  detaching the importance ratio removes the only path of the gradient (grad_norm 0).

The shared-seed sampler and the detached ratio are reproduced here, around the trainer (a
sampler passed to the training loop below, the trainer's ``policy_loss`` hook), never as
options of the library.
"""
from __future__ import annotations

import random
from dataclasses import replace

import torch

from refimpl.core.rollouts import Rollout, sample_groups
from refimpl.core.tasks import get_task
from refimpl.core.training import adamw, start_policy
from refimpl.methods.grpo import grpo_loss
from refimpl.methods.grpo_trainer import (GRPOConfig, collect_batch, grpo_log, grpo_update,
                                          train_grpo)
from refimpl.experiments.debugging.clinic_case import (Case, Dashboard, arena_base, check_variant,
                                                       dashboard, mean)

ARENA = GRPOConfig(steps=30, prompts_per_step=16, group_size=8, lr=1e-4, inner_updates=1,
                   beta=0.0, eval_every=0)
KEYS = ("loss", "grad_norm", "reward", "reward_std", "frac_reward_zero_std",
        "clip_ratio/region_mean", "entropy", "completions/mean_length",
        "completions/clipped_ratio")


def grpo_dashboard(history: list[dict]) -> Dashboard:
    """The clinic's GRPO dashboard of a history: KEYS, with the trainer's clip_ratio (the
    share of tokens whose gradient the clip removes) under TRL's name clip_ratio/region_mean."""
    rows = [{**r, "clip_ratio/region_mean": r["clip_ratio"]} for r in history if "clip_ratio" in r]
    return dashboard(rows, KEYS)


def run_grpo(seed: int, policy_loss=None, base=None, **changes) -> Dashboard:
    """train_grpo with ARENA's settings changed by ``changes``, run seed ``seed``, on ``base``
    (default: the arena's) with train_grpo's ``policy_loss`` hook."""
    cfg = replace(ARENA, seed=seed, **changes)
    res = train_grpo(base or arena_base(), cfg, progress=False, policy_loss=policy_loss)
    return grpo_dashboard(res.history)


def train_loop(cfg: GRPOConfig, pool: list, collect=collect_batch) -> Dashboard:
    """train_grpo's loop with its two inputs in the open: the prompt ``pool`` each step's B
    prompts are drawn from, and ``collect``, the sampler with collect_batch's signature
    (policy, base, cfg, sample_prompts, reward_fn, generator) -> (batch, stats). No reference
    model: cfg.beta must be 0."""
    base = arena_base()
    policy, _, gen = start_policy(base, None, cfg.seed)
    opt = adamw(policy.parameters(), cfg.lr)
    rng = random.Random(cfg.seed)
    history = []
    for step in range(1, cfg.steps + 1):
        batch, st = collect(policy, base, cfg, lambda n: rng.sample(pool, n), base.task.verify,
                            gen)
        inner = grpo_update(policy, None, opt, batch, cfg) if batch is not None else []
        history.append({"step": step,
                        **grpo_log(batch, st, inner, cfg, base.tokenizer.eos_id)})
    return grpo_dashboard(history)


# --- the loss is not a progress meter -----------------------------------------------------

def run_loss_zero(variant: str, seed: int) -> Dashboard:
    """Broken: on-policy, beta 0 (the loss's value is 0 by construction); fixed: the same run
    with DeepSeekMath's beta = 0.04, whose KL term is all the loss then shows. 40 steps."""
    beta = 0.0 if check_variant(variant) == "broken" else 0.04
    return run_grpo(seed, steps=40, beta=beta)


def shows_loss_zero(d: Dashboard) -> bool:
    """The loss stays within 1e-6 of 0 at every step (float error of a zero-mean sum is about
    1e-8) while the gradient is far from 0 (mean grad_norm > 0.1; 0.45 to 0.65 here)."""
    return max(abs(v) for v in d["loss"]) < 1e-6 and mean(d["grad_norm"]) > 0.1


def run_loss_sign(variant: str, seed: int) -> Dashboard:
    """Broken: the token-level mean ("dapo"); fixed: the per-sequence mean ("grpo")."""
    agg = "dapo" if check_variant(variant) == "broken" else "grpo"
    return run_grpo(seed, loss_agg=agg)


def shows_loss_sign(d: Dashboard) -> bool:
    """At least 3 of the steps have a loss above 1e-4 and at least 3 below -1e-4 (5 to 12
    above and 15 to 20 below in 30 steps here; the per-sequence mean stays within 1e-7 of 0)."""
    return (sum(v > 1e-4 for v in d["loss"]) >= 3 and sum(v < -1e-4 for v in d["loss"]) >= 3)


# --- batches without a learning signal ----------------------------------------------------

def run_too_hard(variant: str, seed: int) -> Dashboard:
    """Broken: 4-digit sums (prompts and verifier of get_task("add", digits=4)) for a policy
    taught 3-digit ones, which it never gets right; fixed: the arena's own prompts, of every
    carry count, with DAPO's dynamic sampling keeping only the groups whose rewards differ."""
    if check_variant(variant) == "broken":
        return run_grpo(seed, base=replace(arena_base(), task=get_task("add", digits=4)))
    return run_grpo(seed, dynamic_sampling=True)


def shows_uniform_groups(d: Dashboard) -> bool:
    """On average over the run at least 80% of the sampled groups have one reward for all
    their G samples (the arena's prompts: about 40%)."""
    return mean(d["frac_reward_zero_std"]) >= 0.8


def interleave(parts: list[Rollout], pad_id: int) -> Rollout:
    """G rollouts of one sample for the same B prompts as one group-major rollout (B*G rows:
    row b*G + g is sample g of prompt b)."""
    G, T, first = len(parts), max(p.completion_ids.shape[1] for p in parts), parts[0]

    def stack(name: str, value):  # G tensors (B, t) -> (B*G, T)
        padded = [torch.nn.functional.pad(getattr(p, name), (0, T - getattr(p, name).shape[1]),
                                          value=value) for p in parts]
        return torch.stack(padded, dim=1).flatten(0, 1)  # (B, G, T) -> (B*G, T)
    return replace(first, group_size=G,
                   prompt_ids=first.prompt_ids.repeat_interleave(G, 0),  # (B*G, P)
                   prompt_mask=first.prompt_mask.repeat_interleave(G, 0),  # (B*G, P)
                   completion_ids=stack("completion_ids", pad_id),  # (B*G, T)
                   completion_mask=stack("completion_mask", False),  # (B*G, T)
                   old_logps=stack("old_logps", 0.0),  # (B*G, T)
                   rewards=torch.stack([p.rewards for p in parts], dim=1).flatten(),  # (B*G,)
                   texts=[t for row in zip(*(p.texts for p in parts)) for t in row])


def replica_sampler(shared: bool):
    """A sampler that draws each group as G replicas, one sample per prompt each, with its own
    torch generator: seeded alike (seed s for every replica) when ``shared``, as happens when
    every sampling worker gets the same seed, else seeds s, s+1, ..., s+G-1. s is a fresh draw
    of the run's generator at every step."""
    def collect(policy, base, cfg, sample_prompts, reward_fn, generator):
        problems, G = sample_prompts(cfg.prompts_per_step), cfg.group_size
        s = int(torch.randint(2**31 - G, (), generator=generator))
        parts = [sample_groups(policy, base.tokenizer, base.task, problems, 1,
                               reward_fn=reward_fn, temperature=cfg.temperature,
                               max_new_tokens=cfg.max_new_tokens, generator=torch.Generator(device=generator.device)
                               .manual_seed(s if shared else s + g))
                 for g in range(G)]
        batch = interleave(parts, base.tokenizer.pad_id)
        return batch, {"all_rewards": batch.rewards.view(-1, G), "rounds": 1}
    return collect


def run_shared_seed(variant: str, seed: int) -> Dashboard:
    """Broken: one seed for the G replicas of a group; fixed: G distinct seeds. 8 prompts x
    8 samples, 20 steps (one generation call per replica is slower than one for the batch)."""
    shared = check_variant(variant) == "broken"
    cfg = replace(ARENA, seed=seed, steps=20, prompts_per_step=8)
    pool = arena_base().train_problems(cfg.train_pool, seed=seed)
    return train_loop(cfg, pool, replica_sampler(shared))


def shows_identical_samples(d: Dashboard) -> bool:
    """reward_std is 0 at every step (below 1e-6), although the prompts are the arena's own,
    on which distinct samples disagree in about 60% of the groups."""
    return max(d["reward_std"]) < 1e-6


def run_truncated(variant: str, seed: int) -> Dashboard:
    """Broken: at most 10 new tokens, though the shortest full answer takes 13 ("12,13,06|632"
    and EOS); fixed: the task's own budget of 15. 20 steps."""
    budget = 10 if check_variant(variant) == "broken" else None
    return run_grpo(seed, steps=20, max_new_tokens=budget)


def shows_truncated(d: Dashboard) -> bool:
    """On average at least 90% of the completions end without EOS (the task's budget: < 5%)."""
    return mean(d["completions/clipped_ratio"]) >= 0.9


# --- the clip and the ratio -------------------------------------------------------------

def detached_ratio_loss(logps, old_logps, advantages, mask, clip_eps, loss_agg):
    """The tempting fix: GRPO's clipped surrogate with the importance ratio detached, i.e.
    taken as a constant weight. The log-probs enter the surrogate only through the ratio, so
    this is grpo_loss on detached log-probs: the same value, and no gradient at all."""
    loss, _ = grpo_loss(logps.detach(), old_logps, advantages, mask, clip_eps=clip_eps,
                        loss_agg=loss_agg)
    return loss


def run_detached(variant: str, seed: int) -> Dashboard:
    """Broken: the surrogate with a detached ratio (train_grpo's policy_loss hook); fixed: the
    plain on-policy surrogate."""
    broken = check_variant(variant) == "broken"
    return run_grpo(seed, policy_loss=detached_ratio_loss if broken else None)


def shows_detached(d: Dashboard) -> bool:
    """clip_ratio is 0 throughout (it is in both runs) and so is the gradient: grad_norm below
    1e-8 at every step (the plain run: 0.45 to 0.65 on average)."""
    return (max(d["clip_ratio/region_mean"]) == 0.0 and max(d["grad_norm"]) < 1e-8)


REMEDIES: dict[str, str] = {   # remedy label -> what to do, for the clinic's closed list
    "read_reward_not_loss": "Nothing to repair: judge the run by reward, grad_norm and held-out "
                            "accuracy, because the value of the GRPO loss is not a progress "
                            "signal.",
    "match_prompt_difficulty": "Train on prompts the policy solves some of the time, and drop "
                               "the groups whose rewards all agree (dynamic sampling).",
    "distinct_sampling_seeds": "Give every sample of a group its own random stream.",
    "raise_token_budget": "Raise the generation budget above the length of a complete answer.",
    "keep_ratio_in_graph": "Keep the importance ratio differentiable: it carries the policy "
                           "gradient, and a clip_ratio of 0 is expected on-policy.",
}

CASES: tuple[Case, ...] = (
    Case(name="grpo_loss_zero",
         title="GRPO loss is 0 at every step (or only creeps up) although the model trains",
         source="huggingface/trl#2703",
         symptom="The logged loss is 0.0 (or -0.0) from the first step to the last, while "
                 "grad_norm is far from zero and the reward moves.",
         diagnosis="Nothing is wrong with training. With one update per batch the ratio is "
                   "exactly 1 and the advantages are centred within each group, so the "
                   "surrogate's value is 0 by construction; its gradient, the policy gradient, "
                   "is not. With beta > 0 the loss shows beta times the KL to the reference, "
                   "which grows as the policy moves: a rising loss is no alarm either.",
         fix="Judge the run by reward, grad_norm and held-out accuracy, never by the value of "
             "the GRPO loss.",
         failure="loss_zero_on_policy", remedy="read_reward_not_loss",
         panels=("loss", "grad_norm", "reward", "reward_std"),
         run=run_loss_zero, shows=shows_loss_zero),
    Case(name="grpo_loss_sign",
         title="GRPO loss is negative, and flips sign from step to step",
         source="nvidia-cosmos/cosmos-reason1#22",
         symptom="The loss wanders above and below zero (here by a few 1e-3) with no trend, "
                 "while reward and grad_norm look like those of a healthy run.",
         diagnosis="The token-level mean (DAPO's aggregation, verl's \"token-mean\") weights each "
                   "completion's advantage by its length, so on a fresh batch the loss is "
                   "minus the length-weighted mean advantage: negative when the longer "
                   "completions are the better ones, positive when they are the worse ones. "
                   "Extra updates on a reused batch push it below 0 too. Neither says how "
                   "training goes.",
         fix="Read reward and grad_norm; the per-sequence mean (DeepSeekMath's \"grpo\" "
             "aggregation) shows that the same run's loss sits at 0 once lengths no longer "
             "weigh in.",
         failure="loss_sign_flips", remedy="read_reward_not_loss",
         panels=("loss", "grad_norm", "reward", "completions/mean_length"),
         run=run_loss_sign, shows=shows_loss_sign),
    Case(name="too_hard_prompts",
         title="reward and reward_std are 0, frac_reward_zero_std is 1: nothing trains",
         source="rllm-org/rllm#54",
         symptom="Every sampled group gets the same reward (here all 0), so reward_std is 0, "
                 "frac_reward_zero_std is 1 and loss and grad_norm are exactly 0 at every "
                 "step.",
         diagnosis="The prompts are beyond the policy (4-digit sums for a policy that learned "
                   "3-digit ones): no sample is ever right, every group-relative advantage "
                   "is 0, and without beta nothing is left to train on. Prompts that are "
                   "always solved stall GRPO the same way.",
         fix="Train on prompts the policy solves some of the time (filter or order the data "
             "by its pass rate) and drop the groups whose rewards all agree (DAPO's dynamic "
             "sampling), so every update batch carries a signal.",
         failure="prompts_too_hard", remedy="match_prompt_difficulty",
         panels=("frac_reward_zero_std", "reward_std", "reward", "grad_norm"),
         run=run_too_hard, shows=shows_uniform_groups),
    Case(name="shared_group_seed",
         title="reward_std is exactly 0 on prompts the policy half-solves",
         source="vllm-project/vllm#11898",
         symptom="reward_std is 0 and frac_reward_zero_std is 1 at every step, although the "
                 "mean reward is neither 0 nor 1: some groups are all right, the others all "
                 "wrong, and grad_norm is 0.",
         diagnosis="Each group's G samples were drawn by generators seeded alike (one seed "
                   "for every replica or every sample of a request), so they are one "
                   "completion copied G times: identical texts, identical rewards, zero "
                   "advantages.",
         fix="Give each sample of a group its own random stream (distinct seeds per replica "
             "and per sample, or no fixed seed), and look at a few groups' completions.",
         failure="identical_group_samples", remedy="distinct_sampling_seeds",
         panels=("reward_std", "frac_reward_zero_std", "reward", "grad_norm"),
         run=run_shared_seed, shows=shows_identical_samples),
    Case(name="truncated_completions",
         title="completions/clipped_ratio is 1 and every reward is 0",
         source="huggingface/trl#5697",
         symptom="completions/mean_length sits at the generation limit, "
                 "completions/clipped_ratio is 1, and reward, reward_std, loss and grad_norm "
                 "are all 0.",
         diagnosis="The token budget (max_new_tokens, TRL's max_completion_length) is shorter "
                   "than any complete answer, so every completion is cut before it can give "
                   "one and the verifier scores them all 0.",
         fix="Raise the budget above the length of a full answer (check the lengths of the "
             "base's completions first) and keep completions/clipped_ratio near 0.",
         failure="completions_truncated", remedy="raise_token_budget",
         panels=("completions/clipped_ratio", "reward", "completions/mean_length",
                 "frac_reward_zero_std"),
         run=run_truncated, shows=shows_truncated),
    Case(name="detached_ratio",
         title="clip_ratio is always 0, and detaching the ratio to 'fix' it stops learning",
         source="huggingface/trl#3120",
         symptom="clip_ratio/region_mean is 0 at every step; after a change that detaches the "
                 "importance ratio it is still 0, but grad_norm is now exactly 0 and the "
                 "reward no longer moves.",
         diagnosis="With one update per batch the ratio pi_theta / pi_old is exactly 1 when "
                   "the loss is computed, so the clip never binds and clip_ratio 0 is correct. "
                   "The ratio is also the only place the log-probs enter the surrogate: "
                   "detaching it leaves a constant and no policy gradient.",
         fix="Keep the ratio in the graph. Expect clip_ratio above 0 only with several "
             "updates per batch (num_iterations > 1) or asynchronous sampling.",
         failure="ratio_detached", remedy="keep_ratio_in_graph",
         panels=("grad_norm", "clip_ratio/region_mean", "reward"),
         run=run_detached, shows=shows_detached),
)
