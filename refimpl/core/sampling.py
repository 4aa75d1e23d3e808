"""Sampling completions from the policy, with a key/value cache.

Returns, for a batch of left-padded prompts, the completion ids (right-padded, ending at
EOS), the completion mask and the per-token log-probabilities under the sampling
distribution softmax(logits / temperature): exactly the ``old_logps`` that PPO and GRPO
need for their importance ratios.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Completions:
    ids: torch.Tensor    # (B, T) long, PAD after EOS
    mask: torch.Tensor   # (B, T) bool, True up to and including EOS
    logps: torch.Tensor  # (B, T) float, log pi(token | prefix) at sampling time, 0 where masked


def _check_generate(model, prompt_ids, prompt_mask, max_new_tokens, temperature, greedy,
                    num_samples) -> None:
    """generate's arguments: matching shapes, temperature > 0 unless greedy, at least one new
    token and one sample, and a prompt plus budget that fit in the model's context."""
    if prompt_ids.shape != prompt_mask.shape:
        raise ValueError(f"prompt_ids {tuple(prompt_ids.shape)} and prompt_mask "
                         f"{tuple(prompt_mask.shape)} must have the same shape")
    if not greedy and not temperature > 0:
        raise ValueError(f"temperature must be > 0 (got {temperature}); use greedy=True for argmax")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1 (got {max_new_tokens})")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1 (got {num_samples})")
    P, block = prompt_ids.shape[1], model.config.block_size
    if P + max_new_tokens > block:
        raise ValueError(f"prompt of {P} tokens + {max_new_tokens} new tokens exceeds the model "
                         f"context block_size={block}; shorten the prompt or max_new_tokens")


def next_token(logits: torch.Tensor, tau: float, greedy: bool, generator=None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoding step: log softmax(logits / tau) (B, V) and the token (B,) it picks, the
    argmax if greedy, else a draw with ``generator``."""
    logp = torch.log_softmax(logits.float() / tau, dim=-1)               # (B, V)
    if greedy:
        return logp, logp.argmax(-1)                                     # (B,)
    return logp, torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)  # (B,)


@torch.no_grad()
def generate(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
             eos_id: int, pad_id: int, temperature: float = 1.0, greedy: bool = False,
             generator: torch.Generator | None = None, use_cache: bool = True,
             num_samples: int = 1) -> Completions:
    """Sample up to ``max_new_tokens`` tokens per prompt, stopping each row at EOS.

    prompt_ids: (B, P) left-padded prompt ids (BOS first); prompt_mask: (B, P) bool.
    temperature: > 0; log-probs are those of softmax(logits / temperature).
    greedy: take the argmax instead of sampling (log-probs then use temperature 1).
    generator: a torch.Generator on the model's device, for reproducible sampling.
    use_cache: reuse keys/values (fast); False recomputes the full prefix each step.
    num_samples: G completions per prompt, returned group-major ((B*G, T), rows b*G .. b*G+G-1
        for prompt b). With the cache, each prompt is encoded once and its keys/values are
        copied G times, instead of running the same prompt G times.
    """
    _check_generate(model, prompt_ids, prompt_mask, max_new_tokens, temperature, greedy,
                    num_samples)
    G = num_samples
    B, P = prompt_ids.shape
    tau = 1.0 if greedy else temperature
    cache = model.new_cache() if use_cache else None
    mask = prompt_mask.bool()                                            # (B, P)
    if not use_cache and G > 1:                                          # no cache: plain repeats
        prompt_ids, mask = prompt_ids.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)
    seq = prompt_ids                                                     # (B*G, P)
    logits = model(prompt_ids, mask, cache)[:, -1]                       # (B or B*G, V)
    if use_cache and G > 1:                                              # share the prompt pass
        cache.repeat_interleave(G)
        logits, mask = logits.repeat_interleave(G, 0), mask.repeat_interleave(G, 0)  # (B*G, .)
    B = B * G
    finished = torch.zeros(B, dtype=torch.bool, device=prompt_ids.device)
    toks, alive_cols, logp_cols = [], [], []
    for _ in range(max_new_tokens):
        logp, tok = next_token(logits, tau, greedy, generator)           # (B, V), (B,)
        alive = ~finished                                                # (B,)
        tok = torch.where(alive, tok, torch.full_like(tok, pad_id))     # (B,)
        toks.append(tok)
        alive_cols.append(alive)
        logp_cols.append(torch.where(alive, logp.gather(1, tok[:, None]).squeeze(1), 0.0))
        finished = finished | (tok == eos_id)
        if finished.all():
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)    # (B, L+1)
        if use_cache:
            logits = model(tok[:, None], mask, cache)[:, -1]             # (B, V)
        else:
            seq = torch.cat([seq, tok[:, None]], dim=1)                  # (B, L+1)
            logits = model(seq, mask)[:, -1]                             # (B, V)
    return Completions(ids=torch.stack(toks, 1),                        # (B, T)
                       mask=torch.stack(alive_cols, 1),                 # (B, T)
                       logps=torch.stack(logp_cols, 1))                 # (B, T)
