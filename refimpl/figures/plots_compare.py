"""Figures for notebook 06 and ``python -m refimpl compare``: held-out accuracy of each method
against its share of the run, wall time and estimated FLOPs
(``refimpl.experiments.head_to_head.compare``'s results), and pass@k before and after training
(``refimpl.core.evaluation.sampling_profile``). Each function returns the Figure.

Every method of a head-to-head is evaluated after the same shares of its run
(``compare.eval_fractions``), so every curve has the same evaluation points. With fewer than
``compare_report.MIN_SEEDS_FOR_CI`` seeds each seed's run is drawn as its own line (an interval
from two runs means nothing); with more, the mean over seeds at each evaluation point with its
95% t interval.
"""
from __future__ import annotations

from pathlib import Path

from refimpl.core import stats
from refimpl.experiments.head_to_head.compare import CompareResult
from refimpl.experiments.head_to_head.compare_report import MIN_SEEDS_FOR_CI
from refimpl.methods.registry import LABELS

X_AXES = {"progress": "share of the run's update steps",
          "time_s": "training wall time (s)",
          "flops": "estimated training compute"}                # x axis -> its title
FLOP_UNITS = ((1e15, "PFLOP"), (1e12, "TFLOP"), (1e9, "GFLOP"), (1.0, "FLOP"))


def flop_unit(largest: float) -> tuple[float, str]:
    """(scale, name) of the FLOP unit in which ``largest`` reads as a number >= 1, so that an
    axis shows plain numbers such as 350 GFLOP rather than an offset like 1e11."""
    return next(((s, u) for s, u in FLOP_UNITS if largest >= s), FLOP_UNITS[-1])


def _curves(rs, x: str, scale: float) -> list:
    """[(xs, ys)] of each run in ``rs`` (records of one method): ``x`` / scale and accuracy."""
    return [([p[x] / scale for p in r["curve"]], [p["heldout_acc"] for p in r["curve"]])
            for r in rs]


def _draw_method(ax, label, curves, color, dodge: float = 0.0) -> None:
    """One method: each run's line when there are fewer than MIN_SEEDS_FOR_CI runs (or their
    evaluation points differ), else the mean at each evaluation point with its 95% t interval
    (x: the mean x of the point, shifted by ``dodge`` so that intervals do not overlap)."""
    n = len(curves)
    if n < MIN_SEEDS_FOR_CI or len({len(xs) for xs, _ in curves}) > 1:
        for j, (xs, ys) in enumerate(curves):
            ax.plot(xs, ys, "o" + ("-", "--", ":")[j % 3], color=color, ms=3.5, lw=1.2,
                    label=f"{label}, {n} seed{'s' * (n != 1)}" if j == 0 else None)
        return
    xm = [sum(c[0][i] for c in curves) / n + dodge for i in range(len(curves[0][0]))]
    cis = [stats.t_interval([c[1][i] for c in curves]) for i in range(len(xm))]
    ym = [ci["mean"] for ci in cis]
    ax.errorbar(xm, ym, yerr=[[m - ci["lo"] for m, ci in zip(ym, cis)],
                              [ci["hi"] - m for m, ci in zip(ym, cis)]],
                fmt="o-", color=color, ms=3.5, lw=1.2, capsize=2.5, label=f"{label}, {n} seeds")


def plot_compare(result: CompareResult, x: str = "progress", ax=None):
    """Held-out accuracy of each method against ``x``: "progress" (the share of the run's update
    steps; for an online method also its share of a sample budget, while an offline method has
    drawn all its samples before step 0), "time_s" or "flops" (in a plain unit, ``flop_unit``).
    Returns the Figure."""
    import matplotlib.pyplot as plt

    if x not in X_AXES:
        raise ValueError(f"unknown x {x!r}: use one of {sorted(X_AXES)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5.6, 3.6))
    by_method = result.by_method()
    scale, unit = 1.0, ""
    if x == "flops":
        scale, unit = flop_unit(max(p["flops"] for rs in by_method.values() for r in rs
                                    for p in r["curve"]))
    for i, (m, rs) in enumerate(by_method.items()):
        dodge = 0.008 * (i - (len(by_method) - 1) / 2) if x == "progress" else 0.0
        _draw_method(ax, LABELS[m], _curves(rs, x, scale), f"C{i}", dodge)
    ax.set(xlabel=X_AXES[x] + (f" ({unit})" if unit else ""), ylabel="held-out greedy accuracy",
           title=f"C17: held-out accuracy, {result.meta.get('budget', '')} per run")
    ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.legend(fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


def _spread_note(result: CompareResult) -> str:
    seeds = list(result.config.seeds)
    if len(seeds) >= MIN_SEEDS_FOR_CI:
        return f"mean and 95% t interval over {len(seeds)} seeds"
    styles = ", ".join(f"{('solid', 'dashed')[j]} seed {s}" for j, s in enumerate(seeds))
    return f"each seed's run ({styles}; too few for an interval)"


def plot_compare_panels(result: CompareResult):
    """plot_compare against the share of the run, wall time and FLOPs side by side, with one
    legend for the three. Returns the Figure."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
    titles = {"progress": "against the share of each run", "time_s": "against wall time",
              "flops": "against estimated FLOPs (C16)"}
    for ax, x in zip(axes, X_AXES):
        plot_compare(result, x, ax=ax)
        ax.set_title(titles[x], fontsize=11)
        ax.get_legend().remove()
        ax.yaxis.set_tick_params(labelleft=True)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=10,
               frameon=False)
    fig.suptitle(f"C16/C17: held-out accuracy from one base at one budget "
                 f"({result.meta.get('budget', '')}); {_spread_note(result)}", fontsize=12)
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig


def plot_pass_at_k_race(profiles: dict,
                        title: str = "pass@k of the base and of each trained policy (no claim)"):
    """pass@k against k (log-2 axis) of each policy in ``profiles`` ({name: a
    ``sampling_profile`` result}; names are ``LABELS`` keys, "base" for the untrained base,
    drawn dashed). Returns the Figure."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, (name, prof) in enumerate(profiles.items()):
        curve = prof["pass_at_k"]
        ks = sorted(curve)
        style = dict(color="black", ls="--") if name == "base" else dict(color=f"C{i - 1}", ls="-")
        ax.plot(ks, [curve[k] for k in ks], marker="o", ms=3.5, label=LABELS.get(name, name), **style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set(xlabel=f"k (samples per problem, of n = {profiles[next(iter(profiles))]['n']})",
           ylabel="pass@k (share of problems)", ylim=(0, 1), title=title)
    ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def save_figures(result: CompareResult, out) -> dict:
    """Write acc_vs_{progress,time,flops}.png (``plot_compare``) to the folder ``out``.
    Returns {"fig_<x>": path}."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for x in X_AXES:
        fig = plot_compare(result, x)
        paths[f"fig_{x}"] = str(out / f"acc_vs_{x.replace('_s', '')}.png")
        fig.savefig(paths[f"fig_{x}"], dpi=110)
        plt.close(fig)
    return paths
