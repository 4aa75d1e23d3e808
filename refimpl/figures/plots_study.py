"""Figures of a claims-study record (refimpl.experiments.claims_study.study): what was run, per seed, and the verdict.

``plot_record`` draws three panels that read alone:

1. test accuracy against generated completions for each method: the mean over every
   (base, seed) run and the min-max band;
2. each run's final test accuracy per method (one point per run, one marker per base);
3. each comparison's paired differences treatment - control (points) with the mean and its
   95% t interval (bar), a zero line, and the verdict in the label.

A record whose runs have no accuracy curve (C3's change of a step's error rate, C10's, C12's,
C13's and C19's graded values, C11b's accuracy and share of answer-only samples, C4's and C5's log-prob change and margin, C15's explained variances)
shows in panel 1 each method's mean of every value ending in ``_change``, or else of each
value of ``VALUE_KEYS`` the runs have, as bars with one point per run; panel 2 shows the runs' ``metric_key`` and panel 3 names
each comparison's value.

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
from refimpl.methods.registry import LABELS

MARKERS = "os^Dv<>p"


def _curve_panel(ax, record: dict) -> None:
    for i, (m, runs) in enumerate(record["runs"].items()):
        # offline methods draw all their samples before training (and their step counts differ
        # with the pairs each seed formed): start and end point only, as a step
        step = runs[0]["curve"][1]["samples"] == runs[0]["curve"][-1]["samples"]
        curves = [[r["curve"][0], r["curve"][-1]] if step else r["curve"] for r in runs]
        xs = np.array([c["samples"] for c in curves[0]], dtype=float)
        Y = np.array([[c["heldout_acc"] for c in cur] for cur in curves])   # (runs, points)
        kw = {"drawstyle": "steps-post"} if step else {}
        ax.plot(xs, Y.mean(0), color=f"C{i}", label=f"{LABELS[m]} (n={len(runs)})", **kw)
        ax.fill_between(xs, Y.min(0), Y.max(0), color=f"C{i}", alpha=0.15,
                        step="post" if step else None)
    ax.set(xlabel="completions generated", ylabel="test accuracy (greedy)",
           title=f"{record['id']}: accuracy vs samples (mean, min-max band)")
    ax.legend(fontsize=10)


# values a run of a non-curve record may report, in the order panel 1 draws them
VALUE_KEYS = ("final_acc", "tolerant_acc", "false_accept", "process_score",    # C13, C19
              "rm_score",                                                     # C10
              "short_share",                                                  # C11b
              "chosen_logp_change", "margin",                                 # C4, C5
              "explained_variance", "half_oracle_ev", "corr_v0_p")            # C15


def _value_keys(run: dict) -> list:
    """Panel 1's values: each ``*_change`` (C3), else the graded values of ``VALUE_KEYS``."""
    keys = [k for k in run if k.endswith("_change") and k not in ("mean_change", "chosen_logp_change")]
    return keys or [k for k in VALUE_KEYS if k in run]


def _values_panel(ax, record: dict) -> None:
    keys = _value_keys(next(iter(record["runs"].values()))[0])
    changes = keys[0].endswith("_change")
    width = 0.8 / len(record["runs"])
    for i, (m, runs) in enumerate(record["runs"].items()):
        x = np.arange(len(keys)) + (i - (len(record["runs"]) - 1) / 2) * width
        Y = np.array([[r[k] for k in keys] for r in runs])                  # (runs, keys)
        ax.bar(x, Y.mean(0), width * 0.9, color=f"C{i}", alpha=0.6,
               label=f"{LABELS[m]} (n={len(runs)})")
        for j in range(len(keys)):
            ax.plot(np.full(len(Y), x[j]), Y[:, j], ".", color=f"C{i}", ms=3)
    ax.axhline(0, color="k", lw=0.8)
    names = {"final_acc": "accuracy", "chosen_logp_change": "chosen log-prob change"}
    ax.set_xticks(range(len(keys)), [textwrap.fill(names.get(k, k.replace("_change", ""))
                                                   .replace("_", " "), 11) for k in keys],
                  fontsize=10)
    ax.set(ylabel=("change from the base" if changes else "test value")
           + " (bar: mean; dots: runs)",
           title=f"{record['id']}: {'change of each value' if changes else 'graded values'}, every run")
    ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.22))   # below: no bar hidden


