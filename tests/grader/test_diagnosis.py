"""Tests of the diagnosis exercise: its data build (grader/make_diagnosis.py), its checks
(grader/checks/diagnosis.py, grader/checks_hidden/diagnosis.py) and what a release shows.

The build and the checks are tested on a fake clinic of three cases whose dashboards take
milliseconds; the grading runs (python -m grader, in subprocesses like a student's) use the
committed data written from the real clinic: the reference reader gets full marks on the hidden
set, the stub 0, a uniform random guesser about chance, and a misbehaving answer 0 with a message.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader import make_diagnosis as md
from grader.checks import diagnosis as checks
from refimpl.experiments.debugging.clinic_case import Case

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "grader" / "fixtures"


# ----------------------------------------------------------------------------- a fake clinic


def _grpo_board(seed: int, zero_std: float, kl_growth: float) -> dict:
    rng = random.Random(seed)
    steps = range(0, 40, 4)
    return {"step": [float(s) for s in steps],
            "frac_reward_zero_std": [min(1.0, zero_std + 0.05 * rng.random()) for _ in steps],
            "kl": [0.01 * math.exp(kl_growth * s) + 0.001 * rng.random() for s in steps],
            "reward": [0.3 + 0.01 * s + 0.02 * rng.random() for s in steps]}


def _dpo_board(seed: int) -> dict:
    rng = random.Random(seed)
    steps = range(0, 40, 4)
    return {"step": [float(s) for s in steps], "rewards/chosen": [-0.05 * s + 0.01 * rng.random() for s in steps],
            "rewards/margins": [0.1 * s + 0.01 * rng.random() for s in steps]}


def _case(name: str, failure: str, remedy: str, read: str, run) -> Case:
    return Case(name=name, title=name.replace("_", " "), source="arXiv:0000.00000", symptom="s", diagnosis="d",
                fix="f", failure=failure, remedy=remedy, panels=(read, "step"), run=run, shows=lambda board: True)


FAKE = SimpleNamespace(
    CASES={"flat": _case("flat", "no_signal", "more_samples", "frac_reward_zero_std",
                         lambda variant, seed: _grpo_board(seed, 0.9, 0.0)),
           "drift": _case("drift", "drift", "lower_lr", "kl", lambda variant, seed: _grpo_board(seed, 0.1, 0.12)),
           "squeeze": _case("squeeze", "displacement", "sft_term", "rewards/chosen",
                            lambda variant, seed: _dpo_board(seed))},
    FAILURES={"no_signal": "every group has one reward", "drift": "the policy runs away",
              "displacement": "the chosen answers lose probability"},
    REMEDIES={"more_samples": "sample more", "lower_lr": "a smaller step", "sft_term": "add an SFT term"})
FAKE.run_case = lambda name, variant, seed: FAKE.CASES[name].run(variant, seed)

FAKE_SOLUTION = '''"""A reader of the fake clinic's dashboards."""
# BEGIN LABELS (written by make_diagnosis)
FAILURES = {}
REMEDIES = {}
# END LABELS


def diagnose(dashboard):
    """The fake clinic's labels."""
    # BEGIN SOLUTION
    if "rewards/chosen" in dashboard:
        return "displacement", "sft_term"
    if dashboard["kl"][-1] > 0.5:
        return "drift", "lower_lr"
    return "no_signal", "more_samples"
    # END SOLUTION
