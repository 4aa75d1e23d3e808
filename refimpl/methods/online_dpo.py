"""Online DPO: the DPO loss on fresh pairs sampled from the *current* policy.

Offline DPO (``refimpl.methods.dpo_trainer``) learns from a fixed data set of pairs drawn once from the
base. When it loses to GRPO, two things differ at once: the *data* (fixed, from the base) and
the *loss* (a pairwise logistic loss on implicit rewards instead of a policy gradient). Online
DPO keeps the loss and changes the data: at every step it samples G completions for each of B
prompts from the policy being trained, lets the verifier label them, pairs a correct with a
wrong completion inside each group (``refimpl.core.preferences.pairs_from_rollout``) and takes
``inner_updates`` DPO steps on those pairs (Guo et al. 2024, "Direct Language Model
Alignment from Online AI Feedback", Algorithm 1, with the verifier as the annotator; Pang et
al. 2024 iterate the same idea in rounds). The reference stays the frozen base, as in DPO:

    per step:  x_1..x_B ~ train prompts;  y_{b,1..G} ~ pi_theta(. | x_b);  r = verify(x, y)
               pairs (x_b, y_w, y_l) with r(y_w) = 1, r(y_l) = 0 inside group b
               repeat inner_updates times:
                   theta <- theta - lr * grad [ L_DPO(pairs; pi_theta, pi_ref) + nll_coef * NLL(y_w) ]

A group whose G samples are all right or all wrong gives no pair, exactly where GRPO's
advantages vanish (claim C8): both methods get their signal from mixed groups only. Its
samples still count in the budget (``samples``), as GRPO's do.

History rows: ``step``, ``time_s``, ``samples`` (completions generated so far), ``pairs_formed``
(pairs formed this step), ``reward`` (mean verifier score of the samples),
``completions/mean_length``, ``entropy``, the DPO metrics of the last update (``loss``, ``nll``,
``rewards/...``) and ``heldout_acc`` at step 0 and every ``eval_every`` steps.

The registry row of online DPO (``METHOD``) sits at the end of the module.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from refimpl.core import checks
from refimpl.core.preferences import pairs_from_rollout
from refimpl.core.rollouts import completion_stats, sample_groups
from refimpl.core.training import (Clock, Method, StepBar, TrainResult, adamw, check_fields,
                                   heldout_row, log_heldout, problem_sets, start_history,
                                   start_policy)
from refimpl.methods.dpo import LOSS_TYPES
from refimpl.methods.dpo_trainer import dpo_update, pair_logps


@dataclass
class OnlineDPOConfig:
    """Online DPO settings; the defaults match GRPOConfig's batch (B=16 prompts x G=8)."""

    steps: int = 20
    prompts_per_step: int = 16        # B prompts sampled per step
    group_size: int = 8               # G completions per prompt, judged by the verifier
    pairs_per_prompt: int = 2         # at most this many (correct, wrong) pairs per group
    inner_updates: int = 2            # mu: DPO optimizer steps on each step's pairs (as GRPO's)
    beta: float = 0.1                 # KL strength of the implicit reward
    lr: float = 2e-5                  # AdamW learning rate
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0
    nll_coef: float = 0.0             # NLL on the chosen completions (RPO); 0 = pure DPO loss
    max_grad_norm: float = 1.0
    temperature: float = 1.0
    level: int | None = None          # train on one difficulty level (None = the mix)
    train_pool: int = 4096            # training prompts drawn from this fixed pool
    eval_every: int = 10              # held-out greedy accuracy every this many steps (<= 0: never)
    eval_problems: int = 256
    seed: int = 0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        check_fields(self, {"steps": 1, "prompts_per_step": 1, "group_size": 2,
                            "pairs_per_prompt": 1, "inner_updates": 1, "train_pool": 1,
                            "eval_problems": 1},
                     positive=("beta", "lr", "temperature", "max_grad_norm"),
                     why={"group_size": " (a pair needs a correct and a wrong sample)"})
        if self.loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {self.loss_type!r}: use one of {LOSS_TYPES}")
        if not 0.0 <= self.label_smoothing < 0.5:
            raise ValueError(f"OnlineDPOConfig.label_smoothing must lie in [0, 0.5), "
                             f"got {self.label_smoothing!r}")
        if not self.nll_coef >= 0:
            raise ValueError(f"OnlineDPOConfig.nll_coef must be >= 0, got {self.nll_coef!r}")


