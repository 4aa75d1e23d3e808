"""Figures of the run clinic (``refimpl.experiments.debugging.clinic``): one case's dashboard, the broken
and the fixed run on the same axes, one small panel per metric the case names. Each function
returns the Figure (``save_dashboard`` writes it to a PNG)."""
from __future__ import annotations

import textwrap
from pathlib import Path

from refimpl.experiments.debugging.clinic import get_case
from refimpl.experiments.debugging.clinic_case import Case, Dashboard

# the broken run is drawn wider and first, so that it still shows where the fixed run overlaps it
STYLE = {"broken": {"color": "#c62828", "label": "broken run", "lw": 2.6},
         "fixed": {"color": "#1565c0", "label": "fixed run", "lw": 1.4}}


def _check_dashboards(case: Case, broken: Dashboard, fixed: Dashboard) -> None:
    """Raise TypeError/ValueError unless both dashboards are dicts with "step" and at least one
    of them has each of the case's panels (a metric that one run does not log is drawn for the
    other alone)."""
    for variant, d in (("broken", broken), ("fixed", fixed)):
        if not isinstance(d, dict) or "step" not in d:
            raise TypeError(f"the {variant} dashboard must be a dict with a 'step' list, "
                            f"got {type(d).__name__}")
    missing = [m for m in case.panels if m not in broken and m not in fixed]
    if missing:
        raise ValueError(f"case {case.name!r}: neither dashboard has {missing}")


def plot_dashboard(case: Case, broken: Dashboard, fixed: Dashboard):
    """The dashboard of ``case``: a panel per metric of ``case.panels`` (the deciding one first,
    its title in bold), the broken run in red (wide) and the fixed run in blue (narrow, on top)
    against the training step, and the case's title above them. Returns the Figure."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    _check_dashboards(case, broken, fixed)
    n = len(case.panels)
    cols = n if n <= 4 else 3                          # one row up to 4 panels
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows + 0.8), squeeze=False)
    for i, (ax, metric) in enumerate(zip(axes.flat, case.panels)):
        for variant, d in (("broken", broken), ("fixed", fixed)):
            if metric in d:
                ax.plot(d["step"], d[metric], **STYLE[variant])
        ax.set_title(metric + (" (read first)" if i == 0 else ""), fontsize=11,
                     fontweight="bold" if i == 0 else "normal")
        ax.set_xlabel("step", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=10)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=10, frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(case.title, 90)), fontsize=12)
    fig.tight_layout(rect=(0, 0.08 / rows, 1, 1))
    return fig


def save_dashboard(case: Case, broken: Dashboard, fixed: Dashboard, path) -> Path:
    """plot_dashboard written to ``path`` (a PNG) and closed; returns the path."""
    import matplotlib.pyplot as plt

    fig = plot_dashboard(case, broken, fixed)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_record(record: dict):
    """plot_dashboard of a clinic record (``refimpl.experiments.debugging.clinic.load_record``)."""
    d = record["dashboards"]
    return plot_dashboard(get_case(record["name"]), d["broken"], d["fixed"])
