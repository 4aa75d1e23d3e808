"""Figures for notebook 05 (RL with verifier rewards). Each function returns the Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt


def _smooth(values, k: int):
    """Trailing moving average over k points (None entries skipped)."""
    out = []
    for i in range(len(values)):
        window = [v for v in values[max(0, i - k + 1):i + 1] if v is not None]
        out.append(sum(window) / len(window) if window else None)
    return out


def plot_level_curves(result, levels: dict, smooth: int = 3):
    """Per-level sampled pass rate and share of all-wrong groups over training.

    result: a TrainResult whose history has pass_rate/level_k and frac_all_wrong/level_k;
    levels: {k: label}. Curves are trailing moving averages over ``smooth`` steps.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2))
    rows = result.history[1:]
    steps = [r["step"] for r in rows]
    for k, label in levels.items():
        for ax, key in zip(axes, ("pass_rate", "frac_all_wrong")):
            ax.plot(steps, _smooth([r.get(f"{key}/level_{k}") for r in rows], smooth), label=label)
    axes[0].set(xlabel="step", ylabel="pass rate of the samples", title="Verified pass rate", ylim=(0, 1))
    axes[1].set(xlabel="step", ylabel="share of groups", title="Groups whose G rewards are all 0",
                ylim=(0, 1.02))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_variance(table: dict, title: str = "Variance of the gradient estimate"):
    """table: {G: {kind: variance}} -> grouped bars on a log axis, one group per G."""
    Gs = sorted(table)
    kinds = list(table[Gs[0]])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        ax.bar([g + (i - (len(kinds) - 1) / 2) * width for g in range(len(Gs))],
               [table[G][kind] for G in Gs], width, label=kind)
    ax.set_xticks(range(len(Gs)), [f"G = {G}" for G in Gs])
    ax.set(yscale="log", ylabel="trace of Cov(g)", title=title)
    ax.legend(fontsize=8, title="baseline")
    fig.tight_layout()
    return fig


def plot_runs(results: dict, keys=("heldout_acc", "reward", "verified"), smooth: int = 3):
    """One panel per key, one line per run ({label: TrainResult}); per-step keys smoothed."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.2))
    axes = [axes] if len(keys) == 1 else axes
    for ax, key in zip(axes, keys):
        for label, res in results.items():
            rows = [r for r in res.history if key in r]
            ys = [r[key] for r in rows]
            ax.plot([r["step"] for r in rows], ys if key == "heldout_acc" else _smooth(ys, smooth),
                    "o-" if key == "heldout_acc" else "-", ms=3, label=str(label))
        ax.set(xlabel="step", title=key)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig
