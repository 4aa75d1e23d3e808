"""The text of the DPO figures (notebooks 01 and 02) reads at course size: every piece of text
is at least 10 pt, and no two titles of a figure (the panels' and the figure's own) overlap."""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from refimpl.experiments.labs import bandit  # noqa: E402
from refimpl.figures import plots_bandit, plots_dpo  # noqa: E402
from refimpl.core.training import TrainResult  # noqa: E402

MIN_PT = 10
LAB = bandit.make_preference_bandit(bandit.PreferenceBanditConfig())
ROWS = [{"n_pairs": n, "tv_dpo_opt": 1 / n, "tv_rlhf_opt": 1 / n, "tv_predicted": 1 / n,
         "tv_dpo_rlhf": 1e-7} for n in (10, 100, 1000)]
RUN = TrainResult(None, [{"step": s, "rewards/chosen": 0.1, "rewards/rejected": -0.1,
                          "rewards/margins": 0.2, "pairs/logps/chosen": -5.0,
                          "pairs/logps/rejected": -6.0, "logps/target": -4.0,
                          "logps/base_greedy": -3.0, "heldout_acc": 0.4} for s in range(4)])
REPORT = {"p_chosen": 0.5, "p_rejected": 0.3, "p_other": 0.2,
          **{f"{w}_{s}": -1.0 for w in ("chosen", "rejected") for s in ("prefix", "diverge", "suffix")}}
STATS = {"dpo_comparisons_per_sample": 0.13, "grpo_nonzero_advantages_per_sample": 0.57,
         "grpo_informative_comparisons_per_sample": 0.72, "grpo_implicit_comparisons_per_sample": 3.5,
         "dpo_samples_used_per_sample": 0.25}
MARGIN = torch.linspace(-8, 8, 33, dtype=torch.float64)

FIGURES = {
    "optimal_policy, 3 betas": lambda: plots_bandit.plot_optimal_policy(LAB, [5.0, 0.5, 0.05]),
    "optimal_policy, 1 beta": lambda: plots_bandit.plot_optimal_policy(LAB, [0.5]),
    "tv_vs_pairs": lambda: plots_bandit.plot_tv_vs_pairs(ROWS),
    "reward_match": lambda: plots_bandit.plot_reward_match(LAB.reward, LAB.reward, torch.ones_like(LAB.reward)),
    "gradient_weight": lambda: plots_dpo.plot_gradient_weight(MARGIN, torch.sigmoid(-MARGIN)),
    "dpo_runs": lambda: plots_dpo.plot_dpo_runs({"pure DPO": RUN, "DPO + NLL": RUN}, 0.38),
    "mass": lambda: plots_dpo.plot_mass({"base": REPORT, "pure DPO": REPORT, "DPO + NLL": REPORT}),
    "noise": lambda: plots_dpo.plot_noise([0.0, 0.2, 0.4], {"DPO + NLL": [0.5, 0.45, 0.4]}, 0.38),
    "comparisons": lambda: plots_dpo.plot_comparisons(STATS),
}


def drawn(fig):
    """The figure drawn on an Agg canvas (a bare ``Figure`` has a canvas that cannot draw)."""
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


def shown_texts(fig):
    """Every visible, non-empty text artist of a drawn figure."""
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def titles(fig):
    """The drawn panel titles and the figure title."""
    out = [ax.title for ax in fig.axes if ax.get_title()]
    return out + ([fig._suptitle] if fig._suptitle and fig._suptitle.get_text() else [])


def small_texts(fig) -> dict:
    """{text: size} of every shown text of a drawn figure under MIN_PT; the figure is closed."""
    small = {t.get_text()[:40]: t.get_fontsize() for t in shown_texts(fig) if t.get_fontsize() < MIN_PT}
    plt.close(fig)
    return small


def overlapping_titles(fig) -> list:
    """The pairs of titles of a drawn figure whose boxes overlap; the figure is closed."""
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in titles(fig)]
    plt.close(fig)
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2) if box_a.overlaps(box_b)]


def every_figure() -> dict:
    """This module's figures and every course figure of tests/figures/test_plots.py (the PPO,
    REINFORCE, GRPO, KL-lab, study and head-to-head figures)."""
    from test_plots import FIGURES as COURSE, as_figure
    return {**FIGURES, **{f"course: {k}": (lambda f=f: as_figure(f())) for k, f in COURSE.items()}}


@pytest.mark.parametrize("name", sorted(every_figure()))
def test_every_text_is_at_least_10_pt(name):
    small = small_texts(drawn(every_figure()[name]()))
    assert not small, f"text under {MIN_PT} pt: {small}"


@pytest.mark.parametrize("name", sorted(every_figure()))
def test_titles_do_not_overlap(name):
    assert not overlapping_titles(drawn(every_figure()[name]())), "titles overlap"


def test_the_overlap_check_can_fail():
    fig, (a, b) = plt.subplots(1, 2, figsize=(4, 2))
    a.set_title("a long title that runs well into the next panel")
    b.set_title("the next panel's title")
    fig.canvas.draw()
    boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in titles(fig)]
    plt.close(fig)
    assert boxes[0].overlaps(boxes[1])
