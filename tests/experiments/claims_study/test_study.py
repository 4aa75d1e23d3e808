"""The claims study (refimpl/experiments/claims_study/study.py) end to end at the tiny preset.

A tiny declared claim runs over one base and two seeds: the record must hold the declaration,
the grid and a pick that is the argmax of its validation scores, the per-seed values, paired
differences that are exactly treatment - control per (base, seed), and a verdict that follows
from the interval. A second run must come entirely from the stored runs (resumable) and give
the same record.
"""
import json

import pytest

from refimpl.core import stats
from refimpl.experiments.claims_study import study, study_report, study_runs
from refimpl.__main__ import main
from refimpl.experiments.claims_study.study import (Claim, Comparison, eval_splits, run_claim,
                                                    write_record)

TINY = Claim(id="T1", article="a test claim", hypothesis="grpo > dpo", metric="acc",
             budget_samples=16, methods=("dpo", "grpo"),
             comparisons=(Comparison("grpo", "dpo", 1, "q"),), contradicts="c", not_shown="n",
             grids={"grpo": (1e-4, 3e-4)}, eval_problems=8,
             caveats=((0, ("holds", "not shown", "contradicted (erratum)"), "always"),))


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return runs, run_claim(TINY, bases=(0,), seeds=(0, 1), preset="tiny", runs_dir=runs,
                           progress=False)


def test_record_holds_declaration_grid_and_runs(record):
    _, rec = record
    assert rec["id"] == "T1" and rec["hypothesis"] == "grpo > dpo"
    tuning = rec["tuning"]
    assert tuning["grid"]["grpo"] == [1e-4, 3e-4] and len(tuning["grid"]["dpo"]) == 1
    scores = tuning["scores"]["grpo"]
    assert scores[f"{tuning['pick']['grpo']:g}"] == max(scores.values())
    assert {(r["base"], r["seed"]) for r in rec["runs"]["grpo"]} == {(0, 0), (0, 1)}
    assert all(r["split"] == "test" and r["lr"] == tuning["pick"][r["method"]]
               for m in rec["runs"] for r in rec["runs"][m])
    assert rec["machine"]["torch"] and rec["wall_s"] >= 0


def test_paired_differences_and_verdict(record):
    _, rec = record
    acc = {(r["method"], r["seed"]): r["final_acc"] for m in rec["runs"] for r in rec["runs"][m]}
    comp = rec["comparisons"][0]
    assert [d["diff"] for d in comp["diffs"]] == [acc[("grpo", s)] - acc[("dpo", s)] for s in (0, 1)]
    assert comp["ci"] == stats.t_interval([d["diff"] for d in comp["diffs"]])
    assert comp["verdict"] == stats.verdict(comp["ci"], 1)
    assert rec["caveats"] == ["always"]
    assert rec["verdict"] == ("holds with a caveat" if comp["verdict"] == "holds" else comp["verdict"])


def test_second_run_resumes_from_stored_runs(record, monkeypatch):
    runs, rec = record
    monkeypatch.setattr(study_runs, "run_method", lambda *a, **k: pytest.fail("retrained a stored run"))
    again = run_claim(TINY, bases=(0,), seeds=(0, 1), preset="tiny", runs_dir=runs, progress=False)
    assert again["runs"] == rec["runs"] and again["comparisons"] == rec["comparisons"]


def test_validation_and_test_are_disjoint():
    from refimpl.core.sft import load_base
    val, test = eval_splits(load_base("tiny", progress=False), 8)
    assert len(val) == len(test) == 8
    assert not {p.prompt for p in val} & {p.prompt for p in test}


def test_records_round_trip(record, tmp_path):
    _, rec = record
    path = write_record(rec, tmp_path)
    assert json.loads(path.read_text()) == json.loads(json.dumps(rec))
    assert study.load_record("T1", tmp_path)["verdict"] == rec["verdict"]
    with pytest.raises(FileNotFoundError, match="python -m refimpl study"):
        study.load_record("C99", tmp_path)


