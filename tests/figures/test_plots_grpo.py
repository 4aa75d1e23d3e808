"""The clipped-surrogate figure of notebook 03a shades exactly the ratios where the clip sets
the slope to 0 (rho > 1 + eps for A > 0, rho < 1 - eps for A < 0). (Every course figure's text
size and titles are checked in test_figure_text.py.)"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402

from refimpl.figures import plots_grpo  # noqa: E402


def shaded_spans(ax) -> list[tuple[float, float]]:
    """The x-extents of the axvspan patches of a panel (Polygon or Rectangle by version)."""
    spans = []
    for patch in ax.patches:
        if isinstance(patch, Rectangle):
            spans.append((patch.get_x(), patch.get_x() + patch.get_width()))
        elif isinstance(patch, Polygon):
            xs = patch.get_xy()[:, 0]
            spans.append((xs.min(), xs.max()))
    return spans


@pytest.mark.parametrize("eps", [0.2, 0.3])
def test_the_shaded_ratios_are_where_the_clip_stops_the_gradient(eps):
    lo, hi = 0.4, 1.8
    fig = plots_grpo.plot_clipped_surrogate(eps, lo, hi)
    (top_pos, top_neg), (bottom_pos, bottom_neg) = fig.axes[0:2], fig.axes[2:4]
    step = 1.01 * (hi - lo) / 560                         # the grid of the figure: 561 ratios
    for ax in (top_pos, bottom_pos):                       # A = +1: flat above 1 + eps
        (a, b), = shaded_spans(ax)
        assert a == pytest.approx(1 + eps, abs=step) and b == pytest.approx(hi)
    for ax in (top_neg, bottom_neg):                       # A = -1: flat below 1 - eps
        (a, b), = shaded_spans(ax)
        assert a == pytest.approx(lo) and b == pytest.approx(1 - eps, abs=step)
    plt.close(fig)
