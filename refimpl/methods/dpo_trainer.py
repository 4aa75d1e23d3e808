"""DPO training on the task: a short loop over ``refimpl.methods.dpo.dpo_loss``.

Rafailov et al. 2023 (eq. 7) on a fixed data set of preference pairs built from the base's own
samples (``refimpl.core.preferences``). The reference pi_ref never changes, so its sequence
log-probs log pi_ref(y_w|x), log pi_ref(y_l|x) are computed once, before the loop, and reused
at every step (TRL's ``precompute_ref_log_probs``).

Optional NLL term on the chosen completions (RPO; Pang et al. 2024, "Iterative Reasoning
Preference Optimization", eq. 1 there; TRL's ``rpo_alpha``):

    L = L_DPO + nll_coef * ( - sum_{i,t} log pi_theta(y_w,i,t | x_i, y_w,i,<t) / sum_i |y_w,i| ),

the negative log-likelihood per token of the batch's chosen completions (as TRL computes it).
The DPO loss only sees the *difference* of two log-ratios, so it is free to lower log pi(y_w)
as long as log pi(y_l) falls faster ("likelihood displacement"); the NLL term pins log pi(y_w)
up.

History rows: ``step``, ``time_s`` (training wall clock, evaluation excluded), ``samples``
(the completions generated to build the pairs, ``pairs.stats["samples_generated"]``: all drawn
before step 0, so the same in every row; a subset of a pair set keeps the count of the set it
was cut from; 0 for pairs that carry no count), ``pairs`` (pairs consumed so far), ``loss``,
``nll``, the TRL metrics of ``dpo_loss`` for the batch and, at step 0 and every ``eval_every``
steps (or at the steps of ``eval_at``), ``heldout_acc`` plus the same metrics over a fixed
subset of (up to EVAL_PAIRS) training pairs (``pairs/...``) and the mean log-prob of each probe
set (``logps/<name>``).

The registry rows of DPO and RPO (``METHODS``) sit at the end of the module: their study
fields, their FLOPs model and their data in a head-to-head (``PAIRS``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from refimpl.core import checks
from refimpl.core.logprobs import token_logprobs
from refimpl.core.model import eval_mode
from refimpl.core.preferences import PreferencePairs, build_pairs, check_pairs, pair_batches
from refimpl.core.training import (Clock, Method, OfflineData, StepBar, TrainResult, adamw,
                                   check_fields, heldout_accuracy, log_heldout, start_history)
from refimpl.core.utils import seed_everything
from refimpl.methods.dpo import LOSS_TYPES, dpo_loss

EVAL_PAIRS = 256   # pairs (a fixed random subset) behind the ``pairs/...`` metrics


@dataclass
class DPOConfig:
    """DPO / cDPO / IPO / RPO settings. Measured on the cpu base (notebook 02): pure DPO
    (nll_coef=0) at lr 1e-4 collapses held-out accuracy within a few dozen steps, at lr 2e-5 it
    rises for ~30 steps of batch 16 and then falls below the base; nll_coef=1 (RPO) at lr 1e-4
    is stable and improves on the base."""

    beta: float = 0.1             # KL strength of the implicit reward
    lr: float = 1e-4              # AdamW learning rate
    batch_size: int = 32          # pairs per step
    steps: int = 60
    label_smoothing: float = 0.0  # cDPO's assumed label-flip rate, in [0, 0.5)
    loss_type: str = "sigmoid"    # "sigmoid" (DPO / cDPO) or "ipo"
    nll_coef: float = 0.0         # weight of the NLL on chosen completions (RPO); 0 = pure DPO
    max_grad_norm: float = 1.0    # gradient clipping (TRL's default)
    eval_every: int = 20
    eval_at: tuple = ()           # explicit evaluation steps instead of eval_every (head-to-head)
    eval_problems: int = 256
    seed: int = 0
    # Data, used only when train_dpo is given no pairs: base samples on training prompts.
    n_prompts: int = 256
    group_size: int = 8
    pairs_per_prompt: int = 2
    temperature: float = 1.0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"batch_size": 1, "steps": 0, "eval_every": 1, "eval_problems": 1,
                            "n_prompts": 1, "group_size": 2, "pairs_per_prompt": 1,
                            "seed": None},
                     positive=("beta", "lr", "max_grad_norm", "temperature"),
                     nonnegative=("nll_coef",), intervals={"label_smoothing": (0, 0.5, "[)")},
                     choices={"loss_type": LOSS_TYPES},
                     why={"beta": "it is the KL strength of the implicit reward",
                          "group_size": "a pair needs a correct and a wrong sample"})
        if any(not (isinstance(s, int) and 0 <= s <= self.steps) for s in self.eval_at):
            raise ValueError(f"DPOConfig.eval_at must hold steps in [0, steps={self.steps}], "
                             f"got {self.eval_at!r}")


def pair_logps(model, pairs: PreferencePairs, chunk: int = 512):
    """Per-token log-probs of chosen and rejected completions in ONE forward pass per chunk.

    Chosen and rejected rows go into one (2N, .) batch, as TRL's ``concatenated_forward``
    does, but interleaved (chosen_i, rejected_i) so that each pair is a group of 2 sharing its
    prompt: the prompt is encoded once per pair (``token_logprobs(group_size=2)``). Returns
    (chosen, rejected) token log-probs, each (N, T), 0 where masked. Gradients flow unless
    called under ``torch.no_grad``.
    """
    outs_c, outs_r = [], []
    for i in range(0, len(pairs), chunk):
        p = pairs[i:i + chunk] if len(pairs) > chunk else pairs
        ids = torch.stack([p.chosen_ids, p.rejected_ids], dim=1).flatten(0, 1)    # (2n, T)
        mask = torch.stack([p.chosen_mask, p.rejected_mask], dim=1).flatten(0, 1)  # (2n, T)
        logps = token_logprobs(model, p.prompt_ids.repeat_interleave(2, 0),
                               p.prompt_mask.repeat_interleave(2, 0), ids, mask,
                               group_size=2).view(len(p), 2, -1)                 # (n, 2, T)
        outs_c.append(logps[:, 0])                                              # (n, T)
        outs_r.append(logps[:, 1])                                              # (n, T)
    return torch.cat(outs_c), torch.cat(outs_r)                                 # (N, T) each


def dpo_update(policy, opt, batch: PreferencePairs, ref_chosen, ref_rejected, cfg) -> dict:
    """One optimizer step of DPO (+ cfg.nll_coef * NLL of the chosen) on ``batch``.

    batch: B pairs; ref_chosen, ref_rejected: (B,) sequence log-probs of the frozen reference;
    cfg: any config with beta, loss_type, label_smoothing, nll_coef and max_grad_norm.
    Returns {"loss", "nll", and the TRL metrics of ``dpo_loss``} for the batch.
    """
    pc, pr = pair_logps(policy, batch)                                   # (B, T) each
    losses, metrics = dpo_loss(pc.sum(-1), pr.sum(-1), ref_chosen, ref_rejected, cfg.beta,
                               cfg.loss_type, cfg.label_smoothing)       # (B,)
    nll = -pc.sum() / batch.chosen_mask.sum().clamp(min=1)               # per-token NLL of y_w
    # (clamp: a batch whose masks hold no completion token gives NLL 0, not 0/0 = NaN)
    loss = losses.mean() + cfg.nll_coef * nll
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
    opt.step()
    return {"loss": loss.item(), "nll": nll.item(), **metrics}


@torch.no_grad()
def probe_logps(model, probe) -> float:
    """Mean sequence log-prob of a probe set (prompt_ids, prompt_mask, ids, mask), (N, .) each."""
    with eval_mode(model):
        lp = token_logprobs(model, *probe).sum(-1)                       # (N,)
    return lp.mean().item()


def dpo_data(base, reference, cfg: DPOConfig, pairs, reward_fn):
    """The fixed data set and its frozen reference log-probs: ``pairs`` (or, if None, pairs
    built from base samples on cfg.n_prompts training prompts) on the base's device, and
    log pi_ref(y_w|x), log pi_ref(y_l|x) (N,) each, computed once since pi_ref never changes."""
    if pairs is None:
        pairs = build_pairs(base.model, base.tokenizer, base.task,
                            base.train_problems(cfg.n_prompts, seed=cfg.seed), cfg.group_size,
                            cfg.pairs_per_prompt, cfg.temperature, cfg.seed, reward_fn)
    pairs = pairs.to(base.device)
    if len(pairs) == 0:
        raise ValueError("train_dpo got an empty set of preference pairs")
    with torch.no_grad():
        ref_c, ref_r = pair_logps(reference, pairs)                      # (N, T) each
    return pairs, ref_c.sum(-1), ref_r.sum(-1)                           # (N,) each


@torch.no_grad()
def dpo_evaluate(policy, base, heldout, eval_pairs: PreferencePairs, ref_chosen: torch.Tensor,
                 ref_rejected: torch.Tensor, cfg: DPOConfig, probes: dict | None) -> dict:
    """The evaluation row of ``train_dpo``: held-out accuracy, the DPO metrics on a fixed
    subset of the pairs (``pairs/...``; ref_chosen, ref_rejected (n,) are its reference
    sequence log-probs) and the mean log-prob of each probe (``logps/<name>``)."""
    out = {"heldout_acc": heldout_accuracy(policy, base, heldout)}
    with eval_mode(policy):
        pc, pr = pair_logps(policy, eval_pairs)                          # (n, T) each
    _, m = dpo_loss(pc.sum(-1), pr.sum(-1), ref_chosen, ref_rejected, cfg.beta,
                    cfg.loss_type, cfg.label_smoothing)
    out.update({f"pairs/{k}": v for k, v in m.items()})
    for name, probe in (probes or {}).items():
        out[f"logps/{name}"] = probe_logps(policy, [t.to(base.device) for t in probe])
    return out


def train_dpo(base, cfg: DPOConfig | None = None, *, pairs: PreferencePairs | None = None,
              policy=None, reward_fn=None, probes: dict | None = None, progress: bool = True,
              heldout=None) -> TrainResult:
    """Train ``policy`` (default ``base.policy()``) with DPO against the frozen base.

    base: the SFT Base (its model is the frozen reference); cfg: a DPOConfig (None: defaults).
    pairs: the preference data; None builds it from base samples on ``cfg.n_prompts``
        training prompts (``refimpl.core.preferences.build_pairs``, judged by ``reward_fn``,
        default ``base.task.verify``).
    policy: the GPT to train (default a trainable copy of the base).
    probes: optional {name: (prompt_ids (N,P), prompt_mask, completion_ids (N,T), mask)};
        the mean sequence log-prob of each is logged as ``logps/<name>`` at every evaluation
        (e.g. the correct completions of held-out prompts: where did the mass go?).
    progress: show a progress bar.
    heldout: problems for ``heldout_acc`` (default ``base.heldout(cfg.eval_problems)``).
    Returns a TrainResult (model: the trained policy; history: module docstring).
    """
    cfg = checks.config("cfg", cfg, DPOConfig)
    cfg.validate()
    checks.function("reward_fn", reward_fn)
    check_pairs("pairs", pairs)
    seed_everything(cfg.seed)
    device = base.device
    policy = policy if policy is not None else base.policy()
    reference = base.reference()
    heldout = heldout if heldout is not None else base.heldout(cfg.eval_problems)
    pairs, ref_chosen, ref_rejected = dpo_data(base, reference, cfg, pairs, reward_fn)
    N = len(pairs)
    sub = torch.randperm(N, generator=torch.Generator().manual_seed(0))[:EVAL_PAIRS]  # (n,)
    eval_pairs, sub = pairs[sub], sub.to(device)
    opt = adamw(policy.parameters(), cfg.lr)
    batches = pair_batches(N, cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    evaluate = partial(dpo_evaluate, policy, base, heldout, eval_pairs, ref_chosen[sub],
                       ref_rejected[sub], cfg, probes)
    generated = pairs.stats.get("samples_generated", 0)    # completions behind the pairs
    clock = Clock()
    history = start_history(cfg, clock, evaluate, samples=generated, pairs=0)
    consumed = 0
    bar = StepBar(cfg.steps, "DPO", progress)
    for step in bar:
        idx = next(batches)                                              # (B,)
        consumed += len(idx)
        metrics = dpo_update(policy, opt, pairs[idx], ref_chosen[idx.to(device)],
                             ref_rejected[idx.to(device)], cfg)
        row = {"step": step, "time_s": clock(), "samples": generated, "pairs": consumed,
               **metrics}
        if log_heldout(row, cfg, clock, evaluate):
            bar.set_postfix(acc=f"{row['heldout_acc']:.2f}",
                            margin=f"{row['pairs/rewards/margins']:.2f}")
        history.append(row)
    bar.close()
    return TrainResult(policy, history)


# ---- the registry rows of DPO and RPO (refimpl.methods.registry collects them) ----
def dpo_study_fields(cc, nll_coef: float = 0.0) -> dict:
    """The DPOConfig fields a head-to-head run sets from ``cc`` (a CompareConfig): the data's
    G and pairs per prompt, its prompts under a wall-time budget, and the NLL weight."""
    return dict(group_size=cc.group_size, n_prompts=cc.dpo_prompts,
                pairs_per_prompt=cc.dpo_pairs_per_prompt, nll_coef=nll_coef)


def rpo_study_fields(cc) -> dict:
    """RPO's fields: DPO's, with the NLL weight ``cc.rpo_nll_coef``."""
    return dpo_study_fields(cc, nll_coef=cc.rpo_nll_coef)


def dpo_flops(cfg, N, L, N_critic=0) -> float:
    """FLOPs of one DPO / RPO step: a forward + backward pass (6 N per token) over chosen and
    rejected of each of the cfg.batch_size pairs, 6 N * 2B L (N parameters, L tokens per
    sequence; no critic). The data's own cost is ``pairs_flops``."""
    return 6 * N * 2 * cfg.batch_size * L


