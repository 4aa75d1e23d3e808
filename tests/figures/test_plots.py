"""Every figure of the notebooks reads alone: each plotting function is rendered on small
synthetic inputs and every panel that draws data must have a title, labelled axes and
labelled series that all appear in a legend of the figure; each figure's titles must name the claim it supports (C1..C19) or say "set-up" /
"no claim"; the data-flow diagrams must show every stage."""
import base64
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.text  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from refimpl.experiments.labs import bandit, kl_lab  # noqa: E402
from refimpl.figures import (diagrams, plots, plots_bandit, plots_compare, plots_dpo,  # noqa: E402
                             plots_grpo, plots_kl, plots_offline, plots_ppo, plots_reinforce)
from refimpl.core.training import TrainResult  # noqa: E402
from refimpl.experiments.head_to_head.compare import CompareConfig, CompareResult  # noqa: E402

CLAIM = re.compile(r"\bC\d{1,2}\b|set-up|no claim")


def history(n=4, **keys):
    """Rows 0..n-1 with every key in ``keys`` (a value or a function of the step)."""
    return TrainResult(None, [{"step": s, **{k: (v(s) if callable(v) else v) for k, v in keys.items()}}
                              for s in range(n)])


def as_figure(out):
    if hasattr(out, "savefig"):
        return out
    first = out[0] if hasattr(out, "__len__") else out
    return first.figure


def has_data(ax):
    return bool(ax.lines or ax.patches or ax.collections or ax.containers)


def check_reads_alone(fig):
    fig.canvas.draw()
    titles = [ax.get_title() for ax in fig.axes] + [fig._suptitle.get_text() if fig._suptitle else ""]
    assert CLAIM.search(" ".join(titles)), f"no claim id in the titles {titles}"
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    legend_texts = {t.get_text() for leg in legends for t in leg.get_texts()}
    for ax in fig.axes:
        if not has_data(ax):
            continue
        assert ax.get_title() or fig._suptitle, "a panel without a title"
        assert ax.get_xlabel() or ax.get_xticklabels(), f"panel {ax.get_title()!r}: no x label"
        assert ax.get_ylabel(), f"panel {ax.get_title()!r}: no y label"
        shown = [ax.get_legend_handles_labels()[1]]
        assert shown[0], f"panel {ax.get_title()!r}: no labelled series"
        missing = set(shown[0]) - legend_texts
        assert not missing, f"panel {ax.get_title()!r}: series {missing} in no legend"
    plt.close(fig)


LAB = bandit.make_preference_bandit(bandit.PreferenceBanditConfig())
ROWS_TV = [{"n_pairs": n, "tv_dpo_opt": 1 / n, "tv_rlhf_opt": 1.1 / n, "tv_predicted": 1 / n,
            "tv_dpo_rlhf": 0.01 / n} for n in (10, 100, 1000)]
DPO_RUN = history(**{"rewards/chosen": 0.1, "rewards/rejected": -0.1,
                                  "rewards/margins": 0.2, "pairs/logps/chosen": -5.0,
                                  "pairs/logps/rejected": -6.0, "logps/target": -4.0,
                                  "heldout_acc": 0.4})
REPORT = {"p_chosen": 0.5, "p_rejected": 0.3, "p_other": 0.2,
          **{f"{w}_{s}": -1.0 for w in ("chosen", "rejected") for s in ("prefix", "diverge", "suffix")}}
GRPO_ROWS = history(6, heldout_acc=0.4, reward=0.3, frac_all_wrong=0.4, frac_all_correct=0.1,
                    frac_reward_zero_std=0.5, kl=0.01, clip_ratio=0.02).history
PPO = history(3, samples=lambda s: 64 * s, heldout_acc=0.4, reward=0.1, value_loss=0.05,
              explained_variance=0.0, value_mae_mc=0.1, **{"baseline_mae_mc/group": 0.1})
QUALITY = {"adv_corr_mc": 0.9, "value_corr_mc": 0.3, "adv_corr_mc/group": 0.9,
           "baseline_corr_mc/group": 0.5}
DENSE = {"mc_ev": 0.5, "rows": [{"step": s, "explained_variance": 0.1 * s, "adv_corr/lam_0": 0.4,
                                 "adv_corr/lam_1": 0.2} for s in (0, 2, 4)]}
BINS = {"prompts": [3, 2, 1], "pass_rate": [0.05, 0.15, 0.3], "all_zero": [0.6, 0.3, 0.1]}
RL = history(5, heldout_acc=0.4, reward=lambda s: 0.1 * s, verified=0.3, grad_norm=1.0,
             **{"pass_rate/level_0": 0.5, "frac_all_wrong/level_0": 0.2})
RATES = {"rates": {"base": {"units": 0.3, "carry": 0.6, "answer": 0.7},
                   "dpo": {"units": 0.32, "carry": 0.58, "answer": 0.69}}}
