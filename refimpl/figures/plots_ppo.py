"""Figures for the PPO-vs-GRPO and reward-hacking notebook. Each returns the Figure."""
from __future__ import annotations

import matplotlib.pyplot as plt


def _rows(result, key):
    rows = [r for r in result.history if key in r]
    return [r["step"] for r in rows], [r[key] for r in rows]


def plot_ppo_vs_grpo(ppo, grpo, x: str = "samples"):
    """Four panels: held-out accuracy of both runs against ``x`` (completions generated),
    PPO's value loss and its explained variance (separate axes: different scales), and the
    baselines' error |b(x) - p(x)| at the Monte-Carlo checks (critic V(x) vs group mean)."""
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.0))
    for label, res in (("PPO (critic)", ppo), ("GRPO (group)", grpo)):
        rows = [r for r in res.history if "heldout_acc" in r]
        axes[0].plot([r[x] for r in rows], [r["heldout_acc"] for r in rows], "o-", ms=3, label=label)
    axes[0].set(xlabel=f"{x} (completions generated)", ylabel="held-out greedy accuracy",
                title="Same completion budget (C15)", ylim=(0, 1))
    axes[1].plot(*_rows(ppo, "value_loss"), c="C2", label="PPO value loss")
    axes[1].set(xlabel="PPO step", ylabel="value loss (squared reward units)",
                title="PPO's critic: value loss (C15)")
    axes[2].plot(*_rows(ppo, "explained_variance"), c="C4", label="explained variance")
    axes[2].axhline(0, c="grey", lw=0.8, label="0: no better than a constant")
    axes[2].set(xlabel="PPO step", ylabel="explained variance of returns (1 = perfect)",
                title="PPO's critic: explained variance (C15)", ylim=(-0.5, 1))
    axes[3].plot(*_rows(ppo, "value_mae_mc"), "o-", label="critic V(x)")
    axes[3].plot(*_rows(ppo, "baseline_mae_mc/group"), "s-", label="group mean (G samples)")
    axes[3].set(xlabel="PPO step", ylabel="mean |b(x) - p(x)| (pass-rate units)",
                title="Baseline error vs Monte Carlo (C15)")
    for ax in axes:
        ax.title.set_fontsize(10)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_advantage_quality(snapshot: dict, keys=("adv_corr_mc", "value_corr_mc")):
    """Bars of the correlations in an ``advantage_snapshot`` result: for each critic its
    advantage-vs-(r - p) and V(x)-vs-p(x) correlations, and GRPO's on the same samples."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    first = next(iter(snapshot.values()))
    labels = [f"PPO, {k}" for k in snapshot] + ["GRPO, group"]
    adv = [q["adv_corr_mc"] for q in snapshot.values()] + [first["adv_corr_mc/group"]]
    base = [q["value_corr_mc"] for q in snapshot.values()] + [first["baseline_corr_mc/group"]]
    xs = range(len(labels))
    ax.bar([i - 0.2 for i in xs], adv, width=0.4, label="corr(advantage, r - p(x))")
    ax.bar([i + 0.2 for i in xs], [0 if b != b else b for b in base], width=0.4,
           label="corr(baseline, p(x))")
    ax.set_xticks(list(xs), labels, fontsize=10)
    ax.axhline(0, c="grey", lw=0.8)
    ax.set(ylim=(-0.5, 1), xlabel="advantage estimator", ylabel="Pearson correlation",
           title="Advantage and baseline quality on fresh samples (C15)")
    ax.title.set_fontsize(11)
    ax.legend(fontsize=10, loc="lower left")
    fig.tight_layout()
    return fig


def plot_reward_hacking(hacked, honest, rm_label="reward model score", x: str = "step"):
    """Two panels: the learned reward the RM-trained run optimises (its mean training
    reward), and the verified held-out accuracy of the RM-trained and verifier-trained runs."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 3.8))
    a1.plot(*_rows(hacked, "reward"), c="C3", label="GRPO on the reward model")
    a1.set(xlabel="GRPO step", ylabel=rm_label, title="What GRPO optimises: the RM's score (C10)")
    a1.legend(fontsize=10)
    for label, res, c in (("GRPO on the reward model", hacked, "C3"),
                          ("GRPO on the verifier", honest, "C0")):
        rows = [r for r in res.history if "heldout_acc" in r]
        a2.plot([r[x] for r in rows], [r["heldout_acc"] for r in rows], "o-", ms=3, c=c, label=label)
    a2.set(xlabel=f"GRPO {x}", ylabel="verified held-out accuracy", ylim=(0, 1),
           title="What we wanted: verified accuracy (C10)")
    a2.legend(fontsize=10)
    for ax in (a1, a2):
        ax.title.set_fontsize(11)
    fig.tight_layout()
    return fig


def plot_dense_critic(run: dict, sparse_ev: float | None = None):
    """Two panels of a ``refimpl.methods.ppo_analysis.dense_critic_run`` result against the
    critic's training steps: its explained variance of the dense returns (with the Monte Carlo
    values' as the ceiling and, if given, the sparse-reward critic's of the C15 record), and
    the correlation of GAE(lambda) advantages with the Monte Carlo advantages, one line per
    lambda."""
    rows = run["rows"]
    steps = [r["step"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 4.0))
    a1.plot(steps, [r["explained_variance"] for r in rows], "o-", c="C4",
            label="critic on dense step rewards")
    a1.axhline(run["mc_ev"], c="C4", ls="--", lw=1, label="Monte Carlo values (ceiling)")
    if sparse_ev is not None:
        a1.axhline(sparse_ev, c="grey", ls=":", label="critic on the outcome reward (C15 record)")
    a1.set(xlabel="critic training step", ylabel="explained variance of returns-to-go",
           title="The critic learns on a dense reward (no claim)", ylim=(-0.1, 1))
    lams = [k.split("lam_")[1] for k in rows[0] if k.startswith("adv_corr/lam_")]
    for j, lam in enumerate(lams):
        a2.plot(steps, [r[f"adv_corr/lam_{lam}"] for r in rows], "o-", ms=4, c=f"C{j}",
                label=f"lambda = {lam}")
    a2.set(xlabel="critic training step", ylabel="corr(GAE advantage, true advantage)",
           title="GAE's lambda: bias of the critic vs noise of the returns (no claim)",
           ylim=(0, 1))
    for ax in (a1, a2):
        ax.title.set_fontsize(11)
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig
