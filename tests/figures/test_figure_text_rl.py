"""The text of the PPO and REINFORCE figures (notebooks 04 and 05) reads at course size: every
piece of text is at least 10 pt, and no two titles of a figure overlap."""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from refimpl.core.training import TrainResult  # noqa: E402
from refimpl.figures import plots_ppo, plots_reinforce  # noqa: E402

MIN_PT = 10


def run(n=4, **keys):
    return TrainResult(None, [{"step": s, **keys} for s in range(n)])


PPO = run(samples=64, heldout_acc=0.4, reward=0.1, value_loss=0.05, explained_variance=0.0,
          value_mae_mc=0.1, **{"baseline_mae_mc/group": 0.1})
QUALITY = {"adv_corr_mc": 0.9, "value_corr_mc": 0.3, "adv_corr_mc/group": 0.9,
           "baseline_corr_mc/group": 0.5}
DENSE = {"mc_ev": 0.5, "rows": [{"step": s, "explained_variance": 0.1 * s, "adv_corr/lam_0": 0.4,
                                 "adv_corr/lam_0.5": 0.4, "adv_corr/lam_1": 0.2} for s in (0, 3, 6)]}
RL = run(5, heldout_acc=0.4, reward=0.2, verified=0.3, grad_norm=1.0,
         **{"pass_rate/level_0": 0.5, "frac_all_wrong/level_0": 0.2})
BINS = {"prompts": [60, 40, 28], "pass_rate": [0.05, 0.15, 0.3], "all_zero": [0.6, 0.3, 0.1]}
FIGURES = {
    "ppo_vs_grpo": lambda: plots_ppo.plot_ppo_vs_grpo(PPO, PPO),
    "advantage_quality": lambda: plots_ppo.plot_advantage_quality({"trained critic": QUALITY,
                                                                  "V=0": QUALITY}),
    "reward_hacking": lambda: plots_ppo.plot_reward_hacking(PPO, PPO),
    "dense_critic": lambda: plots_ppo.plot_dense_critic(DENSE, sparse_ev=0.0),
    "level_curves": lambda: plots_reinforce.plot_level_curves(RL, {0: "0 carries"}),
    "variance": lambda: plots_reinforce.plot_variance(
        {g: {"b = 0": 1.0, "fixed b = p(x)": 2.0, "RLOO": 3.0} for g in (2, 4, 8)}),
    "runs": lambda: plots_reinforce.plot_runs({"outcome": RL, "exact process": RL,
                                               "learned PRM": RL}, claim="C13"),
    "difficulty_bins": lambda: plots_reinforce.plot_difficulty_bins(BINS, BINS),
}


def drawn(fig):
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.canvas.draw()
    return fig


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_every_text_is_at_least_10_pt(name):
    fig = drawn(FIGURES[name]())
    small = {t.get_text()[:40]: t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < MIN_PT}
    plt.close(fig)
    assert not small, f"text under {MIN_PT} pt: {small}"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_titles_do_not_overlap(name):
    fig = drawn(FIGURES[name]())
    renderer = fig.canvas.get_renderer()
    boxes = [(ax.get_title(), ax.title.get_window_extent(renderer)) for ax in fig.axes if ax.get_title()]
    plt.close(fig)
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"titles overlap: {a!r} and {b!r}"


def test_the_size_check_can_fail():
    fig, ax = plt.subplots()
    ax.set_title("small", fontsize=8)
    fig = drawn(fig)
    assert any(t.get_fontsize() < MIN_PT for t in fig.findobj(Text) if t.get_text() == "small")
    plt.close(fig)
