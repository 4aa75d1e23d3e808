"""Figures for notebooks 03a and 03b (GRPO): the clipped surrogate and its slope against the
ratio (03a), the share of uniform groups against G (with the ipywidgets control for G), the
gradient noise against G, advantages against the group's std, the difficulty bias of std
scaling, and a GRPO training history. The measurements they draw live in
``refimpl.methods.grpo_analysis``; each function returns the Figure.
"""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch

from refimpl.methods.grpo import prob_uniform_group
from refimpl.methods.grpo_analysis import expected_abs_advantage, surrogate_and_slope
from refimpl.figures.plots import SliderFigure


def _flat_spans(x: torch.Tensor, flat: torch.Tensor) -> list[tuple[float, float]]:
    """The (start, end) x-intervals of the runs of True in ``flat`` (both (N,), x sorted)."""
    spans, start = [], None
    for xi, fi in zip(x.tolist(), flat.tolist()):
        if fi and start is None:
            start = xi
        if not fi and start is not None:
            spans.append((start, prev))
            start = None
        prev = xi
    return spans + ([(start, prev)] if start is not None else [])


def plot_clipped_surrogate(clip_eps: float = 0.2, lo: float = 0.4, hi: float = 1.8):
    """The clipped surrogate of one token, min(rho A, clip(rho, 1 - eps, 1 + eps) A), and its
    slope d/d rho against the ratio rho, for A = +1 (left) and A = -1 (right); the ranges of
    rho where the slope is exactly 0 (the clip is active) are shaded. Both curves come from
    ``grpo_loss`` and autograd (``grpo_analysis.surrogate_and_slope``) at 561 ratios."""
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 6.6))
    rho = torch.linspace(lo, hi, 561, dtype=torch.float64)
    for col, A in enumerate((1.0, -1.0)):
        objective, slope = surrogate_and_slope(rho, A, clip_eps)
        for ax in axes[:, col]:
            for i, (a, b) in enumerate(_flat_spans(rho, slope == 0)):
                ax.axvspan(a, b, color="0.85", label="clip active: slope 0" if i == 0 else None)
            ax.axvline(1.0, color="0.5", lw=0.8)
            ax.set_xlabel(r"ratio $\rho = \pi_\theta / \pi_{old}$")
        axes[0, col].plot(rho, rho * A, "k:", label=r"unclipped $\rho A$")
        axes[0, col].plot(rho, objective, "C0", lw=2, label="clipped surrogate")
        axes[1, col].plot(rho, slope, "C3", lw=2, label=r"slope d/d$\rho$")
        side = r"above $1+\epsilon$" if A > 0 else r"below $1-\epsilon$"
        axes[0, col].set(title=f"A = {A:+.0f}: the term is flat {side}", ylabel="term of the token")
        axes[1, col].set(title=f"A = {A:+.0f}: the slope, 0 in the shaded band",
                         ylabel=r"slope d/d$\rho$", ylim=(-1.4, 1.4))
        for ax in axes[:, col]:
            ax.legend(fontsize=10, loc="upper left" if A > 0 else "lower left")
    fig.suptitle("The clipped surrogate and its slope against the ratio "
                 rf"(set-up, $\epsilon$ = {clip_eps})", fontsize=12)
    fig.tight_layout()
    return fig


