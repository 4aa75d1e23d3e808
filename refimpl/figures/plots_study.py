"""Figures of a claims-study record (refimpl.experiments.claims_study.study): what was run, per seed, and the verdict.

``plot_record`` draws three panels that read alone:

1. test accuracy against generated completions for each method: the mean over every
   (base, seed) run and the min-max band;
2. each run's final test accuracy per method (one point per run, one marker per base);
3. each comparison's paired differences treatment - control (points) with the mean and its
   95% t interval (bar), a zero line, and the verdict in the label.

A record whose runs have no accuracy curve (C3's change of a step's error rate, C10's, C12's,
C13's and C19's graded values, C11b's accuracy and share of answer-only samples, C4's and C5's log-prob change and margin, C15's explained variances)
shows in panel 1 each method's mean of every value ending in ``_change``, or else of each
value of ``VALUE_KEYS`` the runs have, as bars with one point per run; panel 2 shows the runs' ``metric_key`` and panel 3 names
each comparison's value.
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from refimpl.experiments.claims_study.study import comparison_label
from refimpl.methods.registry import LABELS

MARKERS = "os^Dv<>p"


def _curve_panel(ax, record: dict) -> None:
    for i, (m, runs) in enumerate(record["runs"].items()):
        # offline methods draw all their samples before training (and their step counts differ
        # with the pairs each seed formed): start and end point only, as a step
        step = runs[0]["curve"][1]["samples"] == runs[0]["curve"][-1]["samples"]
        curves = [[r["curve"][0], r["curve"][-1]] if step else r["curve"] for r in runs]
        xs = np.array([c["samples"] for c in curves[0]], dtype=float)
        Y = np.array([[c["heldout_acc"] for c in cur] for cur in curves])   # (runs, points)
        kw = {"drawstyle": "steps-post"} if step else {}
        ax.plot(xs, Y.mean(0), color=f"C{i}", label=f"{LABELS[m]} (n={len(runs)})", **kw)
        ax.fill_between(xs, Y.min(0), Y.max(0), color=f"C{i}", alpha=0.15,
                        step="post" if step else None)
    ax.set(xlabel="completions generated", ylabel="test accuracy (greedy)",
           title=f"{record['id']}: accuracy vs samples (mean, min-max band)")
    ax.legend(fontsize=7)


# values a run of a non-curve record may report, in the order panel 1 draws them
VALUE_KEYS = ("final_acc", "tolerant_acc", "false_accept", "process_score",    # C13, C19
              "rm_score",                                                     # C10
              "short_share",                                                  # C11b
              "chosen_logp_change", "margin",                                 # C4, C5
              "explained_variance", "half_oracle_ev", "corr_v0_p")            # C15


def _value_keys(run: dict) -> list:
    """Panel 1's values: each ``*_change`` (C3), else the graded values of ``VALUE_KEYS``."""
    keys = [k for k in run if k.endswith("_change") and k not in ("mean_change", "chosen_logp_change")]
    return keys or [k for k in VALUE_KEYS if k in run]


def _values_panel(ax, record: dict) -> None:
    keys = _value_keys(next(iter(record["runs"].values()))[0])
    changes = keys[0].endswith("_change")
    width = 0.8 / len(record["runs"])
    for i, (m, runs) in enumerate(record["runs"].items()):
        x = np.arange(len(keys)) + (i - (len(record["runs"]) - 1) / 2) * width
        Y = np.array([[r[k] for k in keys] for r in runs])                  # (runs, keys)
        ax.bar(x, Y.mean(0), width * 0.9, color=f"C{i}", alpha=0.6,
               label=f"{LABELS[m]} (n={len(runs)})")
        for j in range(len(keys)):
            ax.plot(np.full(len(Y), x[j]), Y[:, j], ".", color=f"C{i}", ms=3)
    ax.axhline(0, color="k", lw=0.8)
    names = {"final_acc": "accuracy", "chosen_logp_change": "chosen log-prob change"}
    ax.set_xticks(range(len(keys)), [textwrap.fill(names.get(k, k.replace("_change", ""))
                                                   .replace("_", " "), 11) for k in keys],
                  fontsize=8)
    ax.set(ylabel=("change from the base" if changes else "test value")
           + " (bar: mean; dots: runs)",
           title=f"{record['id']}: {'change of each value' if changes else 'graded values'}, every run")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22))   # below: no bar hidden


