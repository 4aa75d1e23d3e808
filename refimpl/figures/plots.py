"""Plain matplotlib figures shared by the notebooks. Each returns the Figure, so a test can
call it without a display."""
from __future__ import annotations

import matplotlib.pyplot as plt

# Readable axis titles (with units) for the history keys the trainers log (the methods' own
# labels are refimpl.methods.registry.LABELS).
HISTORY_AXES = {
    "heldout_acc": "held-out greedy accuracy (share correct)",
    "reward": "mean reward per completion",
    "verified": "share of samples the verifier accepts",
    "grad_norm": "gradient norm before clipping",
    "step": "training step",
    "samples": "completions generated",
    "time_s": "training wall-clock time (s)",
    "kl": "KL to pi_ref per token (nats)",
    "loss": "loss",
}


def label_for(key: str) -> str:
    """The axis label of a history key (the key itself when it has none)."""
    return HISTORY_AXES.get(key, key)


def plot_sft_history(history, target=None):
    """Training loss per step and held-out greedy accuracy at each checkpoint."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax1.plot([r["step"] for r in history], [r["loss"] for r in history], lw=1, label="batch loss")
    ax1.set(xlabel="SFT step", ylabel="NLL per completion token (nats)", yscale="log",
            title="SFT loss of the base (set-up)")
    ev = [r for r in history if "heldout_acc" in r]
    ax2.plot([r["step"] for r in ev], [r["heldout_acc"] for r in ev], "o-", ms=3, label="base")
    if target is not None:
        ax2.axhline(target, ls="--", c="grey", label=f"stop at >= {target:.2f}")
    ax2.set(xlabel="SFT step", ylabel=label_for("heldout_acc"), ylim=(0, 1),
            title="Held-out accuracy of the base (set-up)")
    for ax in (ax1, ax2):
        ax.legend(fontsize=10)
    fig.tight_layout()
    return fig


def plot_pass_at_k(curves: dict, title="pass@k of the base policy, per carry level (set-up)"):
    """``curves``: {label: {k: pass@k}} -> one line per label on a log-2 k axis."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for label, curve in curves.items():
        ks = sorted(curve)
        ax.plot(ks, [curve[k] for k in ks], "o-", label=str(label))
    ax.set(xscale="log", xlabel="k (samples per problem)", ylabel="pass@k (share of problems)",
           ylim=(0, 1), title=title)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.legend(title="level", fontsize=10)
    fig.tight_layout()
    return fig


def plot_curves(results: dict, key: str = "heldout_acc", x: str = "step", ax=None, title=None,
                claim: str = ""):
    """One line per TrainResult in ``results`` ({label: TrainResult}) of ``key`` against ``x``;
    ``claim`` (e.g. "C17") ends the title."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for label, res in results.items():
        rows = [r for r in res.history if key in r]
        ax.plot([r[x] for r in rows], [r[key] for r in rows], "o-", ms=3, label=str(label))
    title = title or f"{label_for(key)} during training"
    ax.set(xlabel=label_for(x), ylabel=label_for(key), title=f"{title} ({claim})" if claim else title)
    ax.legend(fontsize=10)
    ax.figure.tight_layout()
    return ax.figure


def plot_step_phases(bench: dict):
    """Where one training step's time goes, per method and implementation.

    bench: ``benchmarks/bench_vs_trl.py``'s result ({method: {"median_ms": {impl: {phase: ms}},
    "floor_ms", "floor_shared_ms", "unit", "per_s"}}). One panel per method, one stacked
    horizontal bar per implementation (median ms of each phase), and a dashed tick at the
    compute floor of the work that implementation does (TRL: every row runs its prompt;
    refimpl: each prompt runs once per group).
    """
    methods = list(bench)
    fig, axes = plt.subplots(1, len(methods), figsize=(4.6 * len(methods), 2.6), squeeze=False)
    legend = {}                                             # label -> artist, once per figure
    for ax, method in zip(axes[0], methods):
        res = bench[method]
        impls = list(res["median_ms"])
        for y, impl in enumerate(impls):
            left = 0.0
            for phase, ms in res["median_ms"][impl].items():
                if phase == "step" or ms <= 0:
                    continue
                color = f"C{list(legend).index(phase) if phase in legend else len(legend)}"
                bar = ax.barh(y, ms, left=left, color=color, label=phase)
                legend.setdefault(phase, bar)
                left += ms
            floor = res["floor_ms"] if impl == "trl" else res["floor_shared_ms"]
            line, = ax.plot([floor, floor], [y - 0.45, y + 0.45], "k--", lw=1.2,
                            label="compute floor")
            legend.setdefault("compute floor", line)
        ax.set_yticks(range(len(impls)), [f"{n}\n{res['per_s'][n]:.0f} {res['unit']}/s"
                                          for n in impls])
        ax.set(xlabel="ms per step (median)", ylabel="implementation, throughput",
               title=method.upper())
    fig.legend(legend.values(), legend.keys(), loc="center right", fontsize=10)
    fig.suptitle("Where one training step's time goes, refimpl vs TRL (speed, no claim)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


class SliderFigure:
    """A slider that redraws a figure, which also reads in a notebook that was never run.

    draw(value) -> matplotlib Figure; slider: an ipywidgets slider (its ``description``
    names the parameter, its ``value`` is the starting point). Displayed in a running
    notebook it is ``ipywidgets.interactive``: the slider, and the figure drawn in the
    widget's output. Its display bundle also carries a static PNG of ``draw(slider.value)``
    and a one-line note as plain text, which is what a notebook viewer shows where widgets
    are not rendered (an untrusted notebook, a notebook opened before running it).
    """

    def __init__(self, draw, slider):
        import ipywidgets as widgets
        from IPython.display import display
        self.draw, self.slider = draw, slider
        name = slider.description

        def show(**kw):
            display(draw(kw[name]))
        self.widget = widgets.interactive(show, **{name: slider})

    def static_png(self) -> bytes:
        """The figure at the slider's starting value, with a note to run the cell."""
        import io
        fig = self.draw(self.slider.value)
        fig.text(0.5, 0.005, f"static view at {self.slider.description} = {self.slider.value:g}: "
                 "run this cell to get the slider", ha="center", va="bottom", fontsize=10,
                 color="dimgrey")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        return buf.getvalue()

    def _repr_mimebundle_(self, **kw):
        import base64
        bundle = self.widget._repr_mimebundle_(**kw)
        bundle["image/png"] = base64.b64encode(self.static_png()).decode()
        bundle["text/plain"] = (f"[slider for {self.slider.description}: run this cell to get it; "
                                "until then the figure shows its starting value]")
        return bundle