def _log2_axis(ax, ticks):
    """Log-scaled x axis labelled only at ``ticks``."""
    from matplotlib.ticker import NullFormatter
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_uniform_share(pass_rates: torch.Tensor, Gs=(2, 4, 8, 16), per_prompt=None, ax=None):
    """Left: p^G + (1-p)^G against p, with the base's per-prompt pass rates as a rug.
    Right (if per_prompt, a dict G -> estimate, is given): the share predicted from the mean
    pass rate and from the per-prompt pass rates, against G."""
    axes = [ax] if ax is not None else plt.subplots(1, 2 if per_prompt else 1,
                                                      figsize=(10 if per_prompt else 5, 3.4))[1]
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    p = torch.linspace(0, 1, 201)
    for G in Gs:
        axes[0].plot(p, prob_uniform_group(p, G), label=f"G = {G}")
    axes[0].plot(pass_rates, torch.zeros_like(pass_rates), "|", color="k", ms=12, alpha=0.5)
    axes[0].set(xlabel="pass rate p of a prompt", ylabel="P(group is uniform)",
                title=r"C8: P(uniform group) $= p^G + (1-p)^G$ (ticks: the base's prompts)")
    axes[0].plot([], [], "|", color="k", ms=12, alpha=0.5, label="a prompt's pass rate")
    axes[0].legend(fontsize=10)
    if per_prompt:
        Gx = sorted(per_prompt)
        pbar = pass_rates.mean().item()
        axes[1].plot(Gx, [per_prompt[k] for k in Gx], "o-", label="per-prompt p: E[p^G + (1-p)^G]")
        axes[1].plot(Gx, [prob_uniform_group(pbar, k) for k in Gx], "s--",
                     label=f"mean p = {pbar:.2f}: " + r"$\bar p^G + (1-\bar p)^G$")
        axes[1].set(xlabel="group size G", ylabel="share of uniform groups",
                    title="C8: predicted share of zero-gradient groups")
        _log2_axis(axes[1], Gx)
        axes[1].legend(fontsize=10)
    plt.tight_layout()
    return axes


def uniform_share_widget(pass_rates: torch.Tensor):
    """A slider for the group size G that redraws p^G + (1-p)^G and both predictions
    (a ``refimpl.figures.plots.SliderFigure``: a static figure until the cell is run)."""
    import ipywidgets as widgets


    def draw(G):
        ax = plot_uniform_share(pass_rates, Gs=(G,))[0]
        pbar = pass_rates.mean().item()
        per = prob_uniform_group(pass_rates.double(), G).mean().item()  # plug-in, for display
        ax.set_title(f"C8, G = {G}: P(uniform group) predicted from the mean p "
                     f"{prob_uniform_group(pbar, G):.3f}, per prompt {per:.3f}", fontsize=10)
        fig = ax.figure
        plt.close(fig)                       # drawn by the widget's output, not by pyplot
        return fig
    return SliderFigure(draw, widgets.IntSlider(value=8, min=2, max=32, step=1, description="G"))


# ------------------------------------------------------------- gradient noise vs G (C9)

def plot_gradient_noise(rows: list[dict], ax=None):
    """Relative noise sqrt(Var g) / ||E g|| of the GRPO gradient against G, with the
    1/sqrt(G) slope through the first point for reference."""
    ax = ax or plt.subplots(figsize=(5, 3.4))[1]
    G = [r["G"] for r in rows]
    rel = [r["rel_noise"] for r in rows]
    ax.plot(G, rel, "o-", label="measured")
    ax.plot(G, [rel[0] * math.sqrt(G[0] / k) for k in G], "k:", label=r"$\propto 1/\sqrt{G}$")
    ax.set(yscale="log", xlabel="group size G",
           ylabel=r"$\sqrt{\mathrm{Var}\,g}\;/\;\|\mathbb{E}\,g\|$",
           title="C9: noise of the GRPO gradient against group size")
    _log2_axis(ax, G)
    ax.legend(fontsize=10)
    return ax


# ------------------------------------------------- std scaling and difficulty bias (C11)

