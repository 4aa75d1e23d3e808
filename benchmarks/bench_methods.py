"""Throughput of each method's training step on the cpu base.

    python benchmarks/bench_methods.py [--steps 5]

DPO: preference pairs per second (reference log-probs precomputed once, outside the timing).
GRPO: completions per second, split into sampling, scoring and the update.
REINFORCE: completions per second for a whole step (sampling, scoring, one update).
Figures, not assertions: docs/PERFORMANCE.md records them.
"""
from __future__ import annotations

import argparse

import torch

from refimpl.core.preferences import build_pairs
from refimpl.core.sft import load_base
from refimpl.methods.dpo_trainer import DPOConfig, train_dpo
from refimpl.methods.grpo_trainer import benchmark_grpo
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce


def bench_dpo(base, steps):
    cfg = DPOConfig(steps=steps, eval_every=10**6)
    pairs = build_pairs(base.model, base.tokenizer, base.task, base.train_problems(cfg.n_prompts),
                        group_size=cfg.group_size, pairs_per_prompt=cfg.pairs_per_prompt)
    res = train_dpo(base, cfg, pairs=pairs, progress=False)
    return steps * cfg.batch_size / res.history[-1]["time_s"]   # the clock excludes evaluation


def bench_reinforce(base, steps):
    cfg = ReinforceConfig(steps=steps, eval_every=0)
    res = train_reinforce(base, cfg, progress=False)
    return steps * cfg.prompts_per_step * cfg.group_size / res.history[-1]["time_s"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args(argv)
    base = load_base("cpu")
    print(f"device {base.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"DPO (batch 32, reference cached): {bench_dpo(base, args.steps):,.0f} pairs/s")
    g = benchmark_grpo(base, steps=args.steps)
    print(f"GRPO (16 prompts x 8, 2 inner updates): {g['total_per_s']:,.0f} completions/s overall "
          f"(sampling {g['sample_per_s']:,.0f}/s, scoring {g['score_per_s']:,.0f}/s, "
          f"update {g['update_per_s']:,.0f}/s), {g['s_per_step']:.2f} s/step")
    print(f"REINFORCE (16 prompts x 8, RLOO, 1 update): {bench_reinforce(base, args.steps):,.0f} completions/s")


if __name__ == "__main__":
    main()
