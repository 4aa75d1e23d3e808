"""Measuring a policy on a task: greedy accuracy, accuracy per level, pass@k and the entropy
of its samples.

pass@k uses the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
Trained on Code", eq. 1): with n samples of which c are correct,
pass@k = 1 - C(n - c, k) / C(n, k), computed as the product 1 - prod_{i=n-c+1}^{n} (1 - k / i)
(their numerically stable form: no binomial coefficient of a large n is ever formed).
``sampling_profile`` draws n samples per problem and returns pass@k for k = 1, 2, 4, ..., n
with the mean token entropy of the samples: whether training sharpened the policy (pass@1 up,
entropy down) or widened what it can reach (pass@n up).
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
    """Unbiased pass@k from n samples with c correct (Chen et al. 2021, eq. 1): the chance that
    k of the n samples, drawn without replacement, hold at least one correct one,
    1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def powers_of_two(n: int) -> tuple:
    """The k of a pass@k curve from n samples: 1, 2, 4, ... up to n (n itself included)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    ks = [2 ** i for i in range(n.bit_length()) if 2 ** i <= n]
    return tuple(ks if ks[-1] == n else ks + [n])


@torch.no_grad()
def sample_counts(model, tok, task, problems, n: int, temperature: float = 1.0,
                  generator=None, batch_size: int = 2048) -> tuple[list[int], float]:
    """Draw ``n`` completions of each problem (each prompt encoded once, ``generate``'s
    num_samples) and verify them. Returns (correct samples of each problem (P,), the mean
    token entropy): the mean over every sampled completion token, EOS included, of
    -log pi(token | prefix) at ``temperature``, the Monte Carlo estimate of the policy's mean
    per-token entropy that the online trainers log as ``entropy``."""
    device = next(model.parameters()).device
    max_new = max(task.max_new_tokens(p.level) for p in problems)
    per_call = max(1, batch_size // n)                      # problems per generate call
    counts, nll, tokens = [], 0.0, 0
    with eval_mode(model):
        for i in range(0, len(problems), per_call):
            chunk = problems[i:i + per_call]
            ids, mask = tok.encode_prompts([p.prompt for p in chunk])             # (B, P)
            out = generate(model, ids.to(device), mask.to(device), max_new, tok.eos_id,
                           tok.pad_id, temperature=temperature, generator=generator,
                           num_samples=n)                                         # (B*n, T)
            texts = tok.decode_completions(out.ids.cpu())
            counts += [int(sum(task.verify(p, t) for t in texts[j * n:(j + 1) * n]))
                       for j, p in enumerate(chunk)]
            nll -= out.logps[out.mask].sum().item()
            tokens += int(out.mask.sum())
    return counts, nll / max(tokens, 1)


def sampling_profile(model, tok, task, problems, n: int = 64, temperature: float = 1.0,
                     generator=None) -> dict:
    """What a policy can reach by sampling: ``n`` samples of each problem (``sample_counts``).
    Returns {"pass_at_k": {k: mean pass@k over problems, k in powers_of_two(n)},
    "entropy": mean token entropy (nats), "correct": correct samples per problem (P,),
    "n": n}. pass@1 is the share of all samples that are correct."""
    counts, entropy = sample_counts(model, tok, task, problems, n, temperature, generator)
    curve = {k: sum(pass_at_k(n, c, k) for c in counts) / len(problems)
             for k in powers_of_two(n)}
    return {"pass_at_k": curve, "entropy": entropy, "correct": counts, "n": n}


def pass_at_k_curve(model, tok, task, problems, n_samples: int, ks, temperature=1.0,
                    generator=None) -> dict[int, float]:
    """Mean pass@k over ``problems`` for each k in ``ks``, from ``n_samples`` samples each."""
    texts = completions_for(model, tok, task, problems, greedy=False, temperature=temperature,
                            n_samples=n_samples, generator=generator)
    correct = [sum(task.verify(p, texts[i * n_samples + j]) for j in range(n_samples))
               for i, p in enumerate(problems)]
    return {k: sum(pass_at_k(n_samples, int(c), k) for c in correct) / len(problems) for k in ks}