TAB = [{"step": s, "units_wrong": 0.3, "carry_wrong": 0.6 - 0.1 * s} for s in range(3)]
COMPARE = CompareResult(CompareConfig(methods=("dpo", "grpo"), seeds=(0,)), [
    {"method": m, "curve": [{"time_s": t, "samples": 8 * t, "flops": 1e11 * t, "progress": t / 3,
                             "heldout_acc": 0.3 + 0.01 * t} for t in range(4)]}
    for m in ("dpo", "grpo")], meta={"budget": "64 samples"})
COMPARE5 = CompareResult(CompareConfig(methods=("dpo", "grpo"), seeds=tuple(range(5))), [
    {"method": m, "seed": s, "curve": [{"time_s": t, "samples": 8 * t, "flops": 1e11 * t,
                                        "progress": t / 3, "heldout_acc": 0.3 + 0.01 * t * s}
                                       for t in range(4)]}
    for s in range(5) for m in ("dpo", "grpo")], meta={"budget": "64 samples"})
PROFILE = {"pass_at_k": {1: 0.1, 2: 0.2, 4: 0.3}, "entropy": 0.3, "correct": [1, 0], "n": 4}
BENCH = {"grpo": {"median_ms": {"trl": {"sample": 5.0, "update": 3.0}, "refimpl": {"sample": 2.0, "update": 2.0}},
                  "floor_ms": 4.0, "floor_shared_ms": 2.0, "unit": "completions", "per_s": {"trl": 10, "refimpl": 20}}}
Z = torch.tensor([0.5, -1.0, 0.2], dtype=torch.float64)
REF = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
X = torch.logspace(-5, -1, 9)

FIGURES = {
    "sft_history": lambda: plots.plot_sft_history(
        [{"step": s, "loss": 1.0 / s, **({"heldout_acc": 0.1 * s} if s % 2 == 0 else {})} for s in range(1, 6)], 0.3),
    "pass_at_k": lambda: plots.plot_pass_at_k({0: {1: 0.2, 2: 0.3, 4: 0.4}}),
    "curves": lambda: plots.plot_curves({"run": history(heldout_acc=0.3)}, claim="C17"),
    "step_phases": lambda: plots.plot_step_phases(BENCH),
    "tv_vs_pairs": lambda: plots_bandit.plot_tv_vs_pairs(ROWS_TV),
    "optimal_policy": lambda: plots_bandit.plot_optimal_policy(LAB, [5.0, 0.5]),
    "reward_match": lambda: plots_bandit.plot_reward_match(LAB.reward, LAB.reward + 1.0),
    "gradient_weight": lambda: plots_dpo.plot_gradient_weight(X.log(), torch.sigmoid(-X.log())),
    "dpo_runs": lambda: plots_dpo.plot_dpo_runs({"DPO": DPO_RUN}, 0.38, probe_names=("target",)),
    "mass": lambda: plots_dpo.plot_mass({"base": REPORT, "DPO": REPORT}),
    "noise": lambda: plots_dpo.plot_noise([0.0, 0.2], {"DPO": [0.4, 0.3]}, 0.38),
    "comparisons": lambda: plots_dpo.plot_comparisons({
        "dpo_comparisons_per_sample": 0.1, "grpo_nonzero_advantages_per_sample": 0.5,
        "grpo_informative_comparisons_per_sample": 1.0, "grpo_implicit_comparisons_per_sample": 3.5,
        "dpo_samples_used_per_sample": 0.5}),
    "clipped_surrogate": lambda: plots_grpo.plot_clipped_surrogate(0.2),
    "uniform_share": lambda: plots_grpo.plot_uniform_share(torch.tensor([0.0, 0.3, 1.0]), (2, 8),
                                                           {2: 0.6, 8: 0.7}),
    "gradient_noise": lambda: plots_grpo.plot_gradient_noise([{"G": g, "rel_noise": 4 / g} for g in (2, 4, 8)]),
    "advantage_vs_std": lambda: plots_grpo.plot_advantage_vs_std(
        [0.1, 0.5], [1.0, 1.0], [0.1, 0.4], real=([0.3], [1.0], [0.3])),
    "difficulty_bias": lambda: plots_grpo.plot_difficulty_bias(4),
    "grpo_history": lambda: plots_grpo.plot_grpo_history(GRPO_ROWS, predicted_share=0.4),
    "kl_gradients": lambda: plots_kl.plot_kl_gradients(
        {w: kl_lab.expected_gradient(Z, REF, w) for w in kl_lab.WAYS}, kl_lab.true_gradients(Z, REF)),
    "k3_precision": lambda: plots_kl.plot_k3_precision(X, kl_lab.k3_relative_error(X)),
    "ppo_vs_grpo": lambda: plots_ppo.plot_ppo_vs_grpo(PPO, PPO),
    "advantage_quality": lambda: plots_ppo.plot_advantage_quality({"critic": QUALITY}),
    "reward_hacking": lambda: plots_ppo.plot_reward_hacking(PPO, PPO),
    "dense_critic": lambda: plots_ppo.plot_dense_critic(DENSE, sparse_ev=0.0),
    "level_curves": lambda: plots_reinforce.plot_level_curves(RL, {0: "level 0"}),
    "variance": lambda: plots_reinforce.plot_variance({4: {"none": 1.0, "rloo": 0.5}}),
    "difficulty_bins": lambda: plots_reinforce.plot_difficulty_bins(BINS, BINS),
    "runs": lambda: plots_reinforce.plot_runs({"outcome": RL, "process": RL}, claim="C13"),
    "tabular": lambda: plots_offline.plot_tabular(TAB, TAB),
    "rate_changes": lambda: plots_offline.plot_rate_changes([RATES, RATES]),
    "compare": lambda: plots_compare.plot_compare(COMPARE, "progress"),
    "compare_panels": lambda: plots_compare.plot_compare_panels(COMPARE),
    "compare_panels_ci": lambda: plots_compare.plot_compare_panels(COMPARE5),
    "pass_at_k_race": lambda: plots_compare.plot_pass_at_k_race({"base": PROFILE, "grpo": PROFILE}),
}


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_reads_alone(name):
    check_reads_alone(as_figure(FIGURES[name]()))