def collect_pairs(policy, reference, base, cfg: OnlineDPOConfig, problems, generator,
                  pair_seed: int = 0):
    """Sample, judge and pair; return (pairs or None, rollout, ref_chosen, ref_rejected).

    problems: B training problems; generator: the sampling generator; pair_seed: which
    correct and which wrong samples of a group are paired. ref_chosen / ref_rejected: (N,) sequence log-probs of the
    frozen reference on the N pairs (None when no group was mixed).
    """
    rollout = sample_groups(policy, base.tokenizer, base.task, problems, cfg.group_size,
                            reward_fn=base.task.verify, temperature=cfg.temperature,
                            generator=generator)
    try:
        pairs = pairs_from_rollout(rollout, base.tokenizer, cfg.pairs_per_prompt, pair_seed)
    except ValueError:                 # no mixed group this step: no pair, no update
        return None, rollout, None, None
    with torch.no_grad():
        ref_c, ref_r = pair_logps(reference, pairs)                     # (N, T) each
    return pairs, rollout, ref_c.sum(-1), ref_r.sum(-1)


def train_online_dpo(base, cfg: OnlineDPOConfig | None = None, *, policy=None,
                     progress: bool = True, heldout=None) -> TrainResult:
    """Train ``policy`` (default: a copy of the base) with online DPO against the frozen base.

    base: the SFT Base (its model is the frozen reference); cfg: an OnlineDPOConfig (None:
    defaults); progress: show a progress bar; heldout: problems for ``heldout_acc`` (default
    ``base.heldout(cfg.eval_problems)``). Returns a TrainResult (model: the trained policy).
    """
    cfg = checks.config("cfg", cfg, OnlineDPOConfig)
    cfg.validate()
    policy, device, gen = start_policy(base, policy, cfg.seed)
    reference = base.reference().to(device)
    opt = adamw(policy.parameters(), cfg.lr)
    heldout, pool, rng = problem_sets(base, cfg, heldout)
    evaluate = partial(heldout_row, policy, base, heldout)

    clock = Clock()
    history = start_history(cfg, clock, evaluate)
    samples = 0
    bar = StepBar(cfg.steps, "online DPO", progress)
    for step in bar:
        pairs, ro, ref_c, ref_r = collect_pairs(policy, reference, base, cfg,
                                                rng.sample(pool, cfg.prompts_per_step), gen,
                                                pair_seed=rng.randrange(2**31))
        samples += ro.num_samples
        row = {"step": step, "samples": samples, "pairs_formed": 0 if pairs is None else len(pairs),
               "reward": ro.rewards.mean().item(),
               **completion_stats(ro)}
        for _ in range(cfg.inner_updates if pairs is not None else 0):
            row.update(dpo_update(policy, opt, pairs, ref_c, ref_r, cfg))
        row["time_s"] = clock()
        if log_heldout(row, cfg, clock, evaluate):
            bar.set_postfix(acc=f"{row['heldout_acc']:.2f}", pairs=row["pairs_formed"])
        history.append(row)
    bar.close()
    return TrainResult(policy.eval(), history)


# ---- the registry row of online DPO (refimpl.methods.registry collects it); in the FLOPs model N
# is the parameter count, L the tokens per sequence (prompt + mean completion), N_critic unused ----
def online_dpo_study_fields(cc) -> dict:
    """The OnlineDPOConfig fields a head-to-head run sets from ``cc`` (a CompareConfig): B, G
    and the pairs per prompt of DPO's data."""
    return dict(prompts_per_step=cc.prompts_per_step, group_size=cc.group_size,
                pairs_per_prompt=cc.dpo_pairs_per_prompt)


def online_dpo_flops(cfg, N, L, N_critic=0) -> float:
    """Online DPO: sample B x G, the reference on the n pairs formed, mu DPO steps.

    2 N BG L (sampling) + 2 N * 2n L (reference on the n pairs formed) + mu * 6 N * 2n L
    (mu = cfg.inner_updates DPO steps on the pairs), counting n = B * pairs_per_prompt, the
    most pairs a step can form."""
    BG = cfg.prompts_per_step * cfg.group_size
    n = cfg.prompts_per_step * cfg.pairs_per_prompt
    return (2 * BG + 2 * 2 * n + cfg.inner_updates * 6 * 2 * n) * N * L


# the DPO loss on fresh pairs from the current policy, labelled by the verifier (Guo et al. 2024)
METHOD = Method("online_dpo", "online DPO", "implicit (fresh pairs)", OnlineDPOConfig,
                train_online_dpo, online_dpo_study_fields, online_dpo_flops)