def _final_panel(ax, record: dict) -> None:
    bases = record["bases"]
    key = record.get("metric_key", "final_acc")
    for i, (m, runs) in enumerate(record["runs"].items()):
        for j, b in enumerate(bases):
            y = [r[key] for r in runs if r["base"] == b]
            x = i + np.linspace(-0.25, 0.25, len(bases))[j] * np.ones(len(y))
            ax.plot(x, y, MARKERS[j % len(MARKERS)], color=f"C{i}", ms=4, alpha=0.8,
                    label=f"base {b}" if i == 0 else None)
        ax.hlines(np.mean([r[key] for r in runs]), i - 0.35, i + 0.35, color="k", lw=1.5)
    if key == "final_acc":
        base_acc = np.mean([r["base_acc"] for rs in record["runs"].values() for r in rs])
        ax.axhline(base_acc, color="grey", ls=":", lw=1, label=f"bases' mean ({base_acc:.3f})")
    elif key.endswith("_change"):
        ax.axhline(0, color="grey", ls=":", lw=1, label="the base (no change)")
    else:
        ys = [r[key] for rs in record["runs"].values() for r in rs]
        lo, hi = min(ys), max(ys)
        if lo - (hi - lo) <= 0 <= hi + (hi - lo):      # 0 only where it is near the values
            ax.axhline(0, color="grey", ls=":", lw=1, label="0")
    ax.set_xticks(range(len(record["runs"])),
                  [LABELS[m] for m in record["runs"]], rotation=30, ha="right", fontsize=7)
    ax.set(ylabel="final test accuracy" if key == "final_acc" else f"test {key.replace('_', ' ')}",
           xlabel="method (bar: mean over runs)",
           title=f"{record['id']}: every run at its tuned lr")
    ax.legend(fontsize=6, loc="best")


def _diff_panel(ax, record: dict) -> None:
    comps = record["comparisons"]
    for k, c in enumerate(comps):
        d = np.array([x["diff"] for x in c["diffs"]])
        y = np.full(len(d), len(comps) - 1 - k, dtype=float)
        ax.plot(d, y + np.linspace(-0.15, 0.15, len(d)), ".", color="C7", ms=4, alpha=0.7,
                label="one (base, seed) pair" if k == 0 else None)
        ci = c["ci"]
        ax.errorbar(ci["mean"], y[0], xerr=[[ci["mean"] - ci["lo"]], [ci["hi"] - ci["mean"]]],
                    fmt="o", color="C3", capsize=3, label="mean, 95% t interval" if k == 0 else None)
    ax.axvline(0, color="k", lw=0.8)
    default = record.get("metric_key", "final_acc")
    keys = [c.get("metric") or default for c in comps]
    ax.set_yticks(range(len(comps))[::-1],
                  [textwrap.fill(comparison_label(record, c), 44) + "\n"
                   + ("" if c["predicted"] == 1 else "predicted < 0, ") + f"({c['verdict']})"
                   for c in comps], fontsize=7)
    ax.set(xlabel="paired difference in test accuracy" if set(keys) == {"final_acc"}
           else "paired difference (the value named on the left)", ylabel="treatment - control (verdict)",
           title=textwrap.fill(f"{record['id']}: paired differences -> {record['verdict']}", 48))
    ax.legend(fontsize=6, loc="best")


def plot_record(record: dict):
    """The three panels of a study record (module docstring). Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.1, 1, 1.3]})
    runs0 = next(iter(record["runs"].values()))[0]
    (_curve_panel if "curve" in runs0 else _values_panel)(axes[0], record)
    _final_panel(axes[1], record)
    _diff_panel(axes[2], record)
    fig.suptitle(f"{record['id']}: {record['hypothesis']}", fontsize=9, wrap=True)
    fig.tight_layout()
    return fig