def study_pairs(base, cc, seed: int, n_prompts: int) -> PreferencePairs | None:
    """DPO's data in a head-to-head run: pairs of base samples, ``cc.group_size`` on each of
    ``n_prompts`` training prompts (seed ``seed``), at most ``cc.dpo_pairs_per_prompt`` per
    prompt, temperature 1; None when no group had both a correct and a wrong sample."""
    try:
        return build_pairs(base.model, base.tokenizer, base.task,
                           base.train_problems(n_prompts, seed=seed), cc.group_size,
                           cc.dpo_pairs_per_prompt, 1.0, seed)
    except ValueError:          # no group had both a correct and a wrong sample
        return None


def pair_tokens(pairs: PreferencePairs) -> float:
    """Mean completion tokens of one sequence of the pairs (chosen and rejected alike)."""
    return (pairs.chosen_mask.sum() + pairs.rejected_mask.sum()).item() / (2 * len(pairs))


def pairs_flops(pairs: PreferencePairs, n_generated: int, N, L) -> float:
    """FLOPs of DPO's data: sampling the n_generated completions once (2 N per token) and the
    frozen reference on chosen and rejected of each pair, 2 N n_gen L + 2 N * 2 n_pairs L."""
    return 2 * N * n_generated * L + 2 * N * 2 * len(pairs) * L


PAIRS = OfflineData("preference pairs", "pairs", 2, study_pairs, pair_tokens, pairs_flops)

METHODS = (
    # Rafailov et al. 2023, eq. 7
    Method("dpo", "DPO", "implicit (pairs)", DPOConfig, train_dpo, dpo_study_fields, dpo_flops,
           offline=PAIRS),
    # DPO + NLL on the chosen completions, Pang et al. 2024
    Method("rpo", "DPO+NLL (RPO)", "implicit (pairs) + NLL", DPOConfig, train_dpo,
           rpo_study_fields, dpo_flops, offline=PAIRS),
)