def test_every_declared_claim_is_well_formed():
    for cid, c in study.CLAIMS.items():
        assert c.id == cid and c.comparisons and c.budget_samples > 0
        names = {name for name, _, _ in study.arms(c, {m: 0.0 for m in c.methods})}
        for comp in c.comparisons:
            assert {comp.treatment, comp.control} <= names
        vocabulary = stats.TEST_VERDICTS if c.version >= 2 else stats.VERDICTS
        for i, when, _ in c.caveats:
            assert 0 <= i < len(c.comparisons) and set(when) <= set(vocabulary)
        if c.version >= 2:       # the article's line: a quote, and a rule that ends in a catch-all
            assert c.article_quote and c.article_rule and c.article_rule[-1][0] == {}
            for when, article_verdict, reason in c.article_rule:
                assert article_verdict in stats.ARTICLE_VERDICTS and reason
                assert all(0 <= i < len(c.comparisons) and set(v) <= set(vocabulary)
                           for i, v in when.items())


def test_cli_refuses_unknown_claims_and_too_few_seeds(capsys):
    with pytest.raises(SystemExit) as e:
        main(["study", "--claims", "C99"])
    assert e.value.code == 2 and "unknown claim" in capsys.readouterr().err
    with pytest.raises(ValueError, match="2 distinct run seeds"):
        run_claim(TINY, bases=(0,), seeds=(0,), preset="tiny", progress=False)


@pytest.mark.parametrize("rel", sorted(study_report.REPORTS))
def test_generated_sections_match_the_committed_records(rel, tmp_path):
    from pathlib import Path
    doc = Path(study.__file__).resolve().parents[3] / rel
    copy = tmp_path / doc.name
    copy.write_text(doc.read_text())
    ids = study_report.REPORTS[rel]
    records = [r for r in study.load_records() if ids is None or r["id"] in ids]
    assert records and not study_report.update_claims_doc(copy, records), (
        f"{rel} is stale: run `python -m refimpl study --report`")


def test_records_markdown_quotes_every_comparison(record, tmp_path):
    _, rec = record
    rec = {**rec, "command": "python -m refimpl study --claims T1"}
    text = study_report.records_markdown([rec])
    ci = rec["comparisons"][0]["ci"]
    assert f"{ci['mean']:+.3f} [{ci['lo']:+.3f}, {ci['hi']:+.3f}]" in text
    assert rec["verdict"] in text and "python -m refimpl study --claims T1" in text
    doc = tmp_path / "doc.md"
    doc.write_text(f"head\n{study_report.BEGIN}\nold\n{study_report.END}\ntail\n")
    assert study_report.update_claims_doc(doc, [rec]) and not study_report.update_claims_doc(doc, [rec])
    assert doc.read_text().startswith("head\n") and doc.read_text().endswith("\ntail\n")


# ---------------------------------------------------------------- claims with their own runner


def test_c3_runner_produces_every_value_its_declaration_names(cpu_base):
    """C3's runner, at a budget of one online step, gives every value that C3's comparisons,
    default metric and tuning name; the DPO runs keep only pairs of their covered mode."""
    from dataclasses import replace
    c3 = study.CLAIMS["C3"]
    small = replace(c3, budget_samples=128, fixed={m: {**c3.fixed.get(m, {}), "dpo_steps": 2}
                                                   for m in c3.methods})
    _, test = eval_splits(cpu_base, 16)
    names = ({c.metric or c3.metric_key for c in c3.comparisons} | {c3.metric_key}
             | {study.tune_key(c3, m) for m in c3.methods})
    for m in c3.methods:
        rec = study.RUNNERS[c3.runner](small, "cpu", m, c3.grids[m][0], cpu_base, 0, test)
        assert names <= set(rec), (m, names - set(rec))
        for mode in ("units", "carry", "answer"):
            assert rec[f"{mode}_change"] == pytest.approx(rec["rates"][mode] - rec["base_rates"][mode])
        assert rec["samples"] == 128
        if m.startswith("dpo_"):
            assert rec["pairs"] > 0 and set(rec["pair_modes"]) == {m[len("dpo_"):]}