def plot_advantage_vs_std(stds, abs_scaled, abs_none, ax=None, real=None):
    """Mean |A| per group against the group's reward std, with and without std scaling.

    stds, abs_scaled, abs_none: (n,) synthetic groups (open markers); real: optional
    (stds, abs_scaled, abs_none) of groups sampled from the model (filled markers)."""
    ax = ax or plt.subplots(figsize=(5.5, 3.6))[1]
    sets = [("synthetic", (stds, abs_scaled, abs_none), "none")]
    if real is not None:
        sets.append(("real samples", real, None))
    for name, (sd, a_s, a_n), face in sets:
        ax.plot(sd, a_s, "o", ms=5, color="C0", mfc=face, label=f"{name}, divided by std + eps")
        ax.plot(sd, a_n, "s", ms=5, color="C1", mfc=face, label=f"{name}, not divided (Dr. GRPO)")
    ax.set(xscale="log", yscale="log", xlabel="group reward std (reward units)",
           ylabel="mean |advantage| in the group", title="C11: std scaling vs group variance")
    ax.legend(fontsize=10, loc="lower right")
    return ax


def plot_difficulty_bias(G: int = 8, eps: float = 1e-4, ax=None):
    """Expected advantage mass per prompt against its pass rate, normalised at p = 0.5."""
    ax = ax or plt.subplots(figsize=(5, 3.4))[1]
    ps = [i / 100 for i in range(1, 100)]
    for scale, style in (("group", "-"), ("none", "--")):
        w = [expected_abs_advantage(p, G, scale, eps) for p in ps]
        mid = expected_abs_advantage(0.5, G, scale, eps)
        ax.plot(ps, [x / mid for x in w], style, label=f"scale='{scale}'")
    ax.set(xlabel="pass rate p of the prompt", ylabel="E sum|A| (relative to p = 0.5)",
           title=f"C11: weight of a prompt in the update (G = {G})")
    ax.legend(fontsize=10)
    return ax


# --------------------------------------------------------------------- training curves

def plot_grpo_history(history: list[dict], predicted_share: float | None = None, axes=None,
                      window: int = 5):
    """Three panels: held-out accuracy and mean reward; shares of all-wrong, all-correct and
    uniform groups per step (faint) and their ``window``-step running means, with an optional
    predicted share at the start; KL to the reference and the clipped share."""
    axes = axes if axes is not None else plt.subplots(1, 4, figsize=(16, 3.4))[1]
    rows = [r for r in history if "reward" in r]
    steps = [r["step"] for r in rows]
    ev = [r for r in history if "heldout_acc" in r]
    axes[0].plot([r["step"] for r in ev], [r["heldout_acc"] for r in ev], "o-", label="held-out greedy acc")
    axes[0].plot(steps, [r["reward"] for r in rows], alpha=0.6,
                 label="mean reward (samples at temperature 1)")
    axes[0].set(xlabel="GRPO step", ylabel="share correct", title="GRPO on the verifier (C8)")
    for key, lab, ls in (("frac_all_wrong", "all wrong", "-"), ("frac_all_correct", "all correct", "-"),
                         ("frac_reward_zero_std", "uniform (either)", "--")):
        vals = [r[key] for r in rows]
        smooth = [sum(vals[max(0, i - window + 1):i + 1]) / len(vals[max(0, i - window + 1):i + 1])
                  for i in range(len(vals))]
        line, = axes[1].plot(steps, smooth, ls, lw=2, label=f"{lab} ({window}-step mean)")
        axes[1].plot(steps, vals, lw=0.8, alpha=0.35, color=line.get_color())
    if predicted_share is not None:
        axes[1].axhline(predicted_share, color="grey", ls=":", label="predicted at the base")
    axes[1].set(xlabel="GRPO step", ylabel="share of groups", title="C8: zero-gradient groups")
    axes[2].plot(steps, [r.get("kl", float("nan")) for r in rows], c="C4", label="kl (k3 estimate)")
    axes[2].set(xlabel="GRPO step", ylabel="KL to pi_ref per token (nats)",
                title="C18: KL to the reference")
    axes[3].plot(steps, [r.get("clip_ratio", float("nan")) for r in rows], c="C5", label="clip_ratio")
    axes[3].set(xlabel="GRPO step", ylabel="share of tokens clipped", title="Clipped share of tokens")
    for ax in axes:
        ax.legend(fontsize=10)
    plt.tight_layout()
    return axes
