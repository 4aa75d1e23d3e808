"""Figures of the KL lab (notebook 03b, claim C18). Each returns a matplotlib Figure."""
from __future__ import annotations

import torch
from matplotlib.figure import Figure


def plot_kl_gradients(expected: dict, true: dict) -> Figure:
    """Grouped bars, one group per logit: the exact expected gradient of each way of adding
    the KL ({way: (V,)}, from ``kl_lab.expected_gradient``) beside the true gradients of the
    reverse and the forward KL ({"reverse": (V,), "forward": (V,)}, hatched)."""
    series = {**{f"true grad, {k} KL": v for k, v in true.items()}, **expected}
    V = len(next(iter(series.values())))
    width = 0.8 / len(series)
    fig = Figure(figsize=(11, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, g) in enumerate(series.items()):
        hatched = name.startswith("true")
        ax.bar([v + (i - len(series) / 2 + 0.5) * width for v in range(V)], g.tolist(), width,
               label=name, hatch="//" if hatched else None,
               color="white" if hatched else f"C{i}", edgecolor=f"C{i}")
    ax.axhline(0, color="black", lw=0.6)
    ax.set(xlabel="logit z_y of outcome y", ylabel="expected gradient d loss / d z_y",
           xticks=list(range(V)),
           title="C18: the expected gradient of each KL estimator used as a loss")
    ax.legend(fontsize=10, loc="center left", bbox_to_anchor=(1.01, 0.5))   # beside: no bar hidden
    return fig


def plot_k3_precision(logratio: torch.Tensor, errors: dict) -> Figure:
    """Relative error of k3 against delta = log pi_ref - log pi_theta on log-log axes, one line
    per way of computing it ({name: (n,)} from ``kl_lab.k3_relative_error``; positive delta only)."""
    keep = logratio > 0
    x = logratio[keep].tolist()
    fig = Figure(figsize=(5.5, 3.4))
    ax = fig.add_subplot()
    for name, err in errors.items():
        ax.plot(x, err[keep].clamp_min(1e-9).tolist(), "o-", ms=2.5, label=f"k3 = {name}")
    ax.axhline(1.0, color="grey", ls="--", lw=1, label="100% error (no correct digit)")
    ax.set(xscale="log", yscale="log", xlabel="delta = log pi_ref - log pi_theta (float32)",
           ylabel="relative error of k3 (vs float64)",
           title="C18: k3 near the reference, expm1 vs exp(x) - 1 - x")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
