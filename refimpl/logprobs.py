"""Per-token and per-sequence log-probabilities of completions: the one function every
method (SFT, DPO, GRPO, REINFORCE, PPO) uses.

For a prompt x (left-padded, P tokens) and completion y (right-padded, T tokens),

    log pi(y | x) = sum_t mask_t * log softmax(logits_{P-1+t} / temperature)[y_t],

where the logits at column P-1+t are the model's prediction for completion token t. Prompt
tokens and padding never contribute.
"""
from __future__ import annotations

import torch


def gather_token_logprobs(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[ids] per position, zero where ``mask`` is False.

    logits: (B, T, V), the prediction for each completion token; ids: (B, T); mask: (B, T) bool.
    Returns (B, T).
    """
    if logits.dim() != 3 or logits.shape[:2] != ids.shape or ids.shape != mask.shape:
        raise ValueError(f"shape mismatch: logits {tuple(logits.shape)} must be (B, T, V) with "
                         f"ids {tuple(ids.shape)} and mask {tuple(mask.shape)} both (B, T)")
    logp = torch.log_softmax(logits.float(), dim=-1)                     # (B, T, V)
    tok = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)                 # (B, T)
    return torch.where(mask.bool(), tok, torch.zeros_like(tok))          # (B, T)


def completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
    """Logits (B, T, V) that predict each completion token, from one forward pass."""
    for name, t in (("prompt_mask", prompt_mask), ("completion_ids", completion_ids),
                    ("completion_mask", completion_mask)):
        ref = prompt_ids if name == "prompt_mask" else completion_ids
        if t.shape != ref.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
    if prompt_ids.shape[0] != completion_ids.shape[0]:
        raise ValueError(f"batch sizes differ: prompts {prompt_ids.shape[0]}, "
                         f"completions {completion_ids.shape[0]}")
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    idx = torch.cat([prompt_ids, completion_ids], dim=1)                 # (B, P+T)
    mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], dim=1)  # (B, P+T)
    logits = model(idx[:, :-1], mask[:, :-1])                            # (B, P+T-1, V)
    return logits[:, P - 1:]                                             # (B, T, V)


def token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                   temperature: float = 1.0) -> torch.Tensor:
    """Per-token log-probs (B, T) of the completions under ``model``, 0 where masked.

    prompt_ids, prompt_mask: (B, P) left-padded prompts; completion_ids, completion_mask: (B, T).
    temperature: the logits are divided by it (match the sampling temperature for PPO ratios).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask)
    return gather_token_logprobs(logits / temperature, completion_ids, completion_mask)  # (B, T)


def sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                      temperature: float = 1.0) -> torch.Tensor:
    """Sequence log-probs log pi(y | x) (B,): the masked sum of ``token_logprobs``."""
    return token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                          temperature).sum(-1)                           # (B,)
