"""Rollouts: G sampled completions per prompt, scored by a reward function.

The batch is laid out group-major: rows g*G ... g*G + G - 1 are the G samples of prompt g, so
``rewards.view(B, G)`` puts each group on one row. ``old_logps`` are the sampling-time
per-token log-probs, the denominators of PPO/GRPO importance ratios.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import torch

from refimpl.core.model import eval_mode
from refimpl.core.sampling import generate


@dataclass
class Rollout:
    problems: list               # B problems
    group_size: int              # G
    prompt_ids: torch.Tensor     # (B*G, P) left-padded
    prompt_mask: torch.Tensor    # (B*G, P) bool
    completion_ids: torch.Tensor   # (B*G, T)
    completion_mask: torch.Tensor  # (B*G, T) bool
    old_logps: torch.Tensor      # (B*G, T) sampling-time log-probs, 0 where masked
    rewards: torch.Tensor        # (B*G,) float
    texts: list                  # B*G decoded completions

    @property
    def num_samples(self) -> int:
        return self.completion_ids.shape[0]


def score_texts(reward_fn: Callable, problems: list, texts: list) -> torch.Tensor:
    """Rewards (N,) for N (problem, text) pairs.

    A reward function may score a whole batch at once through a ``score(problems, texts)``
    attribute (a learned reward model does: one forward pass instead of N); otherwise it is
    called once per completion.
    """
    batched = getattr(reward_fn, "score", None)
    if batched is not None:
        return torch.as_tensor(batched(problems, texts), dtype=torch.float32).flatten()
    return torch.tensor([float(reward_fn(p, t)) for p, t in zip(problems, texts)])


@torch.no_grad()
def sample_groups(model, tok, task, problems, group_size: int,
                  reward_fn: Callable | None = None, temperature: float = 1.0,
                  max_new_tokens: int | None = None, generator=None) -> Rollout:
    """Sample ``group_size`` completions for each problem and score them.

    reward_fn(problem, text) -> float; defaults to the task's outcome verifier ``task.verify``
    (see ``score_texts`` for batched reward functions).
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1 (got {group_size})")
    reward_fn = reward_fn or task.verify
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = tok.encode_prompts([p.prompt for p in problems])  # (B, P)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    max_new = max_new_tokens or max(task.max_new_tokens(p.level) for p in problems)
    with eval_mode(model):
        out = generate(model, prompt_ids, prompt_mask, max_new, tok.eos_id, tok.pad_id,
                       temperature=temperature, generator=generator, num_samples=group_size)
    prompt_ids = prompt_ids.repeat_interleave(group_size, 0)             # (B*G, P)
    prompt_mask = prompt_mask.repeat_interleave(group_size, 0)           # (B*G, P)
    texts = tok.decode_completions(out.ids.cpu())
    rewards = score_texts(reward_fn, [p for p in problems for _ in range(group_size)], texts)
    rewards = rewards.to(device)                                          # (B*G,)
    return Rollout(problems, group_size, prompt_ids, prompt_mask, out.ids, out.mask,
                   out.logps, rewards, texts)


def completion_stats(ro: Rollout, eos_id: int | None = None) -> dict[str, float]:
    """What a trainer logs about its samples, under TRL's names.

    completions/mean_length: mean completion length in tokens, EOS included (B*G rows).
    entropy: mean over every sampled completion token of -log pi_old(token | prefix). A token
        drawn from pi_old has expected -log pi_old equal to the entropy of pi_old at that
        position, so this is an unbiased Monte Carlo estimate of the sampling distribution's
        mean per-token entropy (TRL computes the same average exactly from the logits).
    completions/clipped_ratio (only when ``eos_id`` is given): the share of completions whose
        last token is not EOS. The sampler stops a row at EOS or at its token budget, so these
        are the completions cut off by the budget, scored before they could answer.
    """
    mask = ro.completion_mask.bool()  # (B*G, T)
    n_tok = mask.sum().clamp(min=1)
    stats = {"completions/mean_length": mask.sum(1).float().mean().item(),
             "entropy": (-(torch.where(mask, ro.old_logps, 0.0)).sum() / n_tok).item()}
    if eos_id is not None:
        last = (mask.sum(1) - 1).clamp(min=0)  # (B*G,) column of each row's last token
        ended = ro.completion_ids.gather(1, last[:, None]).squeeze(1) == eos_id  # (B*G,)
        stats["completions/clipped_ratio"] = (~ended).float().mean().item()
    return stats


def mixed_groups(ro: Rollout) -> torch.Tensor:
    """(B,) bool: the groups whose G rewards are not all equal. Only these have a non-zero
    group-relative advantage, so only these carry a GRPO gradient."""
    grouped = ro.rewards.view(-1, ro.group_size)  # (B, G)
    return (grouped != grouped[:, :1]).any(dim=1)  # (B,)


def select_groups(ro: Rollout, keep: torch.Tensor) -> Rollout:
    """The groups of ``ro`` where keep (B,) is True, as a smaller rollout (B' groups)."""
    rows = keep.repeat_interleave(ro.group_size)  # (B*G,)
    idx = rows.nonzero().squeeze(1)  # (B'*G,)
    return replace(ro, problems=[p for p, k in zip(ro.problems, keep.tolist()) if k],
                   prompt_ids=ro.prompt_ids[idx], prompt_mask=ro.prompt_mask[idx],
                   completion_ids=ro.completion_ids[idx], completion_mask=ro.completion_mask[idx],
                   old_logps=ro.old_logps[idx], rewards=ro.rewards[idx],
                   texts=[ro.texts[i] for i in idx.tolist()])
