"""Run-clinic cases of DPO: the chosen log-prob that falls, and the loss that never leaves ln 2.

Every case trains DPO (``refimpl.methods.dpo_trainer``) on the arena, the cpu base policy and
its 3-digit additions, and reads the TRL metrics the trainer logs at every step
(``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``,
``logps/chosen``, ``logps/rejected`` and ``loss``). The pairs are the project's verifier-labelled
pairs of base samples (``refimpl.core.preferences.build_pairs``, as in
``refimpl.experiments.claims_study.dpo_runs``): a right and a wrong completion of one prompt, built once per
base and run seed.

* ``dpo_chosen_logps_fall`` (likelihood displacement; Razin et al. 2024, arXiv:2410.08847; Pal
  et al. 2024, "Smaug", arXiv:2402.13228): pure DPO widens the margin by pushing the rejected
  completion down faster than the chosen one, and the chosen one goes down too. Fixed by the
  NLL term on the chosen completions (RPO, ``DPOConfig.nll_coef``).
* ``dpo_loss_stuck_masked``: the pairs were cut to a ``max_length`` that the prompt alone
  fills, so no completion token is left in either mask; both sequence log-probs are 0, the
  margin is 0 and the loss is ln 2 = 0.693 at every step, with an exactly zero gradient.
* ``dpo_loss_stuck_tiny_lr``: the same flat ln 2 from a step far too small (lr 1e-7 with
  Adam moves each weight by about 1e-7 per step), with correct masks this time.

The fixed run of both "stuck" cases is the plain DPO run (correct masks, lr 1e-4).
"""
from __future__ import annotations

import math

import torch

from refimpl.core import checks
from refimpl.core.preferences import PreferencePairs, build_pairs
from refimpl.methods.dpo_trainer import DPOConfig, train_dpo
from refimpl.experiments.debugging.clinic_case import (Case, Dashboard, arena_base, check_variant,
                                                       dashboard, mean)

DPO_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
            "rewards/accuracies", "logps/chosen", "logps/rejected")
LN2 = math.log(2.0)
N_PROMPTS, GROUP_SIZE, PAIRS_PER_PROMPT = 256, 8, 2   # about 200 pairs per seed
STEPS, BATCH_SIZE, LR = 60, 16, 1e-4                  # DPOConfig's lr; ~5 epochs of the pairs
TINY_LR = 1e-7
_PAIRS: dict = {}


def arena_pairs(seed: int) -> PreferencePairs:
    """Verifier-labelled pairs of base samples (N_PROMPTS training prompts x GROUP_SIZE
    samples, up to PAIRS_PER_PROMPT disjoint right/wrong pairs each), built once per base and
    run seed."""
    base = arena_base()
    key = (base.seed, seed)
    if key not in _PAIRS:
        _PAIRS[key] = build_pairs(base.model, base.tokenizer, base.task,
                                  base.train_problems(N_PROMPTS, seed=seed), GROUP_SIZE,
                                  PAIRS_PER_PROMPT, 1.0, seed)
    return _PAIRS[key]


def truncate_pairs(pairs: PreferencePairs, max_length: int) -> PreferencePairs:
    """The pairs as a trainer with ``max_length`` tokens per sequence would see them: prompt
    and completion together are cut at ``max_length`` (the end goes, as in TRL's default
    ``truncation_mode="keep_start"``), so a completion keeps max(0, max_length - prompt
    length) tokens of its mask. A max_length that the prompt alone fills leaves no completion
    token at all: the bug of ``dpo_loss_stuck_masked``."""
    checks.count("max_length", max_length, 1)
    out = pairs[:]
    room = (max_length - pairs.prompt_mask.sum(1)).clamp(min=0)          # (N,)
    cols = torch.arange(pairs.chosen_mask.shape[1], device=room.device)  # (T,)
    keep = cols[None, :] < room[:, None]                                 # (N, T)
    out.chosen_mask = pairs.chosen_mask & keep                           # (N, T)
    out.rejected_mask = pairs.rejected_mask & keep                       # (N, T)
    out.stats = {**pairs.stats, "max_length": max_length}
    return out


def dpo_dashboard(pairs: PreferencePairs, seed: int, lr: float = LR,
                  nll_coef: float = 0.0) -> Dashboard:
    """The TRL metrics of every step of a DPO run on ``pairs`` (pure DPO unless nll_coef > 0).
    The trainer's held-out evaluation (step 0 and the last step) runs on 16 problems only: no
    panel shows it."""
    base = arena_base()
    cfg = DPOConfig(lr=lr, nll_coef=nll_coef, steps=STEPS, batch_size=BATCH_SIZE,
                    eval_every=STEPS, seed=seed)
    res = train_dpo(base, cfg, pairs=pairs, progress=False, heldout=base.heldout(16))
    return dashboard(res.history, DPO_KEYS)


def early_late(values: list[float], frac: float = 1 / 3) -> tuple[float, float]:
    """Means of the first and of the last ``frac`` of a curve (at least one point each), so
    that a predicate compares stretches of a noisy curve, never two single steps."""
    n = max(1, int(len(values) * frac))
    return mean(values[:n]), mean(values[-n:])


# --- likelihood displacement --------------------------------------------------------------

def run_displacement(variant: str, seed: int) -> Dashboard:
    """Broken: pure DPO; fixed: DPO + NLL on the chosen completions (RPO, nll_coef = 1)."""
    check_variant(variant)
    return dpo_dashboard(arena_pairs(seed), seed, nll_coef=0.0 if variant == "broken" else 1.0)


