"""Where refimpl's GRPO step spends its time: torch.profiler over the benchmark's step.

    python benchmarks/profile_grpo.py                 # reference point: 4 x 128, 8 x 8, 4 new tokens
    python benchmarks/profile_grpo.py --width 256 --max-new 16

Runs ``bench_vs_trl.RefimplGRPO`` (the step of ``grpo_trainer.grpo_update`` with sampling) on
one thread, warms up, profiles ``--steps`` steps and prints the operators by self CPU time,
grouped into matmuls (the floor's work) and the rest, plus the step's time not spent inside
any operator (Python, dispatch): the three places the step can lose time against its floor.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_vs_trl as bench  # noqa: E402

MATMUL = {"aten::mm", "aten::addmm", "aten::bmm"}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rows", type=int, default=25, help="operators to list")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    args = argparse.Namespace(tiny=False, prompts=8, group=8, max_new=a.max_new, pairs=64,
                              digits=2, width=a.width, layers=a.layers, dpo_ref="precomputed")
    task, tok, problems, size = bench.setting(args)
    runner = bench.RefimplGRPO(task, tok, problems, size, args)
    for _ in range(3):
        runner.step()
    t = time.perf_counter()              # the profiler's operator times are wall times too
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(a.steps):
            runner.step()
    step_ms = (time.perf_counter() - t) / a.steps * 1e3
    ev = prof.key_averages()
    print(ev.table(sort_by="self_cpu_time_total", row_limit=a.rows))
    self_ms = {e.key: e.self_cpu_time_total / 1e3 / a.steps for e in ev}
    mm = sum(v for k, v in self_ms.items() if k in MATMUL)
    ops = sum(v for k, v in self_ms.items() if k.startswith("aten::"))
    calls = sum(e.count for e in ev if e.key.startswith("aten::")) / a.steps
    print(f"per step (wall time under the profiler, which adds its own cost per call): {step_ms:.1f} ms; "
          f"matmuls {mm:.1f} ms, other operators {ops - mm:.1f} ms, outside operators "
          f"(Python, dispatch, profiler) {step_ms - ops:.1f} ms; {calls:.0f} aten calls per step")

    decode_forward(runner.policy.eval(), a.rows)


def decode_forward(model, rows: int, B: int = 64, past: int = 10):
    """One sampling step of B rows after ``past`` cached positions, profiled on its own."""
    ids = torch.ones(B, past, dtype=torch.long)                          # (B, past)
    with torch.no_grad():
        cache = model.new_cache()
        model(ids, None, cache)
        step = lambda: model(ids[:, :1], torch.ones(B, past + 1, dtype=torch.bool),  # noqa: E731
                             _copy(cache))
        for _ in range(5):
            step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(10):
                step()
    ev = prof.key_averages()
    calls = sum(e.count for e in ev if e.key.startswith("aten::")) / 10
    total = sum(e.self_cpu_time_total for e in ev if e.key.startswith("aten::")) / 10 / 1e3
    mm = sum(e.self_cpu_time_total for e in ev if e.key in MATMUL) / 10 / 1e3
    print(f"one decode step, {B} rows after {past} positions: {calls:.0f} aten calls, "
          f"{total:.2f} ms inside operators of which matmuls {mm:.2f} ms")
    print(ev.table(sort_by="count", row_limit=rows // 2))


def _copy(cache):
    """A fresh cache holding the same keys and values (the step appends to its own)."""
    new = type(cache)(len(cache.k))
    new.k, new.v = list(cache.k), list(cache.v)
    return new


if __name__ == "__main__":
    main()
