"""The forest plot of a claim (refimpl.figures.plots_study.plot_forest), on every committed study
record: one panel per comparison, one dot per paired run in each, the thick bar is the
cluster-aware interval and the thin one the record's pooled interval, the shaded side is the
predicted one, the title carries both verdicts, and the text reads at course size (at least
10 pt, no two titles overlapping: the checks of test_figure_text.py)."""
import itertools
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from test_figure_text import MIN_PT, drawn, shown_texts, titles  # noqa: E402

from refimpl.core import stats  # noqa: E402
from refimpl.experiments.claims_study.study import comparison_label  # noqa: E402
from refimpl.figures import plots_study  # noqa: E402

RECORDS = {p.stem: json.loads(p.read_text())
           for p in sorted((Path(__file__).resolve().parents[2] / "results" / "study").glob("*.json"))}


@pytest.fixture(scope="module", params=sorted(RECORDS))
def forest(request):
    """(record, its drawn forest figure), built once per record."""
    record = RECORDS[request.param]
    fig = drawn(plots_study.plot_forest(record))
    yield record, fig
    plt.close(fig)


def x_extent(ax, patch):
    """(min, max) in data units of a patch's x vertices (axvspan's patch, whatever its class)."""
    xs = ax.transData.inverted().transform(patch.get_verts())[:, 0]
    return xs.min(), xs.max()


def test_there_are_committed_records():
    assert len(RECORDS) >= 5 and "C12" in RECORDS


def test_one_panel_per_comparison_top_first(forest):
    record, fig = forest
    assert len(fig.axes) == len(record["comparisons"])
    tops = [ax.get_position().y0 for ax in fig.axes]
    assert tops == sorted(tops, reverse=True)                 # the first, deciding one on top
    for ax, c in zip(fig.axes, record["comparisons"]):
        assert c["question"].split()[0] in ax.get_yticklabels()[0].get_text()
        assert ax.get_xlabel() and "(" in ax.get_xlabel()     # the value and its unit


def test_every_text_is_at_least_10_pt(forest):
    _, fig = forest
    small = {t.get_text()[:40]: t.get_fontsize() for t in shown_texts(fig) if t.get_fontsize() < MIN_PT}
    assert not small, f"text under {MIN_PT} pt: {small}"


def test_titles_do_not_overlap(forest):
    _, fig = forest
    renderer = fig.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in titles(fig)]
    assert len(boxes) == len(fig.axes) + 1
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"titles overlap: {a!r} and {b!r}"


def test_the_title_carries_both_verdicts(forest):
    record, fig = forest
    title = fig._suptitle.get_text()
    test = record["verdict"].replace("contradicted (erratum)", "contradicted")
    article = record.get("article_verdict", "not yet judged")
    assert title.startswith(record["id"])
    assert f"article: {article}" in title and f"project's test: {test}" in title
    assert "erratum" not in title


def test_one_dot_per_paired_run_at_its_difference(forest):
    record, fig = forest
    for ax, c in zip(fig.axes, record["comparisons"]):
        dots = [line for line in ax.lines if line.get_gid() == "runs"]
        xs = np.concatenate([line.get_xdata() for line in dots])
        assert len(xs) == len(c["diffs"])
        assert sorted(xs) == pytest.approx(sorted(x["diff"] for x in c["diffs"]))
        assert len({line.get_color() for line in dots}) == len({x["base"] for x in c["diffs"]})


def test_the_bars_are_the_cluster_and_the_pooled_intervals(forest):
    record, fig = forest
    for ax, c in zip(fig.axes, record["comparisons"]):
        cl = stats.cluster_t_interval([x["diff"] for x in c["diffs"]], [x["base"] for x in c["diffs"]])
        thick = next(coll for coll in ax.collections if coll.get_gid() == "cluster")
        (x0, _), (x1, _) = thick.get_segments()[0]
        assert (min(x0, x1), max(x0, x1)) == pytest.approx((cl["lo"], cl["hi"]))
        thin = next(coll for coll in ax.collections if coll.get_gid() != "cluster")
        (x0, _), (x1, _) = thin.get_segments()[0]
        pooled = c.get("pooled", c["ci"])        # a version-2 record's "ci" is over base means
        assert (min(x0, x1), max(x0, x1)) == pytest.approx((pooled["lo"], pooled["hi"]))
        assert ax.get_title().endswith(f"[{pooled['lo']:+.3g}, {pooled['hi']:+.3g}]")


def test_the_shaded_side_is_the_predicted_one(forest):
    record, fig = forest
    for ax, c in zip(fig.axes, record["comparisons"]):
        (span,) = [p for p in ax.patches if p.get_gid() == "predicted"]
        lo, hi = x_extent(ax, span)
        if c["predicted"] == 1:
            assert lo == pytest.approx(0, abs=1e-9) and hi > 0
        else:
            assert hi == pytest.approx(0, abs=1e-9) and lo < 0


def test_given_verdicts_and_the_records_own_come_first():
    record = RECORDS["C12"]
    fig = plots_study.plot_forest(record, article_verdict="nuanced", test_verdict="holds")
    assert fig._suptitle.get_text() == "C12 · article: nuanced · project's test: holds"
    plt.close(fig)
    fig = plots_study.plot_forest({**record, "article_verdict": "refuted", "test_verdict": "not shown"})
    assert fig._suptitle.get_text() == "C12 · article: refuted · project's test: not shown"
    plt.close(fig)


def test_the_x_label_names_the_value_and_its_unit():
    record = {"eval_problems": 256, "metric_key": "final_acc"}
    c = {"treatment": "grpo", "control": "dpo", "metric": "final_acc", "control_metric": ""}
    assert plots_study.forest_xlabel(record, c) == "accuracy difference (share of 256 test problems)"
    assert plots_study.forest_xlabel(record, {**c, "control_metric": "base_acc"}).startswith(
        "accuracy change from the base")
    assert plots_study.forest_xlabel(record, {**c, "metric": "margin", "control_metric": "0"}) == \
        "implicit-reward margin (beta x log-ratio, nats)"
    odd = {**c, "metric": "mean_length"}
    assert plots_study.forest_xlabel(record, odd).startswith(comparison_label(record, odd))


def test_a_record_from_one_base_draws_without_a_cluster_interval():
    record = json.loads(json.dumps(RECORDS["C12"]))
    for c in record["comparisons"]:
        c["diffs"] = [{**x, "base": 0} for x in c["diffs"]]
    fig = drawn(plots_study.plot_forest(record))
    assert all(ax.get_title().startswith("one base") for ax in fig.axes)
    assert not [coll for ax in fig.axes for coll in ax.collections if coll.get_gid() == "cluster"]
    plt.close(fig)
