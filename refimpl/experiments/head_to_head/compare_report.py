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


def _stats(values) -> dict:
    v = [x for x in values if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not v:
        return {k: float("nan") for k in ("mean", "std", "ci95", "min", "max")}
    ci95 = stats.t_interval(v)["hi"] - statistics.fmean(v) if len(v) > 1 else 0.0
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "ci95": ci95, "min": min(v), "max": max(v)}


SUMMARY_KEYS = ("final_acc", "base_acc", "wall_s", "samples", "steps", "s_per_step",
                "flops_per_step", "flops", "data_s")


def summarize(result: CompareResult) -> dict:
    """{method: {key: {mean, std, min, max} over seeds}} for SUMMARY_KEYS, plus "n" seeds."""
    out = {}
    for m, rs in result.by_method().items():
        out[m] = {k: _stats([r.get(k) for r in rs]) for k in SUMMARY_KEYS}
        out[m]["n"] = len(rs)
    return out


def format_table(result: CompareResult) -> str:
    """A plain-text table of the summary: one row per method; held-out accuracy as the mean over
    seeds +- the half-width of its 95% t interval (0 with one seed)."""
    s = summarize(result)
    head = (f"{'method':<18}{'held-out acc':>16}{'base':>7}{'wall s':>8}{'samples':>9}"
            f"{'steps':>7}{'s/step':>8}{'GFLOP/step':>11}{'GFLOP total':>12}")
    lines = [f"budget: {result.meta.get('budget')}, seeds: {list(result.config.seeds)}, "
             f"{result.config.eval_problems} held-out problems; accuracy: mean +- 95% CI over seeds",
             head, "-" * len(head)]
    for m in result.config.methods:
        if m not in s:
            continue
        r = s[m]
        acc = f"{r['final_acc']['mean']:.3f} +- {r['final_acc']['ci95']:.3f}"
        lines.append(f"{LABELS[m]:<18}{acc:>16}{r['base_acc']['mean']:>7.3f}"
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