def test_a_comparison_is_decided_on_its_own_metric(monkeypatch, tmp_path):
    """A mocked runner: each comparison is decided on the run value it names (not final_acc),
    and tune_sign = -1 picks the lr with the smallest tune value."""
    def fake(claim, preset, method, lr, base, seed, problems):
        up = 1.0 if method == "grpo" else 0.0
        return {"final_acc": 0.5 + up * (0.1 + 0.01 * seed),  # grpo > dpo on accuracy
                "err": -up - 0.001 * seed - 0.01 * (method == "dpo") * seed,
                "tune": lr if method == "dpo" else -lr}
    monkeypatch.setitem(study.RUNNERS, "fake", fake)
    claim = Claim(id="T2", article="a", hypothesis="h", metric="m", budget_samples=16,
                  methods=("dpo", "grpo"),
                  comparisons=(Comparison("grpo", "dpo", -1, "err falls", metric="err"),
                               Comparison("grpo", "dpo", 1, "acc rises"),
                               Comparison("dpo", "grpo", 1, "err of dpo above", metric="err")),
                  contradicts="c", not_shown="n", grids={"dpo": (1e-4, 3e-4), "grpo": (1e-4, 3e-4)},
                  eval_problems=8, metric_key="final_acc", runner="fake",
                  tune_by={"dpo": "tune", "grpo": "tune"}, tune_sign=-1)
    rec = run_claim(claim, bases=(0,), seeds=(0, 1, 2), preset="tiny", runs_dir=tmp_path,
                    progress=False)
    assert rec["tuning"]["pick"] == {"dpo": 1e-4, "grpo": 3e-4}
    assert rec["tuning"]["by"] == {"dpo": "tune", "grpo": "tune"}
    runs = {(r["method"], r["seed"]): r for rs in rec["runs"].values() for r in rs}
    for comp, c in zip(rec["comparisons"], claim.comparisons):
        key = c.metric or "final_acc"
        assert comp["metric"] == key
        d = [runs[(c.treatment, s)][key] - runs[(c.control, s)][key] for s in (0, 1, 2)]
        assert [x["diff"] for x in comp["diffs"]] == d
        assert comp["verdict"] == stats.verdict(stats.t_interval(d), c.predicted)
    assert [c["verdict"] for c in rec["comparisons"]] == ["holds", "holds", "holds"]
    assert "(err)" in study_report.records_markdown([rec])
    with pytest.raises(ValueError, match="unknown runner"):
        run_claim(Claim(**{**claim.__dict__, "runner": "nope"}), bases=(0,), seeds=(0, 1),
                  preset="tiny", runs_dir=tmp_path, progress=False)


def test_run_keys_of_the_default_runner_are_unchanged():
    """C17's stored runs stay valid: the key of a default-runner run does not name the runner."""
    c17 = study.CLAIMS["C17"]
    key = study._run_key(c17, "cpu", "grpo", 5e-5, 0, 0, "test")
    assert key.startswith("test-grpo-lr5e-05-b0-s0-")
    from dataclasses import replace
    assert study._run_key(replace(c17, runner="coverage"), "cpu", "grpo", 5e-5, 0, 0, "test") != key


@pytest.mark.parametrize("cid", ["C3", "C4a", "C4b", "C5", "C10", "C11b", "C12", "C12b", "C13", "C15", "C17", "C19"])
def test_committed_records_follow_their_declared_rule(cid):
    rec = study.load_record(cid)
    two = [rec["article_verdict"]] if rec.get("version", 1) >= 2 else []
    assert study.recompute_verdicts(rec) == [c["verdict"] for c in rec["comparisons"]] + [rec["verdict"]] + two
    text = study.format_record(rec)
    assert text.count("\n") >= len(rec["comparisons"]) + 1 and rec["verdict"] in text
    for c in rec["comparisons"]:
        assert f"{c['ci']['mean']:+.3f} [{c['ci']['lo']:+.3f}, {c['ci']['hi']:+.3f}]" in text
    if rec.get("version", 1) >= 2:                  # 5 bases x 5 seeds, both verdict lines
        assert len(rec["bases"]) >= 5 and len(rec["seeds"]) >= 5
        assert rec["article_verdict"] in stats.ARTICLE_VERDICTS and rec["article_quote"]
        assert rec["test_verdict"] in stats.TEST_VERDICTS
    if "runner_up" in rec:                          # the deciding comparison at the runner-up
        ru = rec["runner_up"]["comparison"]
        d = [x["diff"] for x in ru["diffs"]]
        ci = stats.cluster_t_interval(d, [x["base"] for x in ru["diffs"]])
        assert stats.test_verdict(ci, ru["predicted"]) == rec["runner_up"]["verdict"]


