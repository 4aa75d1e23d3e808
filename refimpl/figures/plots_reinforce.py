"""Figures of REINFORCE for notebook 05 (RL with verifier rewards): its curves per level, the
gradient variance of each baseline, and its runs side by side. Each function returns the Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt

from refimpl.figures.plots import label_for


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
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    rows = result.history[1:]
    steps = [r["step"] for r in rows]
    for k, label in levels.items():
        for ax, key in zip(axes, ("pass_rate", "frac_all_wrong")):
            ax.plot(steps, _smooth([r.get(f"{key}/level_{k}") for r in rows], smooth), label=label)
    axes[0].set(xlabel="training step", ylabel="share of samples verified correct",
                title="Verified pass rate per difficulty (C12)", ylim=(0, 1))
    axes[1].set(xlabel="training step", ylabel="share of groups",
                title="Groups whose G rewards are all 0 (C12)", ylim=(0, 1.02))
    for ax in axes:
        ax.legend(fontsize=10, title="prompts", title_fontsize=10)
    fig.tight_layout()
    return fig


def plot_variance(table: dict, title: str = "Variance of the REINFORCE gradient per baseline (C12)"):
    """table: {G: {kind: variance}} -> grouped bars on a log axis, one group per G."""
    Gs = sorted(table)
    kinds = list(table[Gs[0]])
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    width = 0.8 / len(kinds)
    for i, kind in enumerate(kinds):
        ax.bar([g + (i - (len(kinds) - 1) / 2) * width for g in range(len(Gs))],
               [table[G][kind] for G in Gs], width, label=kind)
    ax.set_xticks(range(len(Gs)), [f"G = {G}" for G in Gs])
    ax.set(yscale="log", xlabel="samples per prompt", ylabel="trace of Cov(g) (squared grad units)",
           title=title)
    ax.title.set_fontsize(11)
    ax.legend(fontsize=10, title="baseline", title_fontsize=10)
    fig.tight_layout()
    return fig


def plot_runs(results: dict, keys=("heldout_acc", "reward", "verified"), smooth: int = 3,
              claim: str = "", own_scale=("reward",)):
    """One panel per key, one line per run ({label: TrainResult}); per-step keys smoothed.

    Keys in ``own_scale`` (the training reward: outcome, process and learned rewards live on
    different scales) get one panel per run, each with its own y axis, instead of one shared
    panel. ``claim`` (e.g. "C13") ends every title.
    """
    panels = [(k, None) for k in keys if k not in own_scale]
    panels += [(k, label) for k in keys if k in own_scale for label in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.8), squeeze=False)
    tag = f" ({claim})" if claim else ""
    for i, (ax, (key, only)) in enumerate(zip(axes[0], panels)):
        for j, (label, res) in enumerate(results.items()):
            if only is not None and label != only:
                continue
            rows = [r for r in res.history if key in r]
            ys = [r[key] for r in rows]
            ax.plot([r["step"] for r in rows], ys if key == "heldout_acc" else _smooth(ys, smooth),
                    "o-" if key == "heldout_acc" else "-", ms=3, color=f"C{j}", label=str(label))
        what = label_for(key) if only is None else f"{label_for(key)}, its own scale"
        ax.set(xlabel=label_for("step"), ylabel=what,
               title=(f"{key.replace('_', ' ')}: {only}" if only else what.split(" (")[0]) + tag)
        ax.title.set_fontsize(10)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_difficulty_bins(before: dict, after: dict, names=("hard", "medium", "easy"),
                         labels=("base policy", "after training")):
    """Pass rate and share of all-zero groups per measured-difficulty bin, before and after
    training: two ``refimpl.methods.reinforce_analysis.pass_rate_by_bin`` results."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    xs = range(len(names))
    for ax, key, what in zip(axes, ("pass_rate", "all_zero"),
                             ("sampled pass rate", "share of groups with every reward 0")):
        for j, (res, label) in enumerate(zip((before, after), labels)):
            ax.bar([x + (j - 0.5) * 0.38 for x in xs], res[key], 0.38, color=f"C{j}", label=label)
        ax.set_xticks(list(xs), [f"{n}\n({k} prompts)" for n, k in zip(names, before["prompts"])])
        ax.set(xlabel="prompts, binned by the base's measured pass rate", ylabel=what, ylim=(0, 1))
        ax.legend(fontsize=10)
    axes[0].set_title("Pass rate by measured difficulty (C12)", fontsize=11)
    axes[1].set_title("Groups that carry no gradient (C12)", fontsize=11)
    fig.tight_layout()
    return fig
