"""The head-to-head study and its command line (claims C16, C17; refimpl/experiments/head_to_head/compare.py).

The CLI runs end to end at the tiny preset (every method, two seeds, a budget of one step) and
must write its table and figures; budgets must mean what they say; every method is evaluated at
the same shares of its run; the table shows an interval only from 3 seeds on; the FLOPs
estimate is checked against hand-counted passes; bad arguments exit with status 2 and a clear
message.
"""
import csv
import json
import math
import subprocess
import sys
from dataclasses import replace

import pytest

from refimpl.__main__ import main
from refimpl.experiments.head_to_head.compare import (METHODS, CompareConfig, CompareResult,
                                                      config_for_preset, eval_fractions,
                                                      flops_per_step, method_config, run_compare)
from refimpl.experiments.head_to_head.compare_report import format_table, summarize
from refimpl.figures.plots_compare import plot_compare

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One CLI run at the tiny preset: every method, seeds 0 and 1, 16 samples each."""
    out = tmp_path_factory.mktemp("compare")
    argv = ["compare", "--preset", "tiny", "--methods", "dpo,rpo,grpo,reinforce,ppo", "--seeds", "0,1",
            "--budget-samples", "16", "--eval-problems", "8", "--out", str(out), "--quiet", "--threads", "1"]
    return out, main(argv)


def test_cli_writes_table_json_and_figures(tiny_run, capsys):
    out, code = tiny_run
    assert code == 0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["method"], int(r["seed"])) for r in rows) == sorted(
        (m, s) for m in ("dpo", "rpo", "grpo", "reinforce", "ppo") for s in (0, 1))
    for r in rows:
        assert 0.0 <= float(r["final_acc"]) <= 1.0 and float(r["wall_s"]) >= 0.0
    payload = json.loads((out / "results.json").read_text())
    assert payload["config"]["budget_samples"] == 16 and len(payload["runs"]) == 10
    assert set(payload["summary"]) == {"dpo", "rpo", "grpo", "reinforce", "ppo"}
    for name in ("acc_vs_progress.png", "acc_vs_time.png", "acc_vs_flops.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_cli_defaults_come_from_the_preset_and_it_prints_its_wall_time(tmp_path, capsys):
    from refimpl.__main__ import build_parser
    args = build_parser().parse_args(["compare"])
    assert args.seeds is None and args.budget_samples is None         # the preset's: 5 seeds on cpu
    assert main(["compare", "--preset", "tiny", "--methods", "reinforce", "--budget-samples", "16",
                 "--eval-problems", "4", "--out", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "seeds: [0, 1]" in out and "each seed's value" in out      # tiny's seeds: 2, no interval
    assert "wall time" in out


def test_sample_budget_is_respected(tiny_run):
    out, _ = tiny_run
    runs = json.loads((out / "results.json").read_text())["runs"]
    cc = config_for_preset("tiny", budget_samples=16)
    per_step = cc.prompts_per_step * cc.group_size
    for r in runs:
        if r["method"] in ("grpo", "reinforce", "ppo"):
            # online: whole steps of B*G samples, the fewest that reach the budget
            assert r["samples"] == math.ceil(16 / per_step) * per_step
            assert r["steps"] == math.ceil(16 / per_step)
        else:
            # offline: all samples drawn up front from the base, never more than the budget
            assert r["samples"] == (16 // cc.group_size) * cc.group_size <= 16
        curve = r["curve"]
        assert [p["samples"] for p in curve] == sorted(p["samples"] for p in curve)
        assert r["final_acc"] == curve[-1]["heldout_acc"]


def test_wall_time_budget_calibrates_steps(tmp_path):
    cc = config_for_preset("tiny", methods=("reinforce",), seeds=(0,), budget_s=0.5, calib_steps=2)
    res = run_compare(cc, progress=False)
    (r,) = res.runs
    assert r["steps"] >= 1 and r["wall_s"] > 0
    assert res.meta["budget"] == "0.5 s"
    for x in ("progress", "time_s", "flops"):
        plot_compare(res, x)
    with pytest.raises(ValueError, match="unknown x"):
        plot_compare(res, "steps")
    assert eval_fractions(res.config) == (0.0, 1.0)            # evals=1: start and end


def test_flops_per_step_counts_the_passes():
    cc = config_for_preset("cpu")
    N, Nc, L = 1000, 1200, 20.0
    BG = cc.prompts_per_step * cc.group_size
    grpo = method_config("grpo", cc, 0, 1, 1)
    rf = method_config("reinforce", cc, 0, 1, 1)
    ppo = method_config("ppo", cc, 0, 1, 1)
    dpo = method_config("dpo", cc, 0, 1, 1)
    # sampling 2NL + reference 2NL + mu updates of 6NL per completion
    assert flops_per_step("grpo", grpo, N, L) == (2 + 2 + 6 * grpo.inner_updates) * N * BG * L
    no_kl = replace(grpo, beta=0.0, inner_updates=1)           # no reference pass
    assert flops_per_step("grpo", no_kl, N, L) == flops_per_step("reinforce", rf, N, L) == 8 * N * BG * L
    assert flops_per_step("reinforce", rf, N, L) == 8 * N * BG * L          # no KL term by default
    assert flops_per_step("ppo", ppo, N, L, Nc) == (4 * N + 2 * Nc + 6 * ppo.inner_updates * (N + Nc)) * BG * L
    assert flops_per_step("dpo", dpo, N, L) == 6 * N * 2 * dpo.batch_size * L
    # with the default configs the per-step order is DPO < REINFORCE < GRPO < PPO
    f = {m: flops_per_step(m, c, N, L, Nc) for m, c in (("dpo", dpo), ("reinforce", rf), ("grpo", grpo), ("ppo", ppo))}
    assert f["dpo"] < f["reinforce"] < f["grpo"] < f["ppo"]


def test_config_validation():
    with pytest.raises(ValueError, match="unknown method"):
        CompareConfig(methods=("dpo", "sft")).validate()
    with pytest.raises(ValueError, match="exactly one"):
        CompareConfig(budget_s=5.0, budget_samples=100).validate()
    with pytest.raises(ValueError, match="budget_s"):
        CompareConfig(budget_s=0.0).validate()
    with pytest.raises(ValueError, match="preset"):
        config_for_preset("huge")
    assert set(METHODS) >= set(CompareConfig().methods)


@pytest.mark.parametrize("argv, message", [
    (["--methods", "dpo,sft"], "unknown method 'sft'"),
    (["--methods", ""], "at least one method"),
    (["--budget-s", "0"], "must be > 0"),
    (["--budget-s", "-3"], "must be > 0"),
    (["--budget-samples", "0"], "must be > 0"),
    (["--budget-samples", "many"], "expected an integer"),
    (["--preset", "huge"], "invalid choice: 'huge'"),
    (["--seeds", "0,x"], "seeds must be integers"),
    (["--budget-s", "5", "--budget-samples", "10"], "not allowed with"),
    (["--jobs", "2"], "unrecognized arguments: --jobs 2"),   # only `study` runs jobs in parallel
])
def test_bad_arguments_exit_2_with_a_message(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", *argv])
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_argument_in_a_subprocess_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "refimpl", "compare", "--methods", "dpo,magic"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown method 'magic'" in proc.stderr and "Traceback" not in proc.stderr


def test_summary_has_mean_and_spread(tiny_run):
    out, _ = tiny_run
    summary = json.loads((out / "results.json").read_text())["summary"]
    for m, s in summary.items():
        assert s["n"] == 2
        assert s["final_acc"]["min"] <= s["final_acc"]["mean"] <= s["final_acc"]["max"]


def test_dpo_run_counts_the_generation_of_its_pairs(cpu_base):
    cc = CompareConfig(methods=("dpo",), seeds=(0,), budget_s=None, budget_samples=128,
                       eval_problems=16, evals=1)
    res = run_compare(cc, base=cpu_base, progress=False)
    (r,) = res.runs
    assert r["pairs"] > 0 and r["samples"] == 128           # 16 prompts x G = 8, all up front
    assert r["steps"] == math.ceil(cc.dpo_epochs * r["pairs"] / 32)
    assert r["pairs_consumed"] == r["steps"] * min(32, r["pairs"])   # batch of 32 (all, if fewer)
    curve = r["curve"]
    assert curve[0]["samples"] == 0 and all(p["samples"] == 128 for p in curve[1:])
    assert curve[1]["time_s"] == pytest.approx(r["data_s"]) and r["data_s"] > 0
    assert r["flops_data"] > 0 and r["flops"] == pytest.approx(r["flops_data"] + r["steps"] * r["flops_per_step"])


def test_same_seed_same_numbers():
    cc = config_for_preset("tiny", methods=("reinforce", "grpo"), seeds=(3,), budget_samples=16)
    a, b = run_compare(cc, progress=False), run_compare(cc, progress=False)
    keys = ("final_acc", "samples", "steps", "flops_per_step")
    assert [[r[k] for k in keys] for r in a.runs] == [[r[k] for k in keys] for r in b.runs]
    assert [[p["heldout_acc"] for p in r["curve"]] for r in a.runs] == \
        [[p["heldout_acc"] for p in r["curve"]] for r in b.runs]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_gpu_preset_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compare", "--preset", "gpu"])
    assert e.value.code == 2 and "needs a CUDA GPU" in capsys.readouterr().err


def test_tuned_learning_rates_are_the_study_records_picks():
    from refimpl.experiments.head_to_head.compare import TUNED
    from refimpl.experiments.claims_study.study import load_record
    pick = load_record("C17")["tuning"]["pick"]
    assert {m: v["lr"] for m, v in TUNED["cpu"].items()} == pick, (
        "compare.TUNED is stale: copy the picks of results/study/C17.json")
    cc = config_for_preset("cpu", overrides={"grpo": {"beta": 0.0}})
    assert cc.overrides["grpo"] == {"lr": pick["grpo"], "beta": 0.0}
    assert method_config("dpo", cc, 0, 1, 1).lr == pick["dpo"]
    assert config_for_preset("cpu", tuned=False).overrides == {}


def _table_of(accs):
    cc = config_for_preset("cpu")
    runs = [{"method": "grpo", "seed": s, "final_acc": a, "base_acc": 0.4, "wall_s": 1.0,
             "samples": 1280, "steps": 10, "s_per_step": 0.1, "flops_per_step": 1e9,
             "flops": 1e10, "data_s": 0.0} for s, a in enumerate(accs)]
    seeds = tuple(range(len(accs)))
    return format_table(CompareResult(replace(cc, methods=("grpo",), seeds=seeds), runs,
                                      meta={"budget": "1280 samples"}))


def test_default_runs_five_seeds_and_the_table_gives_an_interval_only_from_three():
    from refimpl.core import stats
    cc = config_for_preset("cpu")
    assert cc.budget_s is None and cc.budget_samples == 1280 and len(cc.seeds) == 5
    ci = stats.t_interval([0.50, 0.54, 0.55])
    table = _table_of((0.50, 0.54, 0.55))
    assert f"0.530 [{ci['lo']:.3f}, {ci['hi']:.3f}]" in table and "95% t interval" in table
    two = _table_of((0.50, 0.54))
    assert "0.500 / 0.540" in two and "too few for an interval" in two
    assert "+-" not in two and "CI" not in two and "[" not in two.split("\n", 1)[1]
    summary = summarize(CompareResult(replace(cc, seeds=(0, 1)), [
        {"method": "grpo", "seed": s, "final_acc": a} for s, a in enumerate((0.5, 0.54))]))
    assert math.isnan(summary["grpo"]["final_acc"]["ci95"])             # no interval from 2


def test_every_method_is_evaluated_at_the_same_shares_of_its_run(cpu_base):
    """Online runs evaluate after every 2 of 10 steps; DPO (fewer steps, all its samples drawn
    before step 0) at the nearest steps to the same shares; and where DPO is evaluated does not
    change how it trains."""
    cc = config_for_preset("cpu", methods=("dpo", "reinforce"), seeds=(0,), budget_samples=320,
                           prompts_per_step=4, eval_problems=16, evals=5,
                           overrides={"dpo": {"batch_size": 8}})
    res = run_compare(cc, base=cpu_base, progress=False)
    runs = {r["method"]: r for r in res.runs}
    fractions = eval_fractions(cc)
    assert fractions == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert [p["progress"] for p in runs["reinforce"]["curve"]] == list(fractions)
    dpo = runs["dpo"]
    assert dpo["steps"] >= 5
    shares = [p["progress"] for p in dpo["curve"][1:]]        # [0]: the base, before the pairs
    assert len(shares) == len(fractions)
    assert all(abs(a - f) <= 0.5 / dpo["steps"] + 1e-9 for a, f in zip(shares, fractions))
    plain = run_compare(replace(cc, methods=("dpo",), evals=1), base=cpu_base, progress=False)
    assert len(plain.runs[0]["curve"]) == 3 and plain.runs[0]["final_acc"] == dpo["final_acc"]
