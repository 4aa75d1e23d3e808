"""Figures for notebook 01 (DPO from RLHF): the exact bandit lab of ``refimpl.experiments.labs.bandit``.
Each function returns a matplotlib Figure (no pyplot state, so a test can call it)."""
from __future__ import annotations

import torch
from matplotlib.figure import Figure

from refimpl.experiments.labs.bandit import PreferenceBandit, beta_sweep, centred


def plot_tv_vs_pairs(rows: list[dict[str, float]]) -> Figure:
    """Log-log plot of the ``tv_vs_pairs`` table."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    n = [row["n_pairs"] for row in rows]
    for key, style, size, label in [("tv_dpo_opt", "o-", 9, "TV(DPO, pi*)"),
                                    ("tv_rlhf_opt", "s--", 4, "TV(RM + RLHF, pi*)"),
                                    ("tv_predicted", "k:", 0, "predicted (delta method)")]:
        ax.plot(n, [row[key] for row in rows], style, ms=size, label=label)
    gap = [max(row["tv_dpo_rlhf"], 1e-12) for row in rows]
    ax.plot(n, gap, "^-", color="grey", label="TV(DPO, RM + RLHF)")
    ax.set(xscale="log", yscale="log", xlabel="preference pairs",
           ylabel="total-variation distance (0 to 1)",
           title="C1: DPO and RM + RLHF reach the same pi* as data grows")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_optimal_policy(bandit: PreferenceBandit, betas, prompt: int = 0) -> Figure:
    """One panel per beta: pi_ref (outline) and pi* (filled) for one prompt; * marks argmax r.
    The claim and the prompt go in one figure title, each panel's title names only its beta and
    TV(pi*, pi_ref) on two short lines, so the titles of neighbouring panels cannot overlap."""
    ref = bandit.ref_probs[prompt]                                            # (N,)
    pis = beta_sweep(bandit.reward[prompt:prompt + 1], ref[None], betas)[:, 0]  # (len, N)
    best = bandit.reward[prompt].argmax().item()
    fig = Figure(figsize=(max(3.6 * len(pis), 5.4), 3.9))
    axes = fig.subplots(1, len(pis), squeeze=False)[0]
    x = range(ref.numel())
    for ax, beta, pi in zip(axes, betas, pis):
        ax.bar(x, pi.tolist(), color="tab:blue", alpha=0.7, label="pi*")
        ax.bar(x, ref.tolist(), fill=False, edgecolor="black", label="pi_ref")
        ax.plot([best], [1.02], "r*", markersize=10, label="argmax r")
        ax.set(ylim=(0, 1.08), xlabel="response", ylabel="probability", xticks=list(x))
        ax.set_title(f"beta = {float(beta):.3g}\nTV(pi*, pi_ref) = "
                     f"{0.5 * (pi - ref).abs().sum().item():.2f}", fontsize=11)
    fig.suptitle(f"C1: the optimal policy pi* (bars) and pi_ref (outlines) of prompt {prompt}",
                 fontsize=12)
    axes[-1].legend(fontsize=10, loc="upper left")
    fig.tight_layout()
    return fig


def plot_reward_match(true: torch.Tensor, estimate: torch.Tensor,
                      se: torch.Tensor | None = None) -> Figure:
    """Scatter of per-prompt-centred estimated vs true reward (M, N), +/- 2 se bars."""
    x, y = centred(true).flatten(), centred(estimate).flatten()  # (M*N,)
    fig = Figure(figsize=(4.5, 4))
    ax = fig.add_subplot()
    yerr = None if se is None else (2 * se).flatten().tolist()
    ax.errorbar(x.tolist(), y.tolist(), yerr=yerr, fmt="o", ms=4, capsize=2,
                label="(prompt, response)" + ("" if se is None else ", +/- 2 s.e."))
    lim = [min(x.min(), y.min()).item() - 0.2, max(x.max(), y.max()).item() + 0.2]
    ax.plot(lim, lim, "k--", lw=1, label="y = x")
    ax.set(xlabel="true reward (centred per prompt)",
           ylabel="beta log(pi / pi_ref) (centred per prompt)",
           title="C1: DPO's implied reward vs the true reward")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
