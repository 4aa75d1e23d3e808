"""The figure of a claims-study record (refimpl.experiments.claims_study.study): one per claim.

``plot_forest`` draws one claim as a forest plot, one row (its own panel and x axis, since the
compared values have different units) per comparison, the deciding one on top: each paired
run as a dot (coloured by base), each base's mean as a diamond, the cluster-aware 95% t
interval over the base means (``stats.cluster_t_interval``) as a thick bar, the pooled paired
95% t interval the record stores as a thin bar below it, a line at 0 and the side of 0 the
article predicts shaded. Its title holds the claim's two verdicts (the article's sentence and
the project's test, shared/EVIDENCE.md sec. 5).
"""
from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from refimpl.core import stats
from refimpl.experiments.claims_study.study import comparison_label

# plot_forest's x axis words of each compared value: (noun, unit); {n}: the record's test problems
VALUE_WORDS = {
    "final_acc": ("accuracy", "share of {n} test problems"),
    "rm_score": ("reward-model score", "reward-model units, mean over {n} test problems"),
    "len_wrong": ("wrong-answer length", "tokens"),
    "len_right": ("right-answer length", "tokens"),
    "process_score": ("process reward", "share of right steps and answers, 0 to 1"),
    "false_accept": ("false-accept rate", "share of {n} test problems"),
    "units_change": ("units-step error-rate change", "error rate, 0 to 1"),
    "carry_change": ("carry-step error-rate change", "error rate, 0 to 1"),
    "chosen_logp_change": ("chosen answers' log-prob change", "nats"),
    "margin": ("implicit-reward margin", "beta x log-ratio, nats"),
    "explained_variance": ("critic's explained variance", "share of the return variance"),
    "critic_ev": ("critic's explained variance at the last step", "share of the return variance"),
    "collapsed": ("share of runs that collapsed", "run ended 0.1 below the base: 1, else 0"),
    "adv_mc_corr": ("advantage's correlation with R - p(x)", "Pearson r, -1 to 1"),
    "uniform_share": ("share of training groups with all rewards equal", "0 to 1"),
    "prm_score": ("learned PRM's score", "0 to 1, mean over {n} test problems"),
    "tolerant_acc": ("1%-tolerance grader's score", "share of {n} test problems"),
    "shipped_false_accept": ("shipped grader's false-accept rate", "share of {n} test problems"),
}
# how a value is compared when its control is not another method's same value
CONTROL_WORDS = {"0": "", "base_acc": " change from the base", "base_rm_score": " change from the base",
                 "base_prm_score": " change from the base",
                 "base_process_score": " change from the base",
                 "base_tolerant_acc": " change from the base",
                 "half_oracle_ev": " minus half the pass-rate oracle's"}
FOREST_Y = {"runs": 0.32, "cluster": 0.0, "pooled": -0.3}   # the heights of a row's parts


def forest_xlabel(record: dict, c: dict) -> str:
    """The compared value of comparison ``c`` in plain words and its unit, e.g. "accuracy
    difference (share of 256 test problems)"; ``comparison_label`` for a value not in
    VALUE_WORDS."""
    key = c.get("metric") or record.get("metric_key", "final_acc")
    ctrl = c.get("control_metric") or ""
    gradient = gradient_value_words(key)
    if gradient and ctrl == "0":
        return f"{gradient[0]} ({gradient[1]})"
    if gradient and ctrl:               # the same value on two bins: hard minus easy
        other = gradient_value_words(ctrl)
        return f"{gradient[0]} minus {ctrl.split('/')[-1]} ({gradient[1]})" if other else \
            f"{comparison_label(record, c)} (the runs' value)"
    if key not in VALUE_WORDS or (ctrl and ctrl not in CONTROL_WORDS):
        return f"{comparison_label(record, c)} (the runs' value)"
    noun, unit = VALUE_WORDS[key]
    words = noun + (CONTROL_WORDS[ctrl] if ctrl else " difference")
    return f"{words} ({unit.format(n=record.get('eval_problems', '?'))})"


