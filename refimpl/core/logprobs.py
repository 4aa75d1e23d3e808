"""Per-token and per-sequence log-probabilities of completions: the one function every
method (SFT, DPO, GRPO, REINFORCE, PPO) uses.

For a prompt x (left-padded, P tokens) and completion y (right-padded, T tokens),

    log pi(y | x) = sum_t mask_t * log softmax(logits_{P-1+t} / temperature)[y_t],

where the logits at column P-1+t are the model's prediction for completion token t. Prompt
tokens and padding never contribute. ``token_entropy`` gives the exact entropy of the same
next-token distributions, for an entropy bonus (GRPOConfig.entropy_coef).
"""
from __future__ import annotations

import torch


def gather_token_logprobs(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[ids] per position, zero where ``mask`` is False.

    logits: (B, T, V), the prediction for each completion token; ids: (B, T); mask: (B, T) bool.
    Returns (B, T).
    """
    _check_gather(logits, ids, mask)
    logp = torch.log_softmax(logits.float(), dim=-1)                     # (B, T, V)
    try:
        tok = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)             # (B, T)
    except (RuntimeError, IndexError) as e:     # a masked position is gathered too, then zeroed
        raise ValueError(f"ids must lie in [0, {logits.shape[-1]}) (the vocabulary of logits) at "
                         f"every position, masked ones included: pad completions with "
                         f"tokenizer.pad_id ({e})") from e
    return torch.where(mask.bool(), tok, torch.zeros_like(tok))          # (B, T)


def token_entropy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy H_t = -sum_v p_t(v) log p_t(v) of each next-token distribution
    p_t = softmax(logits_t), zero where ``mask`` is False.

    logits: (B, T, V), finite (divide by the temperature first); mask: (B, T) bool. Returns
    (B, T), differentiable. This is the exact entropy of the whole distribution: the sampled
    token's -log p_t(y_t) has the right mean but zero expected gradient (E[grad log p] = 0), so
    only this form works as an entropy bonus in a loss.
    """
    if logits.dim() != 3 or logits.shape[:2] != mask.shape:
        raise ValueError(f"shape mismatch: logits {tuple(logits.shape)} must be (B, T, V) with "
                         f"mask {tuple(mask.shape)} (B, T)")
    if not torch.isfinite(logits).all():
        raise ValueError("logits must be finite to take an entropy (got NaN or inf)")
    logp = torch.log_softmax(logits.float(), dim=-1)                     # (B, T, V)
    ent = -(logp.exp() * logp).sum(-1)                                   # (B, T)
    return torch.where(mask.bool(), ent, torch.zeros_like(ent))          # (B, T)


def _check_gather(logits, ids, mask) -> None:
    """Shapes (B, T, V), (B, T), (B, T) and integer ids (their range is checked by the gather
    itself, so that this stays free of data-dependent branches and works under torch.vmap)."""
    if logits.dim() != 3 or logits.shape[:2] != ids.shape or ids.shape != mask.shape:
        raise ValueError(f"shape mismatch: logits {tuple(logits.shape)} must be (B, T, V) with "
                         f"ids {tuple(ids.shape)} and mask {tuple(mask.shape)} both (B, T)")
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"ids must be an integer tensor of token ids, got dtype {ids.dtype}")


def _check_shapes(prompt_ids, prompt_mask, completion_ids, completion_mask):
    for name, t in (("prompt_mask", prompt_mask), ("completion_ids", completion_ids),
                    ("completion_mask", completion_mask)):
        ref = prompt_ids if name == "prompt_mask" else completion_ids
        if t.shape != ref.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(ref.shape)}")
    if prompt_ids.shape[0] != completion_ids.shape[0]:
        raise ValueError(f"batch sizes differ: prompts {prompt_ids.shape[0]}, "
                         f"completions {completion_ids.shape[0]}")


def shared_prompts(prompt_ids, prompt_mask, group_size: int):
    """The B distinct prompts (B, P) of a group-major batch of B*G rows, checked: rows
    b*G .. b*G+G-1 must all hold prompt b (as ``rollouts.sample_groups`` lays them out)."""
    G, N = group_size, prompt_ids.shape[0]
    if G < 1 or N % G:
        raise ValueError(f"group_size={G} must be >= 1 and divide the batch of {N} rows")
    ids, mask = prompt_ids[::G], prompt_mask[::G]                        # (B, P)
    if not (torch.equal(prompt_ids, ids.repeat_interleave(G, 0))
            and torch.equal(prompt_mask.bool(), mask.bool().repeat_interleave(G, 0))):
        raise ValueError(f"group_size={G}: rows b*G .. b*G+G-1 must share one prompt "
                         "(group-major layout); pass group_size=1 for unrelated rows")
    return ids, mask


def completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                      group_size: int = 1) -> torch.Tensor:
    """Logits (B*G, T, V) that predict each completion token.

    group_size=1: one forward pass over the concatenated rows (P+T-1 positions each).
    group_size=G > 1: the rows come in groups of G that share a prompt (group-major). Each
    prompt is run once, its keys/values are repeated for its G completions through the
    ``KVCache``, and only the T-1 completion positions run per row; the gradient reaching the
    prompt is the sum over its G completions, exactly as in the plain pass. Same logits up
    to float rounding, (B*P + B*G*(T-1)) instead of B*G*(P+T-1) positions.
    """
    _check_shapes(prompt_ids, prompt_mask, completion_ids, completion_mask)
    P, T = prompt_ids.shape[1], completion_ids.shape[1]
    if group_size == 1:
        idx = torch.cat([prompt_ids, completion_ids], dim=1)                 # (B, P+T)
        mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], dim=1)  # (B, P+T)
        logits = model(idx[:, :-1], mask[:, :-1])                            # (B, P+T-1, V)
        return logits[:, P - 1:]                                             # (B, T, V)
    ids, mask = shared_prompts(prompt_ids, prompt_mask, group_size)          # (B, P) each
    cache = model.new_cache()
    first = model(ids, mask.bool(), cache)[:, -1:]                           # (B, 1, V)
    first = first.repeat_interleave(group_size, 0)                           # (B*G, 1, V)
    if T == 1:
        return first
    cache.repeat_interleave(group_size)
    mask = torch.cat([prompt_mask.bool(), completion_mask[:, :-1].bool()], dim=1)  # (B*G, P+T-1)
    rest = model(completion_ids[:, :-1], mask, cache)                        # (B*G, T-1, V)
    return torch.cat([first, rest], dim=1)                                   # (B*G, T, V)


def token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                   temperature: float = 1.0, group_size: int = 1) -> torch.Tensor:
    """Per-token log-probs (B, T) of the completions under ``model``, 0 where masked.

    prompt_ids, prompt_mask: (B, P) left-padded prompts; completion_ids, completion_mask: (B, T).
    temperature: the logits are divided by it (match the sampling temperature for PPO ratios).
    group_size: G > 1 when rows come in group-major groups of G that share a prompt (GRPO's
        samples, DPO's chosen/rejected pair): each prompt is then encoded once (see
        ``completion_logits``). 1 treats every row on its own.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (got {temperature})")
    logits = completion_logits(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                               group_size)
    return gather_token_logprobs(logits / temperature, completion_ids, completion_mask)  # (B, T)


def sequence_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                      temperature: float = 1.0, group_size: int = 1) -> torch.Tensor:
    """Sequence log-probs log pi(y | x) (B,): the masked sum of ``token_logprobs``."""
    return token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                          temperature, group_size).sum(-1)                           # (B,)
