"""The tuning rule of a claim with two verdicts (shared/EVIDENCE.md sec. 3), on a fake runner
whose validation score is a known function of the lr: 4 seeds over 2 bases, a pick at a grid's
edge widens the grid one 1-2-5 step at a time (at most MAX_WIDEN times), the runner-up lr is
the second best, and the deciding comparison is rerun at the runner-up lrs."""
import math

import pytest

from refimpl.experiments.claims_study import study
from refimpl.experiments.claims_study.study import Claim, Comparison, next_lr, run_claim

PEAK = {"grpo": 5e-5, "dpo": 2e-4}          # each method's best lr under the fake score


def fake_runner(claim, preset, method, lr, base, seed, problems):
    score = -(math.log10(lr) - math.log10(PEAK[method])) ** 2   # best at PEAK, falls either side
    return {"final_acc": score + 0.001 * seed, "base_acc": 0.0}


def claim(**kw):
    spec = dict(id="T2", article="a", hypothesis="h", metric="m", budget_samples=16,
                methods=("dpo", "grpo"), comparisons=(Comparison("grpo", "dpo", 1, "q"),),
                contradicts="c", not_shown="n", eval_problems=8, runner="fake", version=2,
                grids={"grpo": (1e-5, 2e-5), "dpo": (1e-4, 2e-4, 5e-4)},
                article_rule=(({}, "nuanced", "r"),))
    return Claim(**{**spec, **kw})


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setitem(study.RUNNERS, "fake", fake_runner)


def test_next_lr_walks_the_1_2_5_series():
    assert [next_lr(x, True) for x in (1e-5, 2e-5, 5e-5)] == [2e-5, 5e-5, 1e-4]
    assert [next_lr(x, False) for x in (1e-5, 2e-5, 5e-5)] == [5e-6, 1e-5, 2e-5]
    assert next_lr(3e-4, True) == 5e-4 and next_lr(3e-4, False) == 2e-4


def test_edge_pick_widens_until_inside_and_runner_up_is_second(fake, tmp_path):
    rec = run_claim(claim(), bases=(0, 1), seeds=(0, 1), preset="tiny", runs_dir=tmp_path,
                    progress=False)
    t = rec["tuning"]
    assert t["runs"] == [[0, 100], [0, 101], [1, 102], [1, 103]]        # 4 seeds, 2 bases
    assert t["widened"] == {"grpo": [5e-5, 1e-4]} and t["edge"] == []   # 2e-5 -> 5e-5 -> inside
    assert t["pick"] == {"dpo": 2e-4, "grpo": 5e-5}
    assert t["grid"]["grpo"] == [1e-5, 2e-5, 5e-5, 1e-4]
    # runner-up: the second best score (1e-4 and 2e-5 are log-equidistant from 5e-5 at
    # 10^0.3 vs 10^0.4: 1e-4 is nearer)
    assert t["runner_up"] == {"dpo": 1e-4, "grpo": 1e-4}
    ru = rec["runner_up"]
    assert ru["lr"] == {m: t["runner_up"][m] for m in ("dpo", "grpo")}
    diffs = [d["diff"] for d in ru["comparison"]["diffs"]]
    expected = [fake_runner(None, 0, "grpo", ru["lr"]["grpo"], 0, s, 0)["final_acc"]
                - fake_runner(None, 0, "dpo", ru["lr"]["dpo"], 0, s, 0)["final_acc"]
                for _ in (0, 1) for s in (0, 1)]
    assert diffs == pytest.approx(expected)


def test_widening_stops_after_max_widen_and_says_so(fake, tmp_path):
    rec = run_claim(claim(grids={"grpo": (1e-7, 2e-7), "dpo": (1e-4, 2e-4, 5e-4)}), bases=(0, 1),
                    seeds=(0, 1), preset="tiny", runs_dir=tmp_path, progress=False)
    t = rec["tuning"]
    assert len(t["widened"]["grpo"]) == study.MAX_WIDEN and t["edge"] == ["grpo"]
    assert t["pick"]["grpo"] == max(t["grid"]["grpo"])


def test_version_1_claims_keep_their_tuning(fake, tmp_path):
    rec = run_claim(claim(version=1, article_rule=()), bases=(0,), seeds=(0, 1), preset="tiny",
                    runs_dir=tmp_path, progress=False)
    assert rec["tuning"]["seeds"] == [100, 101] and "widened" not in rec["tuning"]
    assert rec["tuning"]["pick"]["grpo"] == 2e-5 and "runner_up" not in rec