def pooled_ci(c: dict) -> dict:
    """Comparison ``c``'s pooled paired t interval: stored as "pooled" in a version-2 record
    (whose "ci" is the interval over base means), as "ci" in a version-1 record."""
    return c.get("pooled", c["ci"])


# the words of a C12 gradient value "<kind>/<baseline>/G<g>/<checkpoint>/<bin>"
BASELINE_WORDS = {"none": "b = 0", "rloo": "RLOO", "pass_rate": "b = pass rate", "bstar": "b*"}
KIND_WORDS = {"snr": ("gradient signal-to-noise |E g|^2 / Var g, {b}, G = {g}, at the {ckpt}{bin}",
                      "a ratio"),
              "logratio": ("ln(Var g with {b} / Var g with b = 0), G = {g}, at the {ckpt}{bin}",
                           "< 0: the baseline lowers the variance")}


def gradient_value_words(key: str) -> tuple[str, str] | None:
    """(noun, unit) of a variance run's value key (``variance_runs``), or None."""
    parts = key.split("/")
    if key.startswith("gain_per_1k/"):
        return (f"pass-rate gain per 1,000 training completions, {parts[1].replace('_', ' ')}",
                "pass rate")
    if len(parts) != 5 or parts[0] not in KIND_WORDS or parts[1] not in BASELINE_WORDS:
        return None
    noun, unit = KIND_WORDS[parts[0]]
    return noun.format(b=BASELINE_WORDS[parts[1]], g=parts[2][1:], ckpt=parts[3],
                       bin="" if parts[4] == "all" else f", {parts[4]} prompts"), unit


def forest_cluster_ci(c: dict) -> dict | None:
    """The cluster-aware 95% t interval of comparison ``c``'s paired differences grouped by
    base (``stats.cluster_t_interval``); None when they come from one base only."""
    bases = [x["base"] for x in c["diffs"]]
    if len(set(bases)) < 2:
        return None
    return stats.cluster_t_interval([x["diff"] for x in c["diffs"]], bases)


def _forest_limits(c: dict, cl: dict | None) -> tuple[float, float]:
    """x limits of a row: every run, both intervals and 0, with a margin of 8%."""
    xs = [x["diff"] for x in c["diffs"]] + [pooled_ci(c)["lo"], pooled_ci(c)["hi"], 0.0]
    xs += [cl["lo"], cl["hi"]] if cl else []
    lo, hi = min(xs), max(xs)
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _forest_points(ax, c: dict, bases: list, cl: dict | None) -> None:
    """A row's runs (dots, gid "runs", jittered up and down) and base means (diamonds on the
    cluster bar), coloured by base."""
    jitter = np.random.default_rng(0).uniform(-0.1, 0.1, len(c["diffs"]))   # (runs,)
    for j, b in enumerate(bases):
        idx = [i for i, x in enumerate(c["diffs"]) if x["base"] == b]
        ax.plot([c["diffs"][i]["diff"] for i in idx], FOREST_Y["runs"] + jitter[idx], "o",
                color=f"C{j}", ms=5, alpha=0.8, gid="runs")
        if cl:
            ax.plot(cl["cluster_means"][str(b)], FOREST_Y["cluster"], "D", color=f"C{j}",
                    mec="k", ms=6, zorder=4, gid="base means")


def _forest_bars(ax, c: dict, cl: dict | None) -> None:
    """A row's intervals: cluster-aware (thick, black, with its mean) and pooled (thin, grey)."""
    if cl:
        ax.hlines(FOREST_Y["cluster"], cl["lo"], cl["hi"], color="k", lw=6, alpha=0.55, gid="cluster")
        ax.plot(cl["mean"], FOREST_Y["cluster"], "|", color="w", ms=14, mew=3, zorder=5)
    ci = pooled_ci(c)
    ax.errorbar(ci["mean"], FOREST_Y["pooled"], xerr=[[ci["mean"] - ci["lo"]], [ci["hi"] - ci["mean"]]],
                fmt="o", color="0.45", ms=4, lw=1.2, capsize=4, gid="pooled")


