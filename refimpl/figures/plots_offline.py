"""Figures of exercise 3 (notebook 06, claim C3): what offline pairs can and cannot fix.
Each function returns the Figure; the modes the preference pairs covered are marked."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from refimpl.experiments.labs.offline_online import MODES, rate_changes


def _tag(mode: str, covered) -> str:
    return f"{mode} ({'covered by the pairs' if mode in covered else 'not in the pairs'})"


def plot_tabular(dpo_rows: list, pg_rows: list, keys=("units_wrong", "carry_wrong"),
                 covered=("carry_wrong",)):
    """Two panels (DPO, on-policy gradient): each of ``keys`` against the step; the keys
    in ``covered`` are the mistakes the DPO pairs contain (solid), the others dashed."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, rows, title in ((axes[0], dpo_rows, "C3: DPO on pairs covering one mode"),
                            (axes[1], pg_rows, "C3: on-policy gradient with the verifier")):
        for k in keys:
            ax.plot([r["step"] for r in rows], [r[k] for r in rows], "-" if k in covered else "--",
                    label=_tag(k, covered))
        ax.set(xlabel="gradient step", ylabel="probability of the mistake", title=title)
        ax.title.set_fontsize(10)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_rate_changes(results: list, covered=("carry",)):
    """Bars of the change of each mode's step error rate from the base, per method (mean over
    the ``results`` of run_offline_online, one per seed; dots: each seed). Modes in
    ``covered`` are those the DPO pairs' rejected answers contain (solid bars); the others
    (hatched) are outside the preference data."""
    changes = [rate_changes(r) for r in results]
    methods = list(changes[0])
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    width = 0.8 / len(MODES)
    for j, mode in enumerate(MODES):
        vals = np.array([[c[m][mode] for m in methods] for c in changes])       # (seeds, methods)
        x = np.arange(len(methods)) + (j - (len(MODES) - 1) / 2) * width
        ax.bar(x, vals.mean(0), width, label=_tag(mode, covered), color=f"C{j}", alpha=0.8,
               hatch=None if mode in covered else "//", edgecolor="white")
        for row in vals:
            ax.plot(x, row, "k.", ms=4)
    ax.plot([], [], "k.", ms=4, label="one seed")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(np.arange(len(methods)), methods)
    ax.set(xlabel="method", ylabel="error rate - base rate (share of answers)",
           title="C3: change of each step's error rate from the base")
    fig.legend(fontsize=10, title="mode", loc="outside right upper")     # beside the bars, never on them
    return fig
