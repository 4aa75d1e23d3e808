"""Benchmark of the shared machinery: sampling with and without the KV cache, and SFT.

    python benchmarks/bench_core.py [--device cpu|cuda] [--repeats 3]

Prints tokens per second for sampling at batch 64 and 32 new tokens, the cache's speed-up,
and SFT steps per second for the cpu preset. Figures, not assertions: the README records them.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from refimpl.core.model import GPT, GPTConfig
from refimpl.core.sampling import generate
from refimpl.core.sft import build_model, sft_batch, sft_loss
from refimpl.core.tokenizer import CharTokenizer
from refimpl.core.training import adamw
from refimpl.core.utils import get_device, get_preset, make_task


def time_it(fn, repeats):
    fn()                                   # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def bench_sampling(device, repeats, batch=64, new_tokens=32):
    preset = get_preset("cpu")
    task = make_task(preset)
    tok = CharTokenizer(task.alphabet)
    model = GPT(GPTConfig(tok.vocab_size, block_size=48, n_layer=preset.n_layer,
                          n_head=preset.n_head, n_embd=preset.n_embd)).to(device).eval()
    ids, mask = tok.encode_prompts([p.prompt for p in task.problems("train", batch)])
    ids, mask = ids.to(device), mask.to(device)
    rows = {}
    for use_cache in (True, False):
        # eos_id=-1: never stop early, so every row generates exactly ``new_tokens`` tokens.
        def run():
            generate(model, ids, mask, new_tokens, eos_id=-1, pad_id=tok.pad_id,
                     generator=torch.Generator(device).manual_seed(0), use_cache=use_cache)
        rows[use_cache] = batch * new_tokens / time_it(run, repeats)
    return rows


def bench_sft(device, repeats, steps=20):
    preset = get_preset("cpu")
    task = make_task(preset)
    tok = CharTokenizer(task.alphabet)
    model = build_model(preset, tok).to(device)
    opt = adamw(model.parameters(), preset.sft_lr)
    batch = sft_batch(tok, task, task.problems("train", preset.sft_batch_size), device)

    def run():
        for _ in range(steps):
            loss = sft_loss(model, *batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return steps / time_it(run, repeats)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    device = get_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    s = bench_sampling(device, args.repeats)
    print(f"sampling, batch 64 x 32 new tokens: with KV cache {s[True]:,.0f} tok/s, "
          f"without {s[False]:,.0f} tok/s, speed-up {s[True] / s[False]:.1f}x")
    print(f"SFT (cpu preset model, batch 128): {bench_sft(device, args.repeats):.1f} steps/s")


if __name__ == "__main__":
    main()