def test_a_changed_difference_changes_the_recomputed_verdict():
    rec = json.loads(json.dumps(study.load_record("C17")))
    for d in rec["comparisons"][0]["diffs"]:
        d["diff"] = -abs(d["diff"]) - 0.01 * (1 + d["base"])   # every difference below 0
    assert study.recompute_verdicts(rec)[0] == "contradicted"


def test_a_precondition_claim_stays_not_shown_and_says_why():
    from dataclasses import replace
    claim = replace(study.CLAIMS["C15"], precondition=True,
                    caveats=((0, ("holds",), "a"), (0, ("not shown", "contradicted"), "b")))
    for v in ("holds", "contradicted", "not shown"):     # what a comparison can say
        verdict, caveats = study.decide(claim, [{"verdict": v}])
        assert verdict == "not shown" and len(caveats) == 1


def test_a_shared_lr_is_the_best_mean_over_the_methods(monkeypatch, tmp_path):
    """shared_lr: one lr for every method, the argmax of the methods' mean validation score,
    even where each method alone would pick another."""
    best = {"dpo": 1e-4, "grpo": 3e-4, "rpo": 3e-4}
    def fake(claim, preset, method, lr, base, seed, problems):
        return {"final_acc": 1.0 - abs(lr - best[method]) * 1e3}
    monkeypatch.setitem(study.RUNNERS, "fake", fake)
    grid = (1e-4, 3e-4)
    claim = Claim(id="T3", article="a", hypothesis="h", metric="m", budget_samples=16,
                  methods=("dpo", "grpo", "rpo"), comparisons=(Comparison("grpo", "dpo", 1, "q"),),
                  contradicts="c", not_shown="n", grids={m: grid for m in ("dpo", "grpo", "rpo")},
                  eval_problems=8, runner="fake", shared_lr=True)
    rec = run_claim(claim, bases=(0,), seeds=(0, 1), preset="tiny", runs_dir=tmp_path, progress=False)
    # each alone: dpo 1e-4, grpo and rpo 3e-4; the mean is best at 3e-4 (0.933 vs 0.867)
    assert rec["tuning"]["pick"] == {"dpo": 3e-4, "grpo": 3e-4, "rpo": 3e-4}
    assert rec["tuning"]["shared"] is True
    with pytest.raises(ValueError, match="one declared grid"):
        run_claim(Claim(**{**claim.__dict__, "grids": {"dpo": grid, "grpo": (1e-4,), "rpo": grid}}),
                  bases=(0,), seeds=(0, 1), preset="tiny", runs_dir=tmp_path, progress=False)


def test_records_load_in_claim_order(tmp_path):
    for cid in ("C12", "C3", "C11b", "C11"):
        (tmp_path / f"{cid}.json").write_text(json.dumps({k: cid if k == "id" else [] for k in study.RECORD_KEYS}))
    assert [r["id"] for r in study.load_records(tmp_path)] == ["C3", "C11", "C11b", "C12"]


def test_jobs_must_be_a_positive_count(capsys):
    for bad in ("0", "two", "-1"):
        with pytest.raises(SystemExit) as e:
            main(["study", "--claims", "C12", "--jobs", bad])
        assert e.value.code == 2
    assert "--jobs must be a whole number >= 1" in capsys.readouterr().err


# ---------------------------------------------------------------- version 2: two verdicts


def test_version_two_records_carry_both_verdicts_in_their_vocabularies():
    """Every record made under the two-verdict rule quotes the article, judges its sentence in
    ARTICLE_VERDICTS and its test in TEST_VERDICTS, on >= 5 bases x 5 seeds, with the interval
    over base means deciding and the pooled interval beside it."""
    records = [r for r in study.load_records() if r.get("version", 1) >= 2]
    assert records, "no record made under the two-verdict rule"
    for r in records:
        assert r["article_verdict"] in stats.ARTICLE_VERDICTS and r["article_reason"]
        assert r["test_verdict"] in stats.TEST_VERDICTS and r["verdict"] == r["test_verdict"]
        quote = r["article_quote"]        # at most two sentences (a bullet quoted has no period)
        assert quote and quote.rstrip(".").count(". ") + 1 <= 2
        assert len(r["bases"]) >= 5 and len(r["seeds"]) >= 5
        assert "erratum" not in json.dumps([r["verdict"], r["comparisons"][0]["verdict"]])
        for c in r["comparisons"]:
            d = [x["diff"] for x in c["diffs"]]
            assert c["ci"] == stats.cluster_t_interval(d, [x["base"] for x in c["diffs"]])
            assert c["pooled"] == stats.t_interval(d)


