"""The run clinic: every case's broken run shows its symptom and its fixed run does not (run
seeds 0 and 1), the closed lists of failures and remedies cover every case, bad arguments are
refused by name, and the metric and the option the GRPO cases rely on
(completions/clipped_ratio, GRPOConfig.max_new_tokens) do what they say."""
import json
import math
import re

import pytest
import torch

from refimpl.__main__ import main
from refimpl.core.rollouts import Rollout, completion_stats
from refimpl.core.sft import load_base
from refimpl.experiments.debugging import clinic
from refimpl.experiments.debugging.clinic import (CASES, FAILURES, REMEDIES, check_names, run_case,
                                        run_clinic)
from refimpl.experiments.debugging.clinic_case import Case
from refimpl.figures.plots_clinic import plot_dashboard, save_dashboard
from refimpl.methods.grpo_trainer import GRPOConfig, collect_batch

SOURCE = re.compile(r"[\w.-]+/[\w.-]+#\d+|arXiv:\d{4}\.\d{4,5}")


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(CASES))
def test_the_broken_run_shows_the_symptom_and_the_fixed_run_does_not(name, seed):
    case = CASES[name]
    broken, fixed = run_case(name, "broken", seed), run_case(name, "fixed", seed)
    for d in (broken, fixed):
        assert set(case.panels) <= set(d) and len({len(v) for v in d.values()}) == 1
        assert all(math.isfinite(x) for v in d.values() for x in v) and len(d["step"]) >= 3
    assert case.shows(broken), f"{name}, seed {seed}: the broken run lacks the symptom"
    assert not case.shows(fixed), f"{name}, seed {seed}: the fixed run still has it"


@pytest.mark.parametrize("name", list(CASES))
def test_the_committed_record_still_shows_what_the_case_says(name):
    """results/clinic/<case>.json (notebook 07 draws it) exists, and the case's predicate as the
    code says it now still finds the symptom in its broken run and not in its fixed run."""
    record = clinic.load_record(name)
    assert record["seed"] == 0 and record["command"].startswith("python -m refimpl clinic")
    assert clinic.reproduced(record), f"{name}: rerun `python -m refimpl clinic --cases {name}`"


