"""Run-clinic cases of GRPO's training dynamics: the KL to the reference and the entropy.

Each case is a small GRPO run (``refimpl.methods.grpo_trainer``) on the arena, the cpu base
policy and its 3-digit additions (``clinic_case.arena_base``), read through the TRL metrics the
trainer logs at every step:

* ``dropout_kl``: kl is far above 0 at the first step, before any update, and clip_ratio is
  above 0 on-policy. The policy's training pass drops units (``GPTConfig.dropout``, here 0.1,
  GPT-2's value) while the reference and the sampler, in eval mode, do not (TRL issue #3500).
  TRL's GRPOConfig has ``disable_dropout`` for it (off by default in GRPO, on in DPO and KTO).
* ``k3_kl_spike``: kl jumps to tens or hundreds of nats per token after one too-large step.
  The k3 estimator (Schulman 2020; ``refimpl.methods.kl``) holds exp(log pi_ref - log pi); on
  the few sampled tokens whose probability fell far below the reference's it explodes, and so
  does its gradient (OpenRLHF issue #525). Fixed by smaller steps.
* ``entropy_collapse``: trained again and again on a small prompt set, entropy falls to under
  half its start and the groups turn uniform (DAPO, Yu et al. 2025, sec. 3.1; the Skywork-OR1
  report, arXiv:2505.22312). Fixed by an entropy bonus held as a floor
  (``GRPOConfig.entropy_coef`` and ``entropy_target``), computed exactly from the logits
  (``logprobs.token_entropy``).

Every ``shows`` predicate holds with a margin on run seeds 0-3 of bases 0 and 1; its docstring
gives the range each variant reached there.

Not a case here: Dr. GRPO's length bias (Liu et al. 2025, arXiv:2503.20783). On the two-format
task ``add_mixed`` (``length_runs``, claim C11b) both aggregations drive the completions to the
longer format, which is right more often; the per-sequence mean only gets there a little faster
(the wrong answers end 0.2 tokens longer, 13.0 against 12.8, a gap that takes 15 paired runs to
see), so one run's dashboard cannot tell the broken run from the fixed one.
"""
from __future__ import annotations

import statistics
from dataclasses import replace

from refimpl.core.model import set_dropout
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.experiments.debugging.clinic_case import (Case, Dashboard, arena_base, check_variant,
                                                       dashboard, mean)

# the KL cases: DeepSeekMath's penalty (beta 0.04, k3) and its mu = 2 updates per batch
KL_ARENA = GRPOConfig(steps=8, prompts_per_step=8, group_size=8, lr=1e-4, beta=0.04,
                      kl_estimator="k3", inner_updates=2, eval_every=0)
# the entropy case: 16 prompts, the same ones every step, no KL term (TRL's default beta = 0)
SMALL_SET = GRPOConfig(steps=48, prompts_per_step=16, group_size=8, lr=5e-4, beta=0.0,
                       inner_updates=2, train_pool=16, eval_every=0)


def run_arena(cfg: GRPOConfig, seed: int, keys: tuple[str, ...], policy=None) -> Dashboard:
    """train_grpo on the arena's base with ``cfg`` and run seed ``seed`` (``policy``: the model
    to train, default a copy of the base); the dashboard of ``keys``, with the trainer's
    clip_ratio under TRL's name clip_ratio/region_mean."""
    history = train_grpo(arena_base(), replace(cfg, seed=seed), policy=policy,
                         progress=False).history
    rows = [{**r, "clip_ratio/region_mean": r["clip_ratio"]} for r in history
            if "clip_ratio" in r]
    return dashboard(rows, keys)


# --- dropout on in the policy, off in the reference ----------------------------------------

DROPOUT = 0.1           # GPT-2's resid/embd/attn dropout; the arena's base is trained without
DROPOUT_KEYS = ("kl", "clip_ratio/region_mean", "grad_norm", "reward")


def run_dropout(variant: str, seed: int) -> Dashboard:
    """Broken: the policy trains with dropout 0.1 (reference and sampler in eval mode); fixed:
    dropout off. One update per batch, so the first step's kl is measured before any update."""
    p = DROPOUT if check_variant(variant) == "broken" else 0.0
    policy = set_dropout(arena_base().policy(), p)
    cfg = replace(KL_ARENA, steps=10, inner_updates=1)
    return run_arena(cfg, seed, DROPOUT_KEYS, policy=policy)


def shows_dropout_kl(d: Dashboard) -> bool:
    """kl at the first step, where policy and reference have the same weights, is above 0.05
    nats per token (with dropout: 0.14 to 1.6; without: exactly 0)."""
    return d["kl"][0] > 0.05


# --- k3's exponential tail -----------------------------------------------------------------

K3_LR = 2e-3            # twenty times the arena's default step
K3_KEYS = ("kl", "grad_norm", "reward")


def run_k3_spike(variant: str, seed: int) -> Dashboard:
    """Broken: lr 2e-3 with k3 in the loss; fixed: the default lr 1e-4, k3 still."""
    lr = K3_LR if check_variant(variant) == "broken" else KL_ARENA.lr
    return run_arena(replace(KL_ARENA, lr=lr), seed, K3_KEYS)


def shows_kl_spike(d: Dashboard) -> bool:
    """Some step's kl is above 10 nats per token and above 10 times the run's median kl (here
    30 to 1200 against medians of 1 to 3; at lr 1e-4 kl stays at or below 0.1, and k2 in the
    loss at lr 2e-3 reads 1 to 6 with no spike)."""
    top = max(d["kl"])
    return top > 10.0 and top > 10.0 * statistics.median(d["kl"])


