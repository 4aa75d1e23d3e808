"""Rollouts: G sampled completions per prompt, scored by a reward function.

The batch is laid out group-major: rows g*G ... g*G + G - 1 are the G samples of prompt g, so
``rewards.view(B, G)`` puts each group on one row. ``old_logps`` are the sampling-time
per-token log-probs, the denominators of PPO/GRPO importance ratios.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .sampling import generate


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


@torch.no_grad()
def sample_groups(model, tok, task, problems, group_size: int,
                  reward_fn: Callable | None = None, temperature: float = 1.0,
                  max_new_tokens: int | None = None, generator=None) -> Rollout:
    """Sample ``group_size`` completions for each problem and score them.

    reward_fn(problem, text) -> float; defaults to the task's outcome verifier ``task.verify``.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1 (got {group_size})")
    reward_fn = reward_fn or task.verify
    device = next(model.parameters()).device
    prompts = [p.prompt for p in problems for _ in range(group_size)]
    prompt_ids, prompt_mask = tok.encode_prompts(prompts)                 # (B*G, P)
    prompt_ids, prompt_mask = prompt_ids.to(device), prompt_mask.to(device)
    max_new = max_new_tokens or max(task.max_new_tokens(p.level) for p in problems)
    was_training = model.training
    model.eval()
    out = generate(model, prompt_ids, prompt_mask, max_new, tok.eos_id, tok.pad_id,
                   temperature=temperature, generator=generator)
    model.train(was_training)
    texts = tok.decode_completions(out.ids.cpu())
    rewards = torch.tensor([float(reward_fn(problems[i // group_size], t))
                            for i, t in enumerate(texts)], device=device)  # (B*G,)
    return Rollout(problems, group_size, prompt_ids, prompt_mask, out.ids, out.mask,
                   out.logps, rewards, texts)