def shows_displacement(d: Dashboard) -> bool:
    """The margin grows by > 0.1 while the chosen completions lose likelihood: the last third's
    implicit reward of the chosen is below -0.1 (the policy puts less mass on y_w than the
    reference did) and logps/chosen ends below where it started."""
    m0, m1 = early_late(d["rewards/margins"])
    _, chosen = early_late(d["rewards/chosen"])
    lp0, lp1 = early_late(d["logps/chosen"])
    return m1 - m0 > 0.1 and chosen < -0.1 and lp1 < lp0


# --- loss stuck at ln 2 -------------------------------------------------------------------

def run_masked(variant: str, seed: int) -> Dashboard:
    """Broken: every pair cut to max_length 8, which the prompt (BOS + "abc+def=", 9 tokens)
    already fills, so both completion masks are empty; fixed: the pairs as built."""
    check_variant(variant)
    pairs = arena_pairs(seed)
    return dpo_dashboard(truncate_pairs(pairs, 8) if variant == "broken" else pairs, seed)


def run_tiny_lr(variant: str, seed: int) -> Dashboard:
    """Broken: pure DPO at lr 1e-7; fixed: the same at lr 1e-4 (DPOConfig's default)."""
    check_variant(variant)
    return dpo_dashboard(arena_pairs(seed), seed, lr=TINY_LR if variant == "broken" else LR)


def shows_stuck(d: Dashboard) -> bool:
    """Over the second half of the run the loss stays within 0.01 of ln 2 and the margin
    within 0.02 of 0 at every step. A learning run leaves both within a few steps (its loss
    ends near 0.45-0.6 and its margin near 0.2-0.6 here); lr 1e-7 ends within 0.003 of each."""
    half = len(d["loss"]) // 2
    return (all(abs(v - LN2) < 0.01 for v in d["loss"][half:])
            and all(abs(v) < 0.02 for v in d["rewards/margins"][half:]))


REMEDIES: dict[str, str] = {   # remedy label -> what to do, for the clinic's closed list
    "add_nll_on_chosen": "Add the NLL of the chosen completions to the DPO loss (RPO; TRL's "
                         "rpo_alpha), which keeps their likelihood up while the margin grows.",
    "fix_completion_mask": "Put the completion tokens back in the loss mask: check one "
                           "masked example, and keep max_length above prompt plus completion.",
    "raise_learning_rate": "Raise the learning rate until rewards/margins leaves 0 within the "
                           "first few dozen steps.",
}

CASES: tuple[Case, ...] = (
    Case(name="dpo_chosen_logps_fall",
         title="DPO: logps/chosen keeps falling while rewards/margins grows",
         source="huggingface/trl#800",
         symptom="The margin and the preference accuracy go up as they should, yet "
                 "rewards/chosen turns negative and logps/chosen falls: the model grows less "
                 "likely to write the answers it was told to prefer.",
         diagnosis="DPO's loss sees only the difference of two log-ratios, so it is happy to "
                   "lower both completions as long as the rejected one falls faster; on right "
                   "and wrong answers that share most tokens, the push on the rejected one "
                   "drags the chosen one down with it (likelihood displacement).",
         fix="Add the NLL of the chosen completions to the loss (RPO; nll_coef, TRL's "
             "rpo_alpha), which holds log pi(y_w) up while the margin still grows.",
         failure="likelihood_displacement", remedy="add_nll_on_chosen",
         panels=("rewards/chosen", "rewards/margins", "logps/chosen", "logps/rejected",
                 "rewards/rejected", "loss"),
         run=run_displacement, shows=shows_displacement),
    Case(name="dpo_loss_stuck_masked",
         title="DPO loss stuck at 0.6931, logps/chosen and logps/rejected exactly 0",
         source="Yifan-Song793/ETO#14",
         symptom="The loss reads 0.6931 at every step and rewards/margins, rewards/accuracies, "
                 "logps/chosen and logps/rejected are all exactly 0.",
         diagnosis="No completion token is left in the loss mask (here a max_length that the "
                   "prompt alone fills cut every completion away), so both sequence log-probs "
                   "are sums over nothing: the margin is 0, the loss is ln 2 and the gradient "
                   "is exactly zero. A learning rate far too small gives the same flat ln 2 "
                   "with non-zero logps (case dpo_loss_stuck_tiny_lr).",
         fix="Make sure the completion tokens are in the mask: a max_length above the longest "
             "prompt plus completion (print one masked example before training).",
         failure="completion_masked_out", remedy="fix_completion_mask",
         panels=("loss", "rewards/margins", "logps/chosen", "logps/rejected"),
         run=run_masked, shows=shows_stuck),
    Case(name="dpo_loss_stuck_tiny_lr",
         title="DPO loss does not move from 0.693",
         source="jingyaogong/minimind#430",
         symptom="The loss stays at 0.693 for the whole run and the margins hover at 0, while "
                 "logps/chosen and logps/rejected look normal.",
         diagnosis="At step 0 the policy equals the reference, so every margin is 0 and the "
                   "loss is ln 2; with a learning rate far too small (1e-7 here) Adam moves each "
                   "weight by about that much per step and the policy never leaves the "
                   "reference.",
         fix="Raise the learning rate to one that moves this model (1e-4 for the arena's "
             "base; the right value shrinks as models grow) and check that rewards/margins "
             "leaves 0 within the first few dozen steps.",
         failure="learning_rate_too_low", remedy="raise_learning_rate",
         panels=("loss", "rewards/margins", "rewards/accuracies", "logps/chosen"),
         run=run_tiny_lr, shows=shows_stuck),
)

