"""Measuring a policy on a task: greedy accuracy, accuracy per level, and pass@k.

pass@k uses the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", eq. 1): with n samples of which c are correct,
pass@k = 1 - C(n - c, k) / C(n, k).
"""
from __future__ import annotations

import math

import torch

from refimpl.core.model import eval_mode
from refimpl.core.sampling import generate


@torch.no_grad()
def completions_for(model, tok, task, problems, greedy=True, temperature=1.0, n_samples=1,
                    generator=None, batch_size=1024) -> list[str]:
    """Decode ``n_samples`` completions per problem (problem-major order)."""
    prompts = [p.prompt for p in problems for _ in range(n_samples)]
    max_new = max(task.max_new_tokens(p.level) for p in problems)
    device = next(model.parameters()).device
    texts = []
    with eval_mode(model):
        for i in range(0, len(prompts), batch_size):
            ids, mask = tok.encode_prompts(prompts[i:i + batch_size])    # (B, P)
            out = generate(model, ids.to(device), mask.to(device), max_new, tok.eos_id,
                           tok.pad_id, temperature=temperature, greedy=greedy,
                           generator=generator)
            texts += tok.decode_completions(out.ids.cpu())
    return texts


def accuracy(model, tok, task, problems, greedy=True, temperature=1.0, generator=None) -> float:
    """Fraction of ``problems`` whose (greedy by default) completion the verifier accepts."""
    texts = completions_for(model, tok, task, problems, greedy, temperature, generator=generator)
    return sum(task.verify(p, t) for p, t in zip(problems, texts)) / len(problems)


def accuracy_by_level(model, tok, task, problems, greedy=True) -> dict[int, float]:
    """Greedy accuracy for each difficulty level present in ``problems``."""
    texts = completions_for(model, tok, task, problems, greedy)
    out: dict[int, list[float]] = {}
    for p, t in zip(problems, texts):
        out.setdefault(p.level, []).append(task.verify(p, t))
    return {lev: sum(v) / len(v) for lev, v in sorted(out.items())}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_curve(model, tok, task, problems, n_samples: int, ks, temperature=1.0,
                    generator=None) -> dict[int, float]:
    """Mean pass@k over ``problems`` for each k in ``ks``, from ``n_samples`` samples each."""
    texts = completions_for(model, tok, task, problems, greedy=False, temperature=temperature,
                            n_samples=n_samples, generator=generator)
    correct = [sum(task.verify(p, texts[i * n_samples + j]) for j in range(n_samples))
               for i, p in enumerate(problems)]
    return {k: sum(pass_at_k(n_samples, int(c), k) for c in correct) / len(problems) for k in ks}
