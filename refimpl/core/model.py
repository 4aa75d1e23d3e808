"""A tiny causal transformer policy (nanoGPT-style) with a key/value cache.

Radford et al. 2019 (GPT-2) architecture at toy size: token + learned position embeddings,
pre-LayerNorm blocks of causal self-attention and an MLP, a tied output head.

Two details that matter for RL on batches of prompts:

* Prompts are left-padded. ``attn_mask`` (B, S) marks real tokens; padded keys are never
  attended to, and positions count real tokens only (``cumsum(mask) - 1``), so a prompt gets
  the same positions whatever its padding.
* ``KVCache`` stores each layer's keys and values, so sampling T new tokens costs T small
  forward passes instead of T growing ones; the same cache lets a group of completions share
  one pass over their common prompt during training.

Dropout (Srivastava et al. 2014) is optional, as in nanoGPT: ``GPTConfig.dropout`` (default 0)
drops entries of the embeddings and of every attention and MLP branch's output in training
mode. At 0 the forward pass is exactly the one without it (no parameters, no random draws), so
cached weights and every trained number stay as they were. It matters for RL: a policy whose
training pass drops units while the reference (in eval mode) does not shows a KL to the
reference before it has moved at all; TRL's trainers take ``disable_dropout`` for it
(``refimpl.experiments.debugging.clinic_dynamics``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from refimpl.core import checks


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 32      # maximum sequence length (prompt + completion)
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0      # drop probability in training mode; 0 leaves the model unchanged


class KVCache:
    """Keys and values of every position seen so far: per layer, (B, H, L, D) tensors.

    ``update`` appends by concatenation, so a cache also works under autograd: a prompt's keys
    and values can be computed once, handed to several completions (``repeat_interleave``),
    and receive the gradient of all of them (``logprobs.token_logprobs(group_size=G)``).
    """

    def __init__(self, n_layer: int):
        self.k: list = [None] * n_layer
        self.v: list = [None] * n_layer

    @property
    def length(self) -> int:
        """Number of positions stored so far."""
        return 0 if self.k[0] is None else self.k[0].shape[2]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append k, v (B, H, S, D) for ``layer``; return all keys and values so far."""
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)                    # (B, H, L, D)
            v = torch.cat([self.v[layer], v], dim=2)                    # (B, H, L, D)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def repeat_interleave(self, G: int) -> "KVCache":
        """Repeat every row G times (row b becomes rows b*G .. b*G+G-1), in place."""
        self.k = [t.repeat_interleave(G, dim=0) for t in self.k]         # (B*G, H, L, D)
        self.v = [t.repeat_interleave(G, dim=0) for t in self.v]         # (B*G, H, L, D)
        return self


def attention(q, k, v, allowed):
    """softmax(q k^T / sqrt(D) masked to ``allowed``) v, for q (B, H, S, D), k and v (B, H, L, D),
    allowed (B, 1, S, L) bool.

    On a GPU this is PyTorch's fused kernel. On the CPU it is the plain formula: at these sizes
    (a few dozen positions) the fused CPU kernel loses time splitting work between threads, and
    a whole 2-thread training step runs about 15 % faster without it (docs/TRL.md).
    """
    if q.is_cuda:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    att = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5                 # (B, H, S, L)
    att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)        # (B, H, S, L)
    return att @ v                                                        # (B, H, S, D)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero each entry of x with probability p and rescale the rest by 1 / (1 - p), in training
    mode; the identity, without drawing a random number, when p = 0 or in eval mode."""
    return F.dropout(x, p, training=True) if p > 0 and training else x


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if cfg.n_embd % cfg.n_head:
            raise ValueError(f"n_embd={cfg.n_embd} must be divisible by n_head={cfg.n_head}")
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x, attn_bias, layer: int, cache: KVCache | None):
        B, S, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)                         # 3 x (B, S, C)
        q, k, v = (t.view(B, S, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in (q, k, v))                                   # (B, H, S, D)
        if cache is not None:
            k, v = cache.update(layer, k, v)                             # (B, H, L, D)
        y = attention(q, k, v, attn_bias)                                  # (B, H, S, D)
        return self.c_proj(y.transpose(1, 2).reshape(B, S, C))           # (B, S, C)


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd))
        self.p_drop = cfg.dropout

    def forward(self, x, attn_bias, layer, cache):
        p, on = self.p_drop, self.training
        x = x + dropout(self.attn(self.ln_1(x), attn_bias, layer, cache), p, on)  # (B, S, C)
        return x + dropout(self.mlp(self.ln_2(x)), p, on)                        # (B, S, C)


class GPT(nn.Module):
    """Causal language model: ``model(idx, attn_mask) -> logits (B, S, V)``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        checks.interval("GPTConfig.dropout", cfg.dropout, 0, 1, "[)")
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight                            # weight tying
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self) -> KVCache:
        return KVCache(self.config.n_layer)

    def hidden(self, idx, attn_mask=None, cache: KVCache | None = None):
        """Final-layer states (B, S, C) for token ids ``idx`` (B, S).

        attn_mask: (B, L) bool, True for real tokens, where L = S without a cache and
            L = cache.length + S with one (the mask covers the cached tokens too).
        """
        B, S = idx.shape
        past = cache.length if cache is not None else 0
        L = past + S
        if L > self.config.block_size:
            raise ValueError(f"sequence of {L} tokens exceeds the model context "
                             f"block_size={self.config.block_size}")
        if attn_mask is None:
            attn_mask = torch.ones(B, L, dtype=torch.bool, device=idx.device)
        if attn_mask.shape != (B, L):
            raise ValueError(f"attn_mask has shape {tuple(attn_mask.shape)}, expected {(B, L)}")
        pos = (attn_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]    # (B, S)
        q_idx = torch.arange(past, L, device=idx.device)[:, None]          # (S, 1)
        k_idx = torch.arange(L, device=idx.device)[None, :]                # (1, L)
        causal = k_idx <= q_idx                                            # (S, L)
        # A query always sees itself, so a left-padding row is never fully masked.
        attn_bias = (causal & attn_mask[:, None, :]) | (k_idx == q_idx)    # (B, S, L)
        x = dropout(self.wte(idx) + self.wpe(pos), self.config.dropout, self.training)  # (B, S, C)
        for layer, block in enumerate(self.blocks):
            x = block(x, attn_bias[:, None], layer, cache)                 # (B, S, C)
        return self.ln_f(x)                                                # (B, S, C)

    def forward(self, idx, attn_mask=None, cache: KVCache | None = None):
        return self.lm_head(self.hidden(idx, attn_mask, cache))           # (B, S, V)


def set_dropout(model: GPT, p: float) -> GPT:
    """Set the dropout probability of ``model`` (embeddings and every block) to p in place, and
    return it; set_dropout(model, 0) switches dropout off in every mode (TRL's
    ``disable_dropout``)."""
    p = checks.interval("dropout", p, 0, 1, "[)")
    model.config = replace(model.config, dropout=p)
    for block in model.blocks:
        block.p_drop = p
    return model


@contextlib.contextmanager
def eval_mode(*modules: nn.Module):
    """Inside the block every module is in eval mode (dropout off); afterwards each one is back
    in the mode it was in, even if the block raised. Sampling, scoring and held-out measurement
    use it, so that measuring a policy never changes how it trains."""
    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, w in zip(modules, was):
            m.train(w)
