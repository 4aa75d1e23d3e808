"""What the head-to-head reports: the summary over seeds, the plain-text table, the CSV/JSON
files and the measured side of the article's "When to use each method" table.

Every function here reads a finished ``refimpl.experiments.head_to_head.compare.CompareResult``; nothing
trains. ``python -m refimpl compare`` prints ``format_table`` and writes ``save_results``.
"""
from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import asdict
from pathlib import Path

from refimpl.core import stats
from refimpl.experiments.head_to_head.compare import CompareResult
from refimpl.methods.registry import LABELS, METHODS


MIN_SEEDS_FOR_CI = 3    # fewer runs show each run's value: a t interval from 2 is meaningless


def _stats(values) -> dict:
    """{mean, std, ci95, min, max} of the finite ``values``; ci95 is the half-width of the 95%
    t interval of the mean, NaN with fewer than MIN_SEEDS_FOR_CI values."""
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {k: float("nan") for k in ("mean", "std", "ci95", "min", "max")}
    ci95 = (stats.t_interval(v)["hi"] - statistics.fmean(v) if len(v) >= MIN_SEEDS_FOR_CI
            else float("nan"))
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "ci95": ci95, "min": min(v), "max": max(v)}


SUMMARY_KEYS = ("final_acc", "base_acc", "wall_s", "samples", "steps", "s_per_step",
                "flops_per_step", "flops", "data_s")


def summarize(result: CompareResult) -> dict:
    """{method: {key: {mean, std, ci95, min, max} over seeds}} for SUMMARY_KEYS, plus "n" seeds."""
    out = {}
    for m, rs in result.by_method().items():
        out[m] = {k: _stats([r.get(k) for r in rs]) for k in SUMMARY_KEYS}
        out[m]["n"] = len(rs)
    return out


def accuracy_cell(values) -> str:
    """Final held-out accuracy over seeds as the table shows it: with at least
    MIN_SEEDS_FOR_CI values, the mean and its 95% t interval, "0.457 [0.431, 0.483]"; with
    fewer, each seed's value, "0.450 / 0.435" (no interval)."""
    if len(values) < MIN_SEEDS_FOR_CI:
        return " / ".join(f"{v:.3f}" for v in values)
    ci = stats.t_interval(values)
    return f"{ci['mean']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}]"


def accuracy_note(n: int) -> str:
    """What the accuracy column of ``format_table`` holds for n seeds."""
    if n < MIN_SEEDS_FOR_CI:
        return f"accuracy: each seed's value ({n} seed{'s' * (n != 1)}, too few for an interval)"
    return f"accuracy: mean over {n} seeds [95% t interval of the mean]"


def format_table(result: CompareResult) -> str:
    """A plain-text table of the summary: one row per method; final held-out accuracy as
    ``accuracy_cell`` writes it (per-seed values below MIN_SEEDS_FOR_CI seeds, else the mean
    and its 95% t interval), then means over seeds of the cost columns."""
    s, runs = summarize(result), result.by_method()
    n = len(result.config.seeds)
    head = (f"{'method':<18}{'held-out acc':>24}{'base':>7}{'wall s':>8}{'samples':>9}"
            f"{'steps':>7}{'s/step':>8}{'GFLOP/step':>11}{'GFLOP total':>12}")
    lines = [f"budget: {result.meta.get('budget')}, seeds: {list(result.config.seeds)}, "
             f"{result.config.eval_problems} held-out problems; {accuracy_note(n)}",
             head, "-" * len(head)]
    for m in result.config.methods:
        if m not in s:
            continue
        r = s[m]
        acc = accuracy_cell([x["final_acc"] for x in runs[m]])
        lines.append(f"{LABELS[m]:<18}{acc:>24}{r['base_acc']['mean']:>7.3f}"
                     f"{r['wall_s']['mean']:>8.1f}{r['samples']['mean']:>9.0f}"
                     f"{r['steps']['mean']:>7.0f}{r['s_per_step']['mean']:>8.3f}"
                     f"{r['flops_per_step']['mean'] / 1e9:>11.3f}{r['flops']['mean'] / 1e9:>12.2f}")
    return "\n".join(lines)


CSV_FIELDS = ("method", "seed", "final_acc", "base_acc", "wall_s", "data_s", "samples", "pairs",
              "pairs_consumed", "steps", "s_per_step", "flops_per_step", "flops", "flops_data",
              "tokens_per_seq", "params")


def save_results(result: CompareResult, out) -> dict:
    """Write results.csv and results.json to the folder ``out`` (the figures:
    ``refimpl.figures.plots_compare.save_figures``). Returns {name: path}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "results.csv", "json": out / "results.json"}
    with open(paths["csv"], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in result.runs:
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
    payload = {"config": asdict(result.config), "meta": result.meta, "runs": result.runs,
               "summary": summarize(result)}
    paths["json"].write_text(json.dumps(payload, indent=1, default=str))
    return {k: str(v) for k, v in paths.items()}


def method_table(result: CompareResult) -> dict:
    """The measured side of the article's "When to use each method" table, per method:
    data ("offline" if no completion was sampled while training), sampled_in_training and
    generated_before (completions, mean over seeds), signal (what the loss consumes),
    exploration (share of training completions drawn from the policy being trained),
    s_per_step, gflops_per_step, final_acc, delta_acc (final - base, mean over seeds)."""
    out = {}
    for m, rs in result.by_method().items():
        during = []
        for r in rs:
            c = r["curve"]
            start = c[1]["samples"] if not METHODS[m].online and len(c) > 1 else 0
            during.append(c[-1]["samples"] - start)
        sampled = statistics.fmean(during)
        out[m] = {"data": "online" if sampled > 0 else "offline",
                  "sampled_in_training": sampled,
                  "generated_before": statistics.fmean(r["samples"] for r in rs) - sampled,
                  "signal": METHODS[m].signal, "exploration": 1.0 if sampled > 0 else 0.0,
                  "s_per_step": _stats([r["s_per_step"] for r in rs])["mean"],
                  "gflops_per_step": _stats([r["flops_per_step"] for r in rs])["mean"] / 1e9,
                  "final_acc": _stats([r["final_acc"] for r in rs])["mean"],
                  "delta_acc": _stats([r["final_acc"] - r["base_acc"] for r in rs])["mean"]}
    return out
