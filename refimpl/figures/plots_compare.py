"""Figures for notebook 06 and ``python -m refimpl compare``: held-out accuracy of each method
against wall time, generated samples and estimated FLOPs (``refimpl.experiments.head_to_head.compare``'s results).
Each function returns the Figure."""
from __future__ import annotations

from pathlib import Path

from refimpl.experiments.head_to_head.compare import CompareResult
from refimpl.methods.registry import LABELS, METHODS

X_AXES = {"time_s": "training wall time (s)", "samples": "completions generated",
          "flops": "estimated training FLOPs"}                # x axis -> its title


def plot_compare(result: CompareResult, x: str = "time_s", ax=None):
    """Held-out accuracy against ``x`` ("time_s", "samples" or "flops"): for each method the
    mean over seeds (line, on the x range every seed reached), the min-max band, and each
    seed's final point. Offline methods make all their samples first: on the samples axis
    their curve is a step. Returns the Figure."""
    import matplotlib.pyplot as plt
    import numpy as np

    if x not in X_AXES:
        raise ValueError(f"unknown x {x!r}: use one of {sorted(X_AXES)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.2, 3.4))
    for i, (m, rs) in enumerate(result.by_method().items()):
        color = f"C{i}"
        curves = []
        for r in rs:
            xs = np.array([p[x] for p in r["curve"]], dtype=float)
            ys = np.array([p["heldout_acc"] for p in r["curve"]], dtype=float)
            curves.append((xs, ys))
            ax.plot(xs[-1], ys[-1], "o", color=color, ms=4, alpha=0.7)
        hi = min(c[0][-1] for c in curves)
        grid = np.unique(np.concatenate([c[0][c[0] <= hi] for c in curves]))
        step = x == "samples" and not METHODS[m].online
        interp = []
        for xs, ys in curves:
            if step:      # value of the last point at or before each grid x
                interp.append(ys[np.searchsorted(xs, grid, side="right") - 1])
            else:
                interp.append(np.interp(grid, xs, ys))
        Y = np.stack(interp)
        kw = {"drawstyle": "steps-post"} if step else {}
        ax.plot(grid, Y.mean(0), "-", color=color, label=f"{LABELS[m]} (n={len(rs)})", **kw)
        ax.fill_between(grid, Y.min(0), Y.max(0), color=color, alpha=0.18,
                        step="post" if step else None)
    ax.set(xlabel=X_AXES[x], ylabel="held-out greedy accuracy",
           title=f"C17: same base, same budget ({result.meta.get('budget', '')})")
    ax.legend(fontsize=7)
    ax.figure.tight_layout()
    return ax.figure


def plot_compare_panels(result: CompareResult):
    """plot_compare against wall time, samples and FLOPs side by side. Returns the Figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    for ax, x in zip(axes, ("time_s", "samples", "flops")):
        plot_compare(result, x, ax=ax)
        ax.set_title(f"C16/C17: accuracy vs {X_AXES[x].split(' (')[0]}", fontsize=9)
    fig.suptitle(f"Same base, same budget ({result.meta.get('budget', '')}), "
                 f"mean and min-max over seeds {list(result.config.seeds)}", fontsize=10)
    fig.tight_layout()
    return fig


def save_figures(result: CompareResult, out) -> dict:
    """Write acc_vs_{time,samples,flops}.png (``plot_compare``) to the folder ``out``.
    Returns {"fig_<x>": path}."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for x in ("time_s", "samples", "flops"):
        fig = plot_compare(result, x)
        paths[f"fig_{x}"] = str(out / f"acc_vs_{x.replace('_s', '')}.png")
        fig.savefig(paths[f"fig_{x}"], dpi=110)
        plt.close(fig)
    return paths