def test_the_article_rule_reads_the_comparisons_and_needs_a_catch_all():
    c12 = study.CLAIMS["C12"]
    v = lambda *xs: [{"verdict": x} for x in xs]   # noqa: E731
    assert study.judge_article(c12, v("holds", "holds"))[0] == "supported"
    assert study.judge_article(c12, v("holds", "not shown"))[0] == "nuanced"
    assert study.judge_article(c12, v("contradicted", "holds"))[0] == "refuted"
    assert study.judge_article(c12, v("not shown", "holds"))[0] == "nuanced"
    from dataclasses import replace
    with pytest.raises(ValueError, match="catch-all"):
        study.judge_article(replace(c12, article_rule=c12.article_rule[:1]), v("not shown", "holds"))


def test_a_version_two_comparison_decides_over_base_means_and_drops_undefined_pairs():
    """Runs on a base that agree with each other: the pooled interval excludes 0, the interval
    over the 3 base means does not; a NaN value (an empty bin) is left out and counted."""
    runs = {"a": [], "b": []}
    for base, shift in ((0, 0.30), (1, 0.05), (2, 0.10)):
        for seed in range(5):
            runs["a"].append({"base": base, "seed": seed, "v": shift + 0.01 * seed})
            runs["b"].append({"base": base, "seed": seed, "v": 0.0})
    runs["a"][0]["v"] = float("nan")
    comp = Comparison("a", "b", 1, "a vs b", metric="v")
    two = study.compare_runs(runs, comp, version=2)
    assert two["undefined_pairs"] == 1 and len(two["diffs"]) == 14
    assert two["ci"]["lo"] < 0 < two["pooled"]["lo"] and two["verdict"] == "not shown"
    assert two["bases_needed"] is not None


def test_bad_study_inputs_get_one_line_errors():
    c12 = study.CLAIMS["C12"]
    with pytest.raises(ValueError, match=">= 2 bases"):
        study.run_claim(c12, bases=(0,), seeds=(0, 1))
    with pytest.raises(ValueError, match="run seeds"):
        study.run_claim(c12, bases=(0, 1), seeds=(0,))
    with pytest.raises(ValueError, match="run seeds"):
        study.run_claim(c12, bases=(), seeds=(0, 1))


def test_a_file_that_is_not_a_record_and_an_empty_grid_get_one_line_errors(tmp_path):
    (tmp_path / "C12.json").write_text("{not json")
    with pytest.raises(ValueError, match="C12.json is not a study record: not JSON"):
        study.load_record("C12", tmp_path)
    (tmp_path / "C12.json").write_text('{"id": "C12", "runs": {}}')
    with pytest.raises(ValueError, match="lacks hypothesis, bases, seeds, comparisons, verdict"):
        study.load_records(tmp_path)
    from dataclasses import replace
    with pytest.raises(ValueError, match="empty lr grid for \\['reinforce'\\]"):
        study.run_claim(replace(study.CLAIMS["C12"], grids={"reinforce": ()}), bases=(0, 1), seeds=(0, 1))


def test_a_sweep_claim_runs_every_lr_of_its_grid_as_named_arms():
    c4b = study.CLAIMS["C4b"]
    names = [a for a, _, _ in study.arms(c4b, {})]
    assert names == ["dpo@5e-06", "dpo@1e-05", "dpo@2e-05", "dpo@5e-05"]
    from dataclasses import replace
    bad = replace(c4b, comparisons=(Comparison("dpo@3e-05", "dpo@5e-06", -1, "an lr off the grid"),))
    with pytest.raises(ValueError, match="not among its arms"):
        study.run_claim(bad, bases=(0, 1), seeds=(0, 1))