'''


@pytest.fixture(scope="module")
def fake_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("diagnosis")
    (base / "solutions").mkdir()
    (base / "solutions" / "diagnosis.py").write_text(FAKE_SOLUTION)
    paths = md.Paths(teaching=base / "cases.json", practice=base / "exercises" / "diagnosis_runs",
                     hidden=base / "hidden.json", solution=base / "solutions" / "diagnosis.py",
                     exercises=base / "exercises")
    sizes = md.build(FAKE, paths, random.Random(7), per_case=2)
    return paths, sizes


# ----------------------------------------------------------------------------- the build


def test_build_writes_three_sets_of_the_right_sizes(fake_build):
    paths, sizes = fake_build
    assert (sizes["cases"], sizes["practice"], sizes["hidden"]) == (3, 3, 6)
    teaching = checks.load_cases(paths.teaching)
    assert teaching["failures"] == FAKE.FAILURES and teaching["remedies"] == FAKE.REMEDIES
    assert [(c["id"], c["failure"], c["remedy"], c["read"]) for c in teaching["cases"]] == [
        ("flat", "no_signal", "more_samples", "frac_reward_zero_std"), ("drift", "drift", "lower_lr", "kl"),
        ("squeeze", "displacement", "sft_term", "rewards/chosen")]
    assert teaching["cases"][0]["dashboard"] == md.canonical(FAKE.run_case("flat", "broken", 0), "flat")
    hidden = json.loads(paths.hidden.read_text())
    assert [r["id"] for r in hidden["hidden"]] == [f"hidden_0{k}" for k in range(1, 7)]
    assert sorted(r["case"] for r in hidden["hidden"]) == ["drift", "drift", "flat", "flat", "squeeze", "squeeze"]
    assert [r["id"] for r in hidden["public"]] == ["run_01", "run_02", "run_03"]
    seeds = [r["seed"] for r in hidden["hidden"] + hidden["public"]]
    assert len(set(seeds)) == 9 and 0 not in seeds  # secret seeds, none of them the teaching seed


def test_practice_files_are_unlabelled_dashboards_and_figures(fake_build):
    paths, _ = fake_build
    labels = {r["id"]: r for r in json.loads(paths.hidden.read_text())["public"]}
    names = sorted(p.name for p in paths.practice.iterdir())
    assert names == [f"run_0{k}.{ext}" for k in (1, 2, 3) for ext in ("json", "png")]
    for run_id, label in labels.items():
        board = json.loads((paths.practice / f"{run_id}.json").read_text())
        assert board == md.canonical(FAKE.run_case(label["case"], "broken", label["seed"]), run_id)
        assert list(board)[0] == "step" and list(board)[1:] == sorted(list(board)[1:])  # no hint in the order
        text = (paths.practice / f"{run_id}.json").read_text()
        for word in (label["case"], label["failure"], label["remedy"], str(label["seed"])):
            assert word not in text
        assert (paths.practice / f"{run_id}.png").read_bytes()[:4] == b"\x89PNG"


def test_build_writes_the_closed_lists_into_the_solution_and_the_stub(fake_build):
    paths, _ = fake_build
    solution = paths.solution.read_text()
    namespace: dict = {}
    exec(compile(solution, "diagnosis.py", "exec"), namespace)  # noqa: S102 - the test's own file
    assert namespace["FAILURES"] == FAKE.FAILURES and namespace["REMEDIES"] == FAKE.REMEDIES
    stub = (paths.exercises / "diagnosis.py").read_text()
    assert "'drift': 'the policy runs away'," in stub and "lower_lr" in stub
    assert 'raise NotImplementedError("Exercise: implement diagnose' in stub and "dashboard[\"kl\"]" not in stub


def test_build_stops_when_two_cases_share_a_dashboard(tmp_path, capsys):
    paths = md.Paths(teaching=tmp_path / "c.json", practice=tmp_path / "p", hidden=tmp_path / "h.json",
                     solution=tmp_path / "s.py", exercises=None)
    stuck = SimpleNamespace(**vars(FAKE))
    stuck.run_case = lambda name, variant, seed: FAKE.run_case("flat", variant, 5)  # every case, one run
    with pytest.raises(SystemExit, match="cases 'flat' and 'drift' give the same dashboard"):
        md.build(stuck, paths, random.Random(0), per_case=1)
    assert not paths.teaching.exists()  # nothing written
    runs = [{"case": "flat", "seed": s, "dashboard": {"step": [1.0]}} for s in (0, 8)]
    assert md.check_distinct(runs) == ["warning: 1 run(s) of case 'flat' repeat an earlier dashboard of it: "
                                       "its runs ignore the seed"]


@pytest.mark.parametrize("board, fragment", [
    ({"loss": [1.0]}, "no 'step' metric"),
    ({"step": [0.0, 1.0], "loss": [1.0]}, "one value per step"),
    ({"step": [0.0], "loss": [float("nan")]}, "'loss' has a NaN"),
])
def test_canonical_rejects_broken_dashboards(board, fragment):
    with pytest.raises(ValueError, match=fragment):
        md.canonical(board, "case x")


def test_canonical_orders_and_rounds():
    board = md.canonical({"z": [1 / 3], "step": [2], "a": [2.0]}, "x")
    assert list(board) == ["step", "a", "z"] and board["z"] == [0.333333] and board["step"] == [2.0]


# ----------------------------------------------------------------------------- the checks, in this process


def _runs(fake_build) -> tuple[list[dict], dict]:
    paths, _ = fake_build
    return json.loads(paths.hidden.read_text())["hidden"], checks.label_lists(checks.load_cases(paths.teaching))


def _module(answer):
    return SimpleNamespace(diagnose=answer if callable(answer) else lambda board: answer)


def test_right_answers_pass_and_wrong_ones_name_the_metric_not_the_label(fake_build):
    runs, lists = _runs(fake_build)
    namespace: dict = {}
    exec(compile(FAKE_SOLUTION, "diagnosis.py", "exec"), namespace)  # noqa: S102
    for run in runs:
        for part in checks.PARTS:
            checks.grade_part(_module(namespace["diagnose"]), run, part, lists)
    run = next(r for r in runs if r["case"] == "drift")
    with pytest.raises(AssertionError) as info:
        checks.grade_part(_module(("no_signal", "lower_lr")), run, "failure", lists)
    message = str(info.value)
    assert run["id"] in message and "'kl'" in message and "drift" not in message
    checks.grade_part(_module(("no_signal", "lower_lr")), run, "remedy", lists)  # the other half is right


@pytest.mark.parametrize("answer, fragment", [
    (["drift", "lower_lr"], "must return a tuple (failure, remedy) of two strings, got ['drift', 'lower_lr']"),
    (("drift",), "of two strings, got ('drift',)"),
    (("drift", 3), "of two strings"),
    (None, "got None"),
    (("drift", "sample more"), "'sample more' is not a remedy label; choose one of more_samples, lower_lr, sft_term"),
    (("runaway", "lower_lr"), "'runaway' is not a failure label"),
])
def test_malformed_or_unlisted_answers_fail_both_halves(fake_build, answer, fragment):
    runs, lists = _runs(fake_build)
    run = next(r for r in runs if r["case"] == "drift")
    for part in checks.PARTS:  # even the half that would be right earns nothing
        with pytest.raises(AssertionError, match="^" + run["id"]) as info:
            checks.grade_part(_module(answer), run, part, lists)
        assert fragment in str(info.value)


def test_a_raising_reader_fails_with_the_run_and_the_error(fake_build):
    runs, lists = _runs(fake_build)

    def broken(board):
        return board["no such metric"]

    with pytest.raises(AssertionError, match=r"hidden_0\d: diagnose raised KeyError: 'no such metric'"):
        checks.grade_part(_module(broken), runs[0], "failure", lists)

    def stub(board):
        raise NotImplementedError("Exercise: implement diagnose (see the docstring)")

    with pytest.raises(NotImplementedError):  # the runner reports "not implemented yet"
        checks.grade_part(_module(stub), runs[0], "failure", lists)


def test_hidden_checks_are_two_per_run(fake_build):
    from grader.checks_hidden.diagnosis import hidden_checks

    runs, lists = _runs(fake_build)
    made = hidden_checks(runs, lists)
    assert [c.__name__ for c in made[:2]] == ["check_hidden_01_failure", "check_hidden_01_remedy"]
    assert len(made) == 2 * len(runs)


# ----------------------------------------------------------------------------- the committed data

HIDDEN_FILE = REPO / "grader" / "checks_hidden" / "diagnosis_runs.json"
PRACTICE = REPO / "exercises" / "diagnosis_runs"


def _load_solution():
    namespace: dict = {}
    path = REPO / "solutions" / "diagnosis.py"
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the course's own solution
    return namespace


def test_committed_data_agrees_with_the_solution_and_the_clinic():
    teaching, hidden = checks.load_cases(), json.loads(HIDDEN_FILE.read_text())
    solution = _load_solution()
    assert solution["FAILURES"] == teaching["failures"] and solution["REMEDIES"] == teaching["remedies"]
    cases = {c["id"] for c in teaching["cases"]}
    assert sorted(r["case"] for r in hidden["public"]) == sorted(cases)
    assert {r["case"] for r in hidden["hidden"]} == cases and len(hidden["hidden"]) >= 2 * len(cases)
    assert sorted(p.name for p in PRACTICE.glob("*.json")) == [f"{r['id']}.json" for r in hidden["public"]]
    public = [(c["id"], json.dumps(c["dashboard"])) for c in teaching["cases"]]
    public += [(r["case"], json.dumps(json.loads((PRACTICE / f"{r['id']}.json").read_text()))) for r in hidden["public"]]
    graded = [(r["case"], json.dumps(r["dashboard"])) for r in hidden["hidden"]]
    owners: dict[str, set] = {}
    for case, board in public + graded:
        owners.setdefault(board, set()).add(case)
    assert all(len(o) == 1 for o in owners.values())  # no two cases share a dashboard
    seedless = {case for case in cases if sum(case in o for o in owners.values()) == 1}  # e.g. all zeros
    shown = {board for _, board in public}
    assert all(board not in shown for case, board in graded if case not in seedless)  # the hidden runs are new
    clinic = pytest.importorskip("refimpl.experiments.debugging.clinic")
    assert teaching["failures"] == dict(clinic.FAILURES) and teaching["remedies"] == dict(clinic.REMEDIES)
    assert {c["id"]: (c["failure"], c["remedy"], c["read"]) for c in teaching["cases"]} == {
        name: (case.failure, case.remedy, case.read) for name, case in clinic.CASES.items()}


def test_teaching_dashboards_are_the_clinics_committed_ones():
    """The public checks grade the dashboards results/clinic/ holds (python -m refimpl clinic,
    seed 0); a difference means one of the two is stale: rerun python -m grader.make_diagnosis."""
    compared = 0
    for case in checks.load_cases()["cases"]:
        path = REPO / "results" / "clinic" / f"{case['id']}.json"
        if path.is_file() and json.loads(path.read_text())["seed"] == 0:
            broken = json.loads(path.read_text())["dashboards"]["broken"]
            assert md.canonical(broken, case["id"]) == case["dashboard"], case["id"]
            compared += 1
    if not compared:
        pytest.skip("results/clinic/ holds no seed-0 record")


def test_the_reference_reader_gets_the_teaching_and_practice_runs_right():
    diagnose = _load_solution()["diagnose"]
    for case in checks.load_cases()["cases"]:
        assert diagnose(case["dashboard"]) == (case["failure"], case["remedy"]), case["id"]
    for label in json.loads(HIDDEN_FILE.read_text())["public"]:
        board = json.loads((PRACTICE / f"{label['id']}.json").read_text())
        assert diagnose(board) == (label["failure"], label["remedy"]), label


# ----------------------------------------------------------------------------- grading, as a student would


def grade(path: Path, *args: str) -> tuple[int, dict, str]:
    proc = subprocess.run([sys.executable, "-m", "grader", str(path), "--topic", "diagnosis", "--hidden", *args,
                           "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _hidden_checks(report: dict) -> list[dict]:
    (exercise,) = report["exercises"]
    found = [c for c in exercise["checks"] if c["name"].startswith("check_hidden_")]
    assert len(found) == 2 * len(json.loads(HIDDEN_FILE.read_text())["hidden"])
    return found


def test_the_reference_reader_gets_full_marks_and_the_stub_zero():
    code, report, err = grade(REPO / "solutions" / "diagnosis.py", "--expect", "full")
    assert code == 0, err
    assert report["total"]["points"] == 1.0 and all(c["passed"] for c in _hidden_checks(report))
    code, report, err = grade(REPO / "exercises" / "diagnosis.py", "--expect", "zero")
    assert code == 0, err
    (exercise,) = report["exercises"]
    assert exercise["points"] == 0 and all(c["message"] == "not implemented yet: diagnose" for c in exercise["checks"])


def test_a_random_guesser_scores_about_chance(tmp_path):
    stub = (REPO / "exercises" / "diagnosis.py").read_text()
    guess = textwrap.indent(textwrap.dedent("""\
        import json, random
        rng = random.Random(json.dumps(dashboard, sort_keys=True))  # one independent guess per dashboard
        return rng.choice(sorted(FAILURES)), rng.choice(sorted(REMEDIES))
        """), "    ")
    line = '    raise NotImplementedError("Exercise: implement diagnose (see the docstring)")\n'
    assert line in stub
    (tmp_path / "diagnosis.py").write_text(stub.replace(line, guess))
    code, report, err = grade(tmp_path / "diagnosis.py")
    assert code == 0, err
    found = _hidden_checks(report)
    teaching = checks.load_cases()
    p_f, p_r, n = 1 / len(teaching["failures"]), 1 / len(teaching["remedies"]), len(found) // 2
    chance = n * (p_f + p_r)  # expected checks passed: 0.5/|F| + 0.5/|R| per run, two checks a run
    sd = math.sqrt(n * p_f * (1 - p_f) + n * p_r * (1 - p_r))
    passed = sum(c["passed"] for c in found)
    assert abs(passed - chance) <= 3 * sd, (passed, chance, sd)
    assert passed < 2 * n  # and far from full marks


def test_malformed_and_unlisted_answers_score_zero_with_a_message():
    code, report, err = grade(FIXTURES / "diagnosis_misbehaves.py")
    assert code == 0, err  # the grader finished and wrote its report
    (exercise,) = report["exercises"]
    assert exercise["points"] == 0 and exercise["passed"] == 0
    messages = [c["message"] for c in _hidden_checks(report)]
    assert all(m.startswith("hidden_") for m in messages), messages
    for fragment in ("must return a tuple (failure, remedy) of two strings, got ['a list', 'not a tuple']",
                     "'not_a_failure_label' is not a failure label; choose one of",
                     "diagnose raised ValueError: cannot read this dashboard",
                     "of two strings, got 'one string'"):
        assert any(fragment in m for m in messages), fragment


# ----------------------------------------------------------------------------- what a student sees


def test_no_label_or_hidden_run_reaches_the_release(tmp_path):
    from grader.release import _write

    _write(tmp_path / "release", False, {})
    _write(tmp_path / "bundle", True, {})
    release = tmp_path / "release"
    hidden = json.loads(HIDDEN_FILE.read_text())
    assert not list(release.rglob("diagnosis_runs.json"))
    assert (tmp_path / "bundle" / "grader" / "checks_hidden" / "diagnosis_runs.json").is_file()  # it grades these
    shipped = sorted(p.name for p in (release / "exercises" / "diagnosis_runs").iterdir())
    assert shipped == sorted(p.name for p in PRACTICE.iterdir() if p.is_file())
    shown = [c["dashboard"] for c in checks.load_cases()["cases"]]
    shown += [json.loads(p.read_text()) for p in PRACTICE.glob("*.json")]
    secrets = [json.dumps(max((v for k, v in r["dashboard"].items() if k != "step"), key=lambda v: len(set(v))))
               for r in hidden["hidden"] if r["dashboard"] not in shown]  # a hidden run's most varied metric
    secrets += [json.dumps(r) for r in hidden["public"]]  # a practice run's labels
    assert all(s in HIDDEN_FILE.read_text() for s in secrets)  # so a copy of the hidden file would be found
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        text = path.read_bytes().decode("utf-8", "replace")
        found = [s[:60] for s in secrets if s in text]
        assert not found, (path, found)
    for label in hidden["public"]:  # a practice file is a dashboard: metric names and numbers only
        board = json.loads((release / "exercises" / "diagnosis_runs" / f"{label['id']}.json").read_text())
        assert all(isinstance(v, list) and all(isinstance(x, float) for x in v) for v in board.values())


def test_chance_and_the_notebook_are_documented():
    readme = (REPO / "exercises" / "README.md").read_text()
    assert "`exercises/diagnosis.py` | `diagnose`" in readme and "07_when_a_run_goes_wrong.ipynb" in readme
    grading = (REPO / "docs" / "GRADING.md").read_text()
    for text in (readme, grading):
        assert "0.5/|FAILURES| + 0.5/|REMEDIES|" in text
    lists = checks.label_lists(checks.load_cases())
    n_f, n_r = len(lists["failure"]), len(lists["remedy"])
    assert f"({0.5 / n_f + 0.5 / n_r:.3f} with {n_f} failures and {n_r} remedies)" in grading