# --- entropy collapse ----------------------------------------------------------------------

ENTROPY_COEF, ENTROPY_TARGET = 0.1, 0.3   # the bonus acts while the mean entropy is below 0.3
ENTROPY_KEYS = ("entropy", "reward", "frac_reward_zero_std", "grad_norm")


def run_entropy(variant: str, seed: int) -> Dashboard:
    """Broken: SMALL_SET (16 fixed prompts, lr 5e-4, beta 0); fixed: the same with an entropy
    bonus of weight 0.1 held as a floor at 0.3 nats per token."""
    cfg = SMALL_SET
    if check_variant(variant) == "fixed":
        cfg = replace(cfg, entropy_coef=ENTROPY_COEF, entropy_target=ENTROPY_TARGET)
    return run_arena(cfg, seed, ENTROPY_KEYS)


def shows_entropy_collapse(d: Dashboard) -> bool:
    """The mean entropy of the last quarter of the run is below 0.6 times that of its first 3
    steps (here 0.31 to 0.51 of it; with the bonus 0.77 to 0.95; with clip-higher alone
    about 0.4)."""
    h = d["entropy"]
    return mean(h[len(h) - len(h) // 4:]) < 0.6 * mean(h[:3])


REMEDIES: dict[str, str] = {   # remedy label -> what to do, for the clinic's closed list
    "disable_dropout": "Switch dropout off in the policy for RL training, so that its training "
                       "pass, the sampler and the reference compute the same distribution.",
    "lower_lr": "Take smaller optimizer steps, so that the policy moves away from pi_old and "
                "pi_ref by little per update.",
    "entropy_bonus": "Add the exact mean token entropy, weighted, to the objective (an entropy "
                     "bonus, best held as a floor), or let unlikely tokens grow further before "
                     "the clip stops them (DAPO's clip-higher).",
}

CASES: tuple[Case, ...] = (
    Case(name="dropout_kl",
         title="KL is large from the very first step, before the policy has moved",
         source="huggingface/trl#3500",
         symptom="kl reads 0.1 to 1.6 nats per token at step 1, when policy and reference "
                 "still share their weights, and keeps jumping (grad_norm up to tens); "
                 "clip_ratio is above 0 although every update is on-policy.",
         diagnosis="The policy's training forward pass drops units at random (dropout 0.1) while "
                   "the reference and the sampler run in eval mode without dropout, so the "
                   "log-probs disagree on every token even with identical weights: the KL "
                   "estimate and the importance ratio measure dropout noise, not policy change.",
         fix="Switch dropout off for RL training: TRL's GRPOConfig(disable_dropout=True) (its "
             "DPO and KTO trainers do it by default, its GRPO trainer only when asked); here "
             "set_dropout(policy, 0). kl then starts at exactly 0 and grows only as the "
             "policy moves.",
         failure="dropout_mismatch", remedy="disable_dropout",
         panels=DROPOUT_KEYS, run=run_dropout, shows=shows_dropout_kl),
    Case(name="k3_kl_spike",
         title="KL spikes to hundreds of nats per token with the k3 estimator",
         source="OpenRLHF/OpenRLHF#525",
         symptom="At a learning rate of 2e-3 kl jumps to tens or hundreds (up to 1200) of nats "
                 "per token right after the first update and grad_norm to hundreds, then kl "
                 "falls back to 1-3 while the reward drops to 0.",
         diagnosis="k3 = r - 1 - log r with r = pi_ref / pi_theta contains exp(log r). One large "
                   "step pushes a few sampled tokens' probability far below the reference's; "
                   "on those tokens k3 and its gradient, (1 - r) grad log pi, grow "
                   "exponentially and outweigh all the others. The k2 estimate of the same "
                   "step's KL is a few nats, not hundreds.",
         fix="Take smaller steps (the default lr 1e-4): the log-ratios stay small and k3 stays "
             "near k2. Putting k2 in the loss, or clamping k3 per token (verl's low_var_kl), "
             "removes the exponential tail from the value and the gradient (k2 reads 1 to 6 "
             "nats here, no spike), but not the too-large step, which sends this run's reward "
             "to 0 with either estimator.",
         failure="k3_tail", remedy="lower_lr",
         panels=K3_KEYS, run=run_k3_spike, shows=shows_kl_spike),
    Case(name="entropy_collapse",
         title="Entropy collapses and the samples of a group turn into copies",
         source="verl-project/verl#5953",
         symptom="Training again and again on the same 16 prompts, entropy falls to a third or "
                 "half of its start within 48 steps and frac_reward_zero_std ends higher than "
                 "with the fix: more groups whose G samples all agree. The reward is no better "
                 "for it; over this short run it is about the same.",
         diagnosis="Each update raises the probability of tokens that earned a positive "
                   "advantage, mostly tokens the policy already prefers; with no KL term and the "
                   "same prompts at every step nothing pulls the other way, so the "
                   "distribution sharpens until the samples stop exploring.",
         fix="Add an entropy bonus: subtract 0.1 x the exact mean token entropy from the loss "
             "while it is below 0.3 nats (GRPOConfig.entropy_coef and entropy_target; a floor, "
             "so that the bonus cannot blow the entropy up). DAPO's clip-higher "
             "(clip_eps_high=0.28) is the other usual remedy, for runs that take many updates "
             "per batch; here the clip binds on about 1% of the tokens and the entropy still "
             "falls to about 0.4 of its start.",
         failure="entropy_collapse", remedy="entropy_bonus",
         panels=ENTROPY_KEYS, run=run_entropy, shows=shows_entropy_collapse),
)