def _forest_title(cl: dict | None, c: dict) -> str:
    """A row's title: both intervals in numbers and what the cluster-aware one decides."""
    ci = pooled_ci(c)
    pooled = f"pooled: {ci['mean']:+.3g} [{ci['lo']:+.3g}, {ci['hi']:+.3g}]"
    if cl is None:
        return f"one base: no interval over base means  ·  {pooled}"
    return (f"over the {cl['n']} base means: {cl['mean']:+.3g} [{cl['lo']:+.3g}, {cl['hi']:+.3g}]"
            f" -> {stats.test_verdict(cl, c['predicted'])}  ·  {pooled}")


def _forest_row(ax, record: dict, c: dict, bases: list) -> None:
    """One comparison's panel (module docstring): the predicted side, runs, intervals, labels."""
    cl = forest_cluster_ci(c)
    lo, hi = _forest_limits(c, cl)
    side = (0.0, hi) if c["predicted"] == 1 else (lo, 0.0)
    ax.axvspan(*side, color="C2", alpha=0.1, lw=0, gid="predicted")
    ax.axvline(0, color="k", lw=0.8)
    _forest_points(ax, c, bases, cl)
    _forest_bars(ax, c, cl)
    ax.set_xlim(lo, hi)
    ax.set_ylim(-0.55, 0.55)
    label = textwrap.fill(c["question"], 45)
    names = comparison_label(record, c)
    # a value of one run against itself needs no method names, nor a question that names them
    if c["treatment"] != c["control"] and names != c["question"]:
        label += "\n" + textwrap.fill(f"({names})", 45)
    ax.set_yticks([0.0], [label], fontsize=10)
    ax.tick_params(axis="x", labelsize=10)
    ax.set_xlabel(forest_xlabel(record, c), fontsize=10)
    ax.set_title(_forest_title(cl, c), fontsize=10)


def _forest_legend(fig, bases: list) -> None:
    """The figure's legend, below the rows: one dot per base, the base means and both bars."""
    handles = [Line2D([], [], ls="", marker="o", color=f"C{j}", label=f"base {b}")
               for j, b in enumerate(bases)]
    handles += [Line2D([], [], ls="", marker="D", mfc="w", mec="k", label="a base's mean of its runs"),
                Line2D([], [], color="k", lw=6, alpha=0.55, label="95% t interval over the base means"),
                Line2D([], [], color="0.45", lw=1.2, marker="o", ms=4,
                       label="pooled paired 95% t interval (runs as independent)"),
                Patch(color="C2", alpha=0.1, label="side of 0 the article predicts")]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4), fontsize=10,
               title="dots: one paired run (treatment - control, same base and seed)",
               title_fontsize=10)


def forest_verdicts(record: dict, article_verdict=None, test_verdict=None) -> tuple[str, str]:
    """(the article's verdict, the project's test): the arguments, else the record's keys
    "article_verdict" and "test_verdict", else "not yet judged" and the record's ``verdict``
    in the test's words (``stats.TEST_VERDICTS``: "contradicted", no "(erratum)")."""
    article = article_verdict or record.get("article_verdict") or "not yet judged"
    test = test_verdict or record.get("test_verdict") or record["verdict"]
    return article, test.replace("contradicted (erratum)", "contradicted")


def plot_forest(record: dict, article_verdict=None, test_verdict=None):
    """A study record's comparisons as a forest plot, one panel per comparison, the first (the
    deciding one) on top (module docstring); the title: the claim id and its two verdicts
    (``forest_verdicts``). Returns the Figure."""
    comps = record["comparisons"]
    bases = sorted({x["base"] for c in comps for x in c["diffs"]})
    fig, axes = plt.subplots(len(comps), 1, figsize=(12, 2.1 * len(comps) + 1.6),
                             layout="constrained", squeeze=False)
    for ax, c in zip(axes[:, 0], comps):
        _forest_row(ax, record, c, bases)
    _forest_legend(fig, bases)
    article, test = forest_verdicts(record, article_verdict, test_verdict)
    fig.suptitle(f"{record['id']} · article: {article} · project's test: {test}", fontsize=13)
    return fig