def _final_panel(ax, record: dict) -> None:
    bases = record["bases"]
    key = record.get("metric_key", "final_acc")
    for i, (m, runs) in enumerate(record["runs"].items()):
        for j, b in enumerate(bases):
            y = [r[key] for r in runs if r["base"] == b]
            x = i + np.linspace(-0.25, 0.25, len(bases))[j] * np.ones(len(y))
            ax.plot(x, y, MARKERS[j % len(MARKERS)], color=f"C{i}", ms=4, alpha=0.8,
                    label=f"base {b}" if i == 0 else None)
        ax.hlines(np.mean([r[key] for r in runs]), i - 0.35, i + 0.35, color="k", lw=1.5)
    if key == "final_acc":
        base_acc = np.mean([r["base_acc"] for rs in record["runs"].values() for r in rs])
        ax.axhline(base_acc, color="grey", ls=":", lw=1, label=f"bases' mean ({base_acc:.3f})")
    elif key.endswith("_change"):
        ax.axhline(0, color="grey", ls=":", lw=1, label="the base (no change)")
    else:
        ys = [r[key] for rs in record["runs"].values() for r in rs]
        lo, hi = min(ys), max(ys)
        if lo - (hi - lo) <= 0 <= hi + (hi - lo):      # 0 only where it is near the values
            ax.axhline(0, color="grey", ls=":", lw=1, label="0")
    ax.set_xticks(range(len(record["runs"])),
                  [LABELS[m] for m in record["runs"]], rotation=30, ha="right", fontsize=10)
    ax.set(ylabel="final test accuracy" if key == "final_acc" else f"test {key.replace('_', ' ')}",
           xlabel="method (bar: mean over runs)",
           title=f"{record['id']}: every run at its tuned lr")
    ax.legend(fontsize=10, loc="best")


def _diff_panel(ax, record: dict) -> None:
    comps = record["comparisons"]
    for k, c in enumerate(comps):
        d = np.array([x["diff"] for x in c["diffs"]])
        y = np.full(len(d), len(comps) - 1 - k, dtype=float)
        ax.plot(d, y + np.linspace(-0.15, 0.15, len(d)), ".", color="C7", ms=4, alpha=0.7,
                label="one (base, seed) pair" if k == 0 else None)
        ci = c["ci"]
        ax.errorbar(ci["mean"], y[0], xerr=[[ci["mean"] - ci["lo"]], [ci["hi"] - ci["mean"]]],
                    fmt="o", color="C3", capsize=3, label="mean, 95% t interval" if k == 0 else None)
    ax.axvline(0, color="k", lw=0.8)
    default = record.get("metric_key", "final_acc")
    keys = [c.get("metric") or default for c in comps]
    ax.set_yticks(range(len(comps))[::-1],
                  [textwrap.fill(comparison_label(record, c), 44) + "\n"
                   + ("" if c["predicted"] == 1 else "predicted < 0, ") + f"({c['verdict']})"
                   for c in comps], fontsize=10)
    ax.set(xlabel="paired difference in test accuracy" if set(keys) == {"final_acc"}
           else "paired difference (the value named on the left)", ylabel="treatment - control (verdict)",
           title=textwrap.fill(f"{record['id']}: paired differences -> {record['verdict']}", 48))
    ax.legend(fontsize=10, loc="best")


def plot_record(record: dict):
    """The three panels of a study record (module docstring). Returns the Figure."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1.1, 1, 1.3]})
    runs0 = next(iter(record["runs"].values()))[0]
    (_curve_panel if "curve" in runs0 else _values_panel)(axes[0], record)
    _final_panel(axes[1], record)
    _diff_panel(axes[2], record)
    fig.suptitle(f"{record['id']}: {record['hypothesis']}", fontsize=10, wrap=True)
    fig.tight_layout()
    return fig


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
}
# how a value is compared when its control is not another method's same value
CONTROL_WORDS = {"0": "", "base_acc": " change from the base", "base_rm_score": " change from the base",
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
    if c["treatment"] != c["control"]:  # a value of one run against itself needs no method names
        label += "\n" + textwrap.fill(f"({comparison_label(record, c)})", 45)
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