def test_load_record_refuses_a_file_that_is_not_a_record(tmp_path):
    name = next(iter(CASES))
    (tmp_path / f"{name}.json").write_text(json.dumps({"name": "other"}))
    with pytest.raises(ValueError, match="not a record"):
        clinic.load_record(name, tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m refimpl clinic"):
        clinic.load_record(name, tmp_path / "missing")


def test_every_case_is_labelled_from_the_closed_lists():
    assert sum(len(m.CASES) for m in clinic.MODULES) == len(CASES), "a case name is used twice"
    failures = [c.failure for c in CASES.values()]
    assert len(set(failures)) == len(failures), "two cases claim one failure"
    for name, c in CASES.items():
        assert c.name == name and re.fullmatch(r"[a-z0-9_]+", name)
        assert FAILURES[c.failure] == c.title
        assert c.remedy in REMEDIES, f"{name}: remedy {c.remedy!r} is not in REMEDIES"
        assert SOURCE.fullmatch(c.source), f"{name}: source {c.source!r}"
        assert c.panels and c.read == c.panels[0]
        assert all(len(t) > 20 for t in (c.symptom, c.diagnosis, c.fix))
    assert set(REMEDIES) == {c.remedy for c in CASES.values()}, "a remedy no case uses"


def test_run_case_refuses_bad_arguments_by_name():
    name = next(iter(CASES))
    with pytest.raises(ValueError, match="unknown clinic case 'nope'"):
        run_case("nope", "broken", 0)
    with pytest.raises(ValueError, match="variant"):
        run_case(name, "healed", 0)
    with pytest.raises(ValueError, match="seed"):
        run_case(name, "broken", -1)
    for seed in (1.5, True, "0"):
        with pytest.raises(TypeError, match="seed"):
            run_case(name, "broken", seed)
    with pytest.raises(ValueError, match="distinct"):
        check_names([name, name])
    with pytest.raises(ValueError, match="distinct"):
        check_names([])


def _fake_case(name="fake_case"):
    def run(variant, seed):
        v = 1.0 if variant == "broken" else 0.0
        return {"step": [1.0, 2.0, 3.0], "loss": [v, v, v], "reward": [0.1, 0.2, 0.3 + seed]}
    return Case(name=name, title="a fake failure", source="owner/repo#1", symptom="s" * 30,
                diagnosis="d" * 30, fix="f" * 30, failure="fake", remedy="fake",
                panels=("loss", "reward"), run=run, shows=lambda d: d["loss"][0] > 0.5)


def test_run_clinic_writes_a_record_and_a_figure_per_case(tmp_path, monkeypatch):
    monkeypatch.setitem(clinic.CASES, "fake_case", _fake_case())
    records = run_clinic(tmp_path, seed=2, names=["fake_case"], progress=False,
                         save_figure=save_dashboard, command="the command")
    rec = json.loads((tmp_path / "fake_case.json").read_text())
    assert rec == json.loads(json.dumps(records[0]))
    assert rec["shows"] == {"broken": True, "fixed": False} and rec["seed"] == 2
    assert rec["command"] == "the command" and rec["dashboards"]["broken"]["reward"][-1] == 2.3
    assert (tmp_path / "fake_case.png").stat().st_size > 1000


def test_plot_dashboard_draws_both_runs_in_each_panel():
    import matplotlib.pyplot as plt
    case = _fake_case()
    fig = plot_dashboard(case, case.run("broken", 0), case.run("fixed", 0))
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["loss (read first)", "reward"]
    assert all(len(ax.get_lines()) == 2 for ax in axes)
    assert fig._suptitle.get_text() == case.title
    plt.close(fig)
    with pytest.raises(ValueError, match="neither dashboard"):
        plot_dashboard(case, {"step": [1]}, {"step": [1]})
    with pytest.raises(TypeError, match="broken"):
        plot_dashboard(case, [1, 2], {"step": [1]})


def test_clipped_ratio_counts_the_completions_without_eos():
    eos, pad = 2, 0
    ids = torch.tensor([[5, 6, eos, pad], [5, 6, 7, 8], [5, eos, pad, pad], [5, 6, 7, eos]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]]).bool()
    ro = Rollout(problems=["p0", "p1"], group_size=2, prompt_ids=ids, prompt_mask=mask,
                 completion_ids=ids, completion_mask=mask, old_logps=-mask.float(),
                 rewards=torch.zeros(4), texts=["a", "b", "c", "d"])
    assert completion_stats(ro, eos_id=eos)["completions/clipped_ratio"] == 0.25  # row 1 only
    assert "completions/clipped_ratio" not in completion_stats(ro)


def test_max_new_tokens_caps_the_completions_and_none_keeps_the_tasks_budget():
    tiny = load_base("tiny", progress=False)
    pool = tiny.train_problems(8)

    def batch(cfg):
        out, _ = collect_batch(tiny.model, tiny, cfg, lambda n: pool[:n], tiny.task.verify,
                               torch.Generator().manual_seed(0))
        return out
    base_cfg = GRPOConfig(prompts_per_step=4, group_size=4)
    default = batch(base_cfg)
    explicit = batch(GRPOConfig(prompts_per_step=4, group_size=4,
                                max_new_tokens=tiny.task.max_new_tokens()))
    assert torch.equal(default.completion_ids, explicit.completion_ids)     # None = today's
    short = batch(GRPOConfig(prompts_per_step=4, group_size=4, max_new_tokens=2))
    assert short.completion_ids.shape[1] <= 2
    assert completion_stats(short, tiny.tokenizer.eos_id)["completions/clipped_ratio"] > 0.9
    with pytest.raises(ValueError, match="max_new_tokens"):
        GRPOConfig(max_new_tokens=0).validate()
    with pytest.raises(TypeError, match="max_new_tokens"):
        GRPOConfig(max_new_tokens=2.5).validate()


@pytest.mark.parametrize("argv, words", [
    (["--seed", "-1"], "--seed"), (["--seed", "one"], "--seed"),
    (["--cases", "no_such_case"], "unknown clinic case"),
    (["--cases", ","], "unknown clinic case"),
])
def test_the_command_line_refuses_bad_arguments(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["clinic", *argv])
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_the_command_line_refuses_a_case_listed_twice(capsys):
    name = next(iter(CASES))
    with pytest.raises(SystemExit) as exc:
        main(["clinic", "--cases", f"{name},{name}"])
    assert exc.value.code == 2 and "twice" in capsys.readouterr().err
