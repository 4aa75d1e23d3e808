"""The GRPO figures of notebooks 03a and 03b: the clipped-surrogate figure shades exactly the
ratios where the clip sets the slope to 0 (rho > 1 + eps for A > 0, rho < 1 - eps for A < 0),
and every text of the GRPO and KL-lab figures is at least 10 pt with no two titles overlapping."""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Polygon, Rectangle  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from refimpl.core.training import TrainResult  # noqa: E402
from refimpl.experiments.labs import kl_lab  # noqa: E402
from refimpl.figures import plots_grpo, plots_kl  # noqa: E402

MIN_PT = 10
ROWS = TrainResult(None, [{"step": s, "heldout_acc": 0.4, "reward": 0.3, "frac_all_wrong": 0.4,
                           "frac_all_correct": 0.1, "frac_reward_zero_std": 0.5, "kl": 0.01,
                           "clip_ratio": 0.02} for s in range(6)]).history
Z = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
REF = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
X = torch.logspace(-5, -1, 9)
FIGURES = {
    "clipped_surrogate": lambda: plots_grpo.plot_clipped_surrogate(0.2),
    "uniform_share": lambda: plots_grpo.plot_uniform_share(torch.tensor([0.0, 0.3, 1.0]), (2, 8),
                                                           {2: 0.6, 8: 0.7}),
    "gradient_noise": lambda: plots_grpo.plot_gradient_noise([{"G": g, "rel_noise": 4 / g} for g in (2, 4, 8)]),
    "advantage_vs_std": lambda: plots_grpo.plot_advantage_vs_std(
        [0.1, 0.5], [1.0, 1.0], [0.1, 0.4], real=([0.3], [1.0], [0.3])),
    "difficulty_bias": lambda: plots_grpo.plot_difficulty_bias(4),
    "grpo_history": lambda: plots_grpo.plot_grpo_history(ROWS, predicted_share=0.4),
    "kl_gradients": lambda: plots_kl.plot_kl_gradients(
        {w: kl_lab.expected_gradient(Z, REF, w) for w in kl_lab.WAYS}, kl_lab.true_gradients(Z, REF)),
    "k3_precision": lambda: plots_kl.plot_k3_precision(X, kl_lab.k3_relative_error(X)),
}


def figure(out):
    """The Figure of what a plotting function returns (a Figure, an Axes or axes), drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    if not hasattr(out, "savefig"):
        out = (out[0] if hasattr(out, "__len__") else out).figure
    if not isinstance(out.canvas, FigureCanvasAgg):       # a bare Figure has a canvas that cannot draw
        FigureCanvasAgg(out)
    out.canvas.draw()
    return out


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


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_text_is_at_least_10_pt(name):
    fig = figure(FIGURES[name]())
    small = {t.get_text()[:40]: t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_PT}
    plt.close(fig)
    assert not small, f"text under {MIN_PT} pt: {small}"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_titles_do_not_overlap(name):
    fig = figure(FIGURES[name]())
    renderer = fig.canvas.get_renderer()
    titles = [ax.title for ax in fig.axes if ax.get_title()]
    titles += [fig._suptitle] if fig._suptitle and fig._suptitle.get_text() else []
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in titles]
    plt.close(fig)
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"titles overlap: {a!r} and {b!r}"