def test_the_check_can_fail():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    with pytest.raises(AssertionError):
        check_reads_alone(fig)


def test_rewards_on_different_scales_get_their_own_axes():
    fig = plots_reinforce.plot_runs({"outcome": RL, "process": RL}, keys=("heldout_acc", "reward"))
    reward_axes = [ax for ax in fig.axes if "reward" in ax.get_ylabel()]
    assert len(reward_axes) == 2 and all(len(ax.lines) == 1 for ax in reward_axes)
    plt.close(fig)


@pytest.mark.parametrize("method", sorted(diagrams.FLOWS))
def test_flow_diagram_shows_every_stage(method):
    fig = diagrams.plot_method_flow(method)
    texts = {t.get_text() for ax in fig.axes for t in ax.texts}
    title, stages = diagrams.FLOWS[method]
    assert fig._suptitle.get_text() == title
    assert all(box in texts for box, _ in stages)
    plt.close(fig)


def test_listing_shows_only_the_marked_lines():
    from refimpl.methods import grpo
    text = diagrams.listing(grpo.grpo_loss, "old_logps, advantages = ", "loss = _aggregate(")
    body = text.splitlines()[1:]
    assert "old_logps.detach()" in body[0] and "_aggregate(" in body[-1]
    assert "raise ValueError" not in text                  # the core, not the validation
    with pytest.raises(ValueError, match="not found"):
        diagrams.listing(grpo.grpo_loss, "no such line")
    with pytest.raises(ValueError, match="lines >"):
        diagrams.listing(grpo.grpo_loss, max_lines=5)


def test_slider_figure_has_a_static_view():
    ipywidgets = pytest.importorskip("ipywidgets")
    from matplotlib.figure import Figure

    def draw(beta):
        fig = Figure()
        fig.add_subplot().plot([0, 1], [0, beta])
        return fig
    slider = ipywidgets.FloatLogSlider(value=0.5, base=2, min=-7, max=5, step=0.25, description="beta")
    bundle = plots.SliderFigure(draw, slider)._repr_mimebundle_()
    assert slider.value == 0.5                                            # starts where it says
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "run this cell" in bundle["text/plain"] and "interactive(" not in bundle["text/plain"]


def test_compare_figure_shows_seeds_or_intervals_and_plain_flop_units():
    """Two seeds: one line per seed, no band; five: one line per method with error bars. The
    FLOPs axis reads in a plain unit (GFLOP here) with no offset or scientific multiplier, and
    every text is at least 10 pt."""
    fig = plots_compare.plot_compare(COMPARE, "flops")
    ax = fig.axes[0]
    assert not ax.collections and len(ax.lines) == 2 and "GFLOP" in ax.get_xlabel()
    fig.canvas.draw()
    assert ax.xaxis.get_offset_text().get_text() == ""
    plt.close(fig)
    fig = plots_compare.plot_compare(COMPARE5, "progress")
    assert len(fig.axes[0].containers) == 2                    # one errorbar per method
    plt.close(fig)
    for fig in (plots_compare.plot_compare_panels(COMPARE5),
                plots_compare.plot_pass_at_k_race({"base": PROFILE, "grpo": PROFILE})):
        fig.canvas.draw()
        small = [t.get_text() for t in fig.findobj(matplotlib.text.Text)
                 if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 10]
        assert not small, f"text under 10 pt: {small}"
        plt.close(fig)
    assert plots_compare.flop_unit(3.5e11) == (1e9, "GFLOP")
    assert plots_compare.flop_unit(2e13) == (1e12, "TFLOP")
