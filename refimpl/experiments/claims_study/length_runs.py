"""One GRPO run per loss aggregation on completions of two lengths: the experiment of claim
C11b (Dr. GRPO's length bias) in the claims study (``refimpl.experiments.claims_study.claims``).

Liu et al. (2025, "Understanding R1-Zero-like training", sec. 3.1) point out that GRPO's loss
averages each completion's token terms over its own length |o_i| before averaging over the
batch. A whole completion then moves with weight A_i / |o_i|: a short wrong answer is pushed
down harder than a long wrong one, and a short right answer is pushed up harder than a long
right one. They predict that the wrong answers drift longer, and that dividing by a constant
instead ("dr_grpo") removes the drift. ``refimpl.methods.grpo`` implements the three aggregations:

    grpo      sum_t l_it / |o_i|, then mean over the B*G completions     weight 1 / (B G |o_i|)
    dapo      sum_{i,t} l_it / (total tokens of the batch)                weight 1 / sum_j |o_j|
    dr_grpo   sum_{i,t} l_it / (B G T)                                    weight 1 / (B G T)

The base is trained on the ``add_mixed`` task: half of its demonstrations skip the working
(``|632``, 5 tokens with EOS) and half show it (``12,13,06|632``, 14 tokens), so every prompt
gets completions of both lengths and the aggregations weigh them differently. A run:

    for step = 1 .. budget / (B G):                           # GRPOConfig's defaults otherwise
        sample G completions for each of B prompts; verifier reward; group advantages
        grpo_loss(..., loss_agg=method); inner updates
    sample S completions for each test problem (a fixed seed)                    # measure
    len_wrong = mean length in tokens (EOS included) of the wrong samples
    len_right = the same for the right ones; short_share = share of answer-only samples
    final_acc = greedy test accuracy                          (base_<each>: the base's)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from refimpl.core.evaluation import accuracy
from refimpl.core.rollouts import sample_groups
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.grpo import LOSS_AGGS
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo

# a method is "agg_" + its loss aggregation (refimpl.methods.grpo.LOSS_AGGS), except GRPO's own
# per-sequence mean, which is GRPOConfig's default: the method registry's "grpo"
LENGTH_METHODS = ("grpo", "agg_dapo", "agg_dr_grpo")     # labels: refimpl.methods.registry.LABELS
assert tuple(m.removeprefix("agg_") for m in LENGTH_METHODS) == LOSS_AGGS


@dataclass
class LengthRunConfig:
    """One run: ``budget_samples`` completions in steps of B x G, then S samples per test
    problem for the lengths, seed ``seed``."""

    budget_samples: int = 2560
    prompts_per_step: int = 16       # B
    group_size: int = 8              # G
    samples_per_problem: int = 8     # S
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 2,
                            "samples_per_problem": 1, "seed": None})


@torch.no_grad()
def length_stats(policy, base, problems, samples: int, seed: int) -> dict:
    """Sampled completions of ``policy`` (``samples`` per problem, generator seeded by
    ``seed``): {"len_wrong", "len_right", "mean_length", "short_share", "sampled_acc"}, lengths
    in tokens with EOS; a missing group (no wrong or no right sample) gives NaN."""
    gen = torch.Generator(device=next(policy.parameters()).device).manual_seed(seed)
    ro = sample_groups(policy, base.tokenizer, base.task, problems, samples, generator=gen)
    lengths = ro.completion_mask.sum(1).float()                          # (N,)
    right = ro.rewards > 0.5                                             # (N,)
    mean = lambda x: x.mean().item() if x.numel() else float("nan")      # noqa: E731
    return {"len_wrong": mean(lengths[~right]), "len_right": mean(lengths[right]),
            "mean_length": lengths.mean().item(), "sampled_acc": right.float().mean().item(),
            "short_share": sum(t.startswith("|") for t in ro.texts) / len(ro.texts)}


def length_run(method: str, base, lr: float, cfg: LengthRunConfig, problems) -> dict:
    """Train GRPO from ``base`` at ``lr`` with the loss aggregation of ``method`` (one of
    LENGTH_METHODS: "grpo", "agg_dapo", "agg_dr_grpo") and measure the lengths and accuracy on ``problems`` (module docstring).

    Returns {"final_acc", "len_wrong", "len_right", "mean_length", "short_share",
    "sampled_acc", "base_acc", "base_<each length value>", "steps", "samples"}."""
    cfg = check_study_run("length_run", method, LENGTH_METHODS, lr, cfg, LengthRunConfig,
                           problems)
    measure_seed = 10_000 + cfg.seed                   # the same draws for every method
    before = length_stats(base.model, base, problems, cfg.samples_per_problem, measure_seed)
    steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
    gcfg = GRPOConfig(steps=steps, lr=lr, prompts_per_step=cfg.prompts_per_step,
                      group_size=cfg.group_size, loss_agg=method.removeprefix("agg_"), eval_every=0, seed=cfg.seed)
    policy = train_grpo(base, gcfg, progress=False).model
    after = length_stats(policy, base, problems, cfg.samples_per_problem, measure_seed)
    tok, task = base.tokenizer, base.task
    return {**after, **{f"base_{k}": v for k, v in before.items()},
            "final_acc": accuracy(policy, tok, task, problems),
            "base_acc": accuracy(base.model, tok, task, problems), "steps": steps,
            "samples": steps * cfg.prompts_per_step * cfg.group_size}
