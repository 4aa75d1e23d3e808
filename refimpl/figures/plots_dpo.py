"""Figures for notebooks 01 and 02 (DPO): the weight of the DPO gradient against the margin
(01), and (02) training curves, where the probability mass went, accuracy under label noise,
and comparisons per generated sample.

Each function draws on matplotlib axes and returns the figure; none trains anything.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def _smooth(values, k: int = 5):
    """Trailing running mean over ``k`` points (the first points average what exists)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - k, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def plot_gradient_weight(margin, weight):
    """The per-pair weight sigma(r_l - r_w) of the DPO gradient (``dpo.dpo_gradient_weight``)
    against the implicit-reward margin r_w - r_l, both (B,): a tie (margin 0) gets 1/2. A bare
    Figure (no pyplot state), so a notebook shows it once, as the cell's value."""
    fig = Figure(figsize=(5.5, 3.4))
    ax = fig.add_subplot()
    ax.plot(margin, weight, label="sigma(r_l - r_w)")
    ax.plot([0.0], [0.5], "ko", label="a tie: weight 1/2")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set(xlabel="implicit-reward margin r_w - r_l", ylabel="gradient weight (units of beta)",
           ylim=(0, 1), title="C2: size of the DPO update of one pair")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_dpo_runs(runs: dict, base_acc: float, probe_names=("target", "base_greedy")):
    """One row per run {name: TrainResult}: implicit rewards (batch, smoothed), log-probs
    over all pairs and of the probe sets (evaluation points), held-out greedy accuracy."""
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.2 * len(runs)), squeeze=False)
    for row, (name, res) in zip(axes, runs.items()):
        ax = row[0]
        for key, style in (("rewards/chosen", "C2-"), ("rewards/rejected", "C3-"),
                           ("rewards/margins", "k-")):
            steps, vals = res.curve(key)
            ax.plot(steps, _smooth(vals), style, label=key.split("/")[1])
        ax.axhline(0, color="grey", lw=0.5)
        ax.set(title=f"C4, {name}: implicit rewards (batch)", xlabel="DPO step",
               ylabel="beta log(pi / pi_ref) (nats x beta)")
        ax.legend(fontsize=10)
        ax = row[1]
        for key, style, label in (("pairs/logps/chosen", "C2o-", "chosen (in data)"),
                                  ("pairs/logps/rejected", "C3o-", "rejected (in data)")):
            ax.plot(*res.curve(key), style, label=label)
        for i, probe in enumerate(probe_names):
            steps, vals = res.curve(f"logps/{probe}")
            if steps:
                ax.plot(steps, vals, f"C{i}s--", label=f"held-out {probe}")
        ax.set(title=f"C4, {name}: mean log pi(y|x)", xlabel="DPO step",
               ylabel="sequence log-prob (nats)")
        ax.legend(fontsize=10)
        ax = row[2]
        ax.plot(*res.curve("heldout_acc"), "ko-", label=name)
        ax.axhline(base_acc, color="grey", ls="--", label="base")
        ax.set(title=f"{name}: held-out greedy accuracy", xlabel="DPO step",
               ylabel="held-out greedy accuracy", ylim=(0, 1))
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_mass(reports: dict):
    """Bars from ``where_mass_goes`` reports {name: report}: probabilities at the first
    differing token, and the chosen/rejected log-probs per segment."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(14, 3.8), gridspec_kw={"width_ratios": (1, 1.25)})
    names = list(reports)
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    for key, color in (("p_chosen", "C2"), ("p_rejected", "C3"), ("p_other", "C7")):
        vals = np.array([reports[n][key] for n in names])
        a.bar(x, vals, bottom=bottom, color=color, label=key[2:])
        bottom += vals
    a.set(xticks=x, xticklabels=names, ylim=(0, 1), xlabel="policy", ylabel="probability",
          title="C4: probability at the first token where y_w and y_l differ")
    a.legend(fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5))   # beside the bars
    segs = ("prefix", "diverge", "suffix")
    w = 0.8 / len(names)
    for i, n in enumerate(names):     # rejected (light, hatched) behind chosen (solid)
        b.bar(np.arange(3) + i * w, [reports[n][f"rejected_{s}"] for s in segs], w,
              color=f"C{i}", alpha=0.3, hatch="//", label=f"{n}: rejected")
        b.bar(np.arange(3) + i * w, [reports[n][f"chosen_{s}"] for s in segs], w,
              label=f"{n}: chosen", color=f"C{i}")
    b.set(xticks=np.arange(3) + 0.4 - w / 2, xticklabels=segs, xlabel="segment of the completion",
          ylabel="log pi of the segment (nats)",
          title="C4: log pi per segment (solid: chosen, hatched: rejected)")
    b.legend(fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return fig


def plot_noise(eps_values, curves: dict, base_acc: float):
    """Held-out accuracy vs label-flip rate eps, one line per variant {name: [acc]}."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, accs in curves.items():
        ax.plot(eps_values, accs, "o-", label=name)
    ax.axhline(base_acc, color="grey", ls="--", label="base")
    ax.set(xlabel="label-flip rate eps", ylabel="held-out greedy accuracy", ylim=(0, 1),
           title="C5: DPO under noisy preferences")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_comparisons(stats: dict):
    """Per generated sample (from ``comparison_counts``): the samples whose reward reaches each
    method's update (independent information, solid) and the comparisons counted among them
    (correlated, hatched), DPO vs GRPO."""
    keys = [("dpo_samples_used_per_sample", "DPO samples\nin pairs", "C0", ""),
            ("grpo_nonzero_advantages_per_sample", "GRPO samples,\nnon-zero advantage", "C1", ""),
            ("dpo_comparisons_per_sample", "DPO pairs", "C0", "//"),
            ("grpo_informative_comparisons_per_sample", "GRPO informative\ncomparisons c(G-c)", "C1", "//"),
            ("grpo_implicit_comparisons_per_sample", "GRPO all pairs\nG(G-1)/2", "C7", "//")]
    fig, ax = plt.subplots(figsize=(8, 3.4))
    for i, (k, lab, c, hatch) in enumerate(keys):
        bars = ax.bar(i, stats[k], color=c, hatch=hatch, edgecolor="white" if hatch else c,
                      label=("samples (independent rewards)" if not hatch else
                             "comparisons (reuse samples)") if i in (0, 2) else None)
        ax.bar_label(bars, fmt="%.2f", fontsize=10)
    ax.set(xticks=range(len(keys)), xticklabels=[lab for _, lab, _, _ in keys],
           ylabel="per generated sample",
           title="C6: what each method uses of the same samples")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
