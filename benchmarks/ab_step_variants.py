"""A/B of candidate speed-ups of refimpl's GRPO and DPO steps, side by side in one run.

    python benchmarks/ab_step_variants.py --steps 12            # reference point, 1 thread, CPU time
    python benchmarks/ab_step_variants.py --max-new 16 --threads 2 --clock wall

Each variant owns an identical runner (``bench_vs_trl.RefimplGRPO`` / ``RefimplDPO``, same seed);
the variants take turns step by step, so the machine's load hits all alike; the first step of
each is dropped and medians are printed. Variants:

* ``plain``: refimpl as it is (the plain attention formula on the CPU);
* ``fused_attention``: PyTorch's ``scaled_dot_product_attention`` kernel in its place;
* ``inference_mode``: sampling under ``torch.inference_mode`` instead of ``torch.no_grad``
  (the outputs are cloned out of it, since training uses them); GRPO only.

The variants are installed by swapping ``refimpl.core.model.attention`` and
``refimpl.core.rollouts.generate`` around each step; both compute the same numbers
(``tests/core/test_model_sampling.py`` checks the attention kernels agree).
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_vs_trl as bench  # noqa: E402

from refimpl.core import model as model_mod  # noqa: E402
from refimpl.core import rollouts  # noqa: E402

PLAIN_ATTENTION, PLAIN_GENERATE = model_mod.attention, rollouts.generate


def fused_attention(q, k, v, allowed):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)


def inference_generate(*a, **k):
    with torch.inference_mode():
        out = PLAIN_GENERATE.__wrapped__(*a, **k)
    return type(out)(ids=out.ids.clone(), mask=out.mask.clone(), logps=out.logps.clone())


@contextlib.contextmanager
def variant(name):
    model_mod.attention = fused_attention if name == "fused_attention" else PLAIN_ATTENTION
    rollouts.generate = inference_generate if name == "inference_mode" else PLAIN_GENERATE
    try:
        yield
    finally:
        model_mod.attention, rollouts.generate = PLAIN_ATTENTION, PLAIN_GENERATE


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="cpu")
    ap.add_argument("--max-new", type=int, default=4)
    ap.add_argument("--width", type=int, default=128)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    bench.now = time.process_time if a.clock == "cpu" else time.perf_counter
    args = argparse.Namespace(tiny=False, prompts=8, group=8, max_new=a.max_new, pairs=64, digits=2,
                              width=a.width, layers=4, dpo_ref="precomputed")
    task, tok, problems, size = bench.setting(args)
    print(f"torch {torch.__version__}, {a.threads} thread(s), {a.clock} clock, model {size}")
    for method, Runner in (("grpo", bench.RefimplGRPO), ("dpo", bench.RefimplDPO)):
        names = ("plain", "fused_attention") + (("inference_mode",) if method == "grpo" else ())
        runners = {n: Runner(task, tok, problems, size, args) for n in names}
        rows = {n: [] for n in names}
        for i in range(a.steps + 1):
            for n, r in runners.items():
                with variant(n):
                    row = r.step()
                if i:
                    rows[n].append(row)
        print(f"\n{method.upper()} (ms, medians of {a.steps} steps)")
        phases = bench.PHASES[method] + ("step",)
        print(f"{'variant':<16}" + "".join(f"{p:>12}" for p in phases))
        base = bench.median_row(rows["plain"])["step"]
        for n in names:
            med = bench.median_row(rows[n])
            print(f"{n:<16}" + "".join(f"{med[p] * 1e3:>12.1f}" for p in phases)
                  + f"   {base / med['step']:.3f}x plain")


if __name__ == "__main__":
    main()
