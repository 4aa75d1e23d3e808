"""Tests of the trusted/untrusted split (grader/sandbox.py), the holes the checks close, the bug
clinic, the student release, the autograder bundle and Gradescope's results.json.

Every attack in tests/grader/fixtures/attacks/ is graded as a student would submit it, with
an asserted outcome: the grader finishes with valid JSON, the attack earns nothing a wrong
answer would not, and no file of the course tree changes. The mutation tests run the checks
in this process on mutated copies of the solutions (no sandbox needed to test a check).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path

import pytest

from grader import make_exercises as mk
from grader.release import leaked_lines

REPO = Path(__file__).resolve().parents[2]
ATTACKS = REPO / "tests" / "grader" / "fixtures" / "attacks"
FIXTURE_CHECKS = REPO / "tests" / "grader" / "fixtures" / "checks"


def grade(*args: str, cwd: Path = REPO) -> tuple[int, dict, str]:
    proc = subprocess.run([sys.executable, "-m", "grader", *args, "--json"], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(cwd)})
    return proc.returncode, json.loads(proc.stdout), proc.stderr  # json.loads: the output parses


def rows(report: dict) -> dict[tuple[str, str], dict]:
    return {(e["topic"], e["name"]): e for e in report["exercises"]}


def tree_digest() -> str:
    """A digest of every file the grader could damage: the course tree minus caches."""
    h = hashlib.sha256()
    for top in ("grader", "solutions", "exercises", "refimpl", "tests", "README.md"):
        paths = [REPO / top] if (REPO / top).is_file() else sorted((REPO / top).rglob("*"))
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts:
                h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- attacks


def test_attacks_on_the_checks_earn_nothing(tmp_path):
    files = {"dpo": "dpo_imports_solutions.py", "grpo": "grpo_wraps_refimpl.py",
             "reinforce": "reinforce_patches_allclose.py", "offline_online": "offline_online_tensor_subclass.py",
             "logprobs": "logprobs_reads_frames.py", "rewards": "rewards_forges_results.py"}
    for topic, name in files.items():
        (tmp_path / f"{topic}.py").write_text((ATTACKS / name).read_text())
    before = tree_digest()
    code, report, err = grade(str(tmp_path), "--jobs", "2", "--only", *files)
    assert code == 0, err
    assert tree_digest() == before
    r = rows(report)
    # importing a reference answer: 0 for every exercise of the topic, and the message says why
    for topic in ("dpo", "grpo"):
        for (t, _), e in r.items():
            if t == topic:
                assert e["points"] == 0 and "may not import a reference answer" in e["first_failure"], e
    # patched torch.allclose / __eq__, a __torch_function__ subclass, a float subclass, stack
    # frames, forged result events, a replaced run_check: every check that compares a value fails
    value_checks = {
        ("reinforce", "reinforce_loss"): ["check_loss_hand_built", "check_loss_matches_reference", "check_loss_gradient"],
        ("reinforce", "rloo_baseline"): ["check_rloo_hand_built", "check_rloo_matches_reference",
                                         "check_rloo_excludes_self"],
        ("offline_online", "dpo_logit_gradient"): ["check_dpo_hand_built", "check_dpo_matches_autograd"],
        ("offline_online", "policy_gradient_logits"): ["check_pg_matches_autograd", "check_pg_closed_form"],
        ("offline_online", "gradient_mass_outside"): ["check_mass_outside", "check_offline_vs_online"],
        ("logprobs", "sequence_logprobs_from_logits"): ["check_uniform_logits_closed_form",
                                                        "check_matches_slow_reference"],
    }
    for key, names in value_checks.items():
        checks = {c["name"]: c for c in r[key]["checks"]}
        assert not any(checks[n]["passed"] for n in names), (key, r[key]["checks"])
    assert r[("rewards", "process_reward")]["points"] == 0
    assert report["total"]["complete"] == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="hiding the course tree needs root (a mount namespace)")
def test_reading_the_answers_by_path_earns_nothing(tmp_path):
    from grader.sandbox import course_paths
    assert str(REPO / "solutions") in course_paths() and str(REPO / "refimpl") in course_paths()
    source = (ATTACKS / "dpo_reads_solutions_file.py").read_text().replace("@REPO@", str(REPO))
    (tmp_path / "dpo.py").write_text(source)
    code, report, err = grade(str(tmp_path), "--only", "dpo")
    assert code == 0, err
    assert all(e["points"] == 0 for (t, _), e in rows(report).items() if t == "dpo"), report


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid sandbox needs root: without it a same-user child "
                    "can signal the grader and write the course tree")
def test_attacks_on_the_grading_process(tmp_path):
    drop = Path(tempfile.mkdtemp(prefix="grader-attack-", dir="/tmp"))
    os.chmod(drop, 0o777)  # the sandbox user writes the pid file here
    pidfile = drop / "sleeper.pid"
    source = (ATTACKS / "toy_attacks.py").read_text().replace("@REPO@", str(REPO)).replace("@PIDFILE@", str(pidfile))
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "toy.py").write_text(source)
    before = tree_digest()
    code, report, err = grade(str(folder), "--checks", str(FIXTURE_CHECKS), "--only", "toy", "--timeout", "3")
    assert code == 0, err  # SIGSTOP / SIGTERM of the grader and its group did not stop it
    assert tree_digest() == before  # the vandal could neither write nor delete course files
    r = rows(report)
    assert r[("toy", "add")]["complete"] and r[("toy", "absolute")]["complete"]
    for name in ("mul", "div", "sub", "half", "square"):
        assert r[("toy", name)]["points"] == 0, r[("toy", name)]
    assert not r[("toy", "neg")]["complete"]
    assert "timed out after 3 s" in r[("toy", "mul")]["first_failure"]  # it stopped itself
    assert "ran out of memory" in r[("toy", "square")]["first_failure"]  # 12 GiB under RLIMIT_AS
    pid = int(pidfile.read_text())  # the detached sleeper was killed with the rest
    assert not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status").read_text()


# ----------------------------------------------------------------------------- mutation holes


def _load(path: Path, name: str, replace: tuple[str, str] | None = None) -> types.ModuleType:
    source = path.read_text()
    if replace is not None:
        assert replace[0] in source, f"mutation {replace[0]!r} does not apply to {path.name}"
        source = source.replace(replace[0], replace[1])
    module = types.ModuleType(name)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - the course's own solutions
    return module


def _exercise_passes(topic: str, exercise: str, module) -> bool:
    checks = importlib.import_module(f"grader.checks.{topic}").EXERCISES[exercise]
    try:
        for check in checks:
            check(module)
    except AssertionError:
        return False
    return True


MUTATIONS = {  # name -> (topic, exercise, (text in solutions/<topic>.py, mutated text))
    "clip range hard-coded to (0.8, 1.2)": ("grpo", "grpo_clipped_loss", ("1 - clip_eps, 1 + clip_eps", "0.8, 1.2")),
    "group size hard-coded": ("grpo", "group_advantages", ("rewards.reshape(-1, group_size)", "rewards.reshape(-1, 4)")),
    "advantage eps hard-coded": ("grpo", "group_advantages", ("(std + eps)", "(std + 1e-4)")),
    "DPO beta hard-coded in the loss": ("dpo", "dpo_loss", ("-F.logsigmoid(beta *", "-F.logsigmoid(0.1 *")),
    "DPO beta hard-coded in the rewards": ("dpo", "dpo_loss", ("(beta * chosen_logratio).detach()",
                                                             "(0.1 * chosen_logratio).detach()")),
    "DPO implicit rewards not detached": ("dpo", "dpo_loss", ("(beta * chosen_logratio).detach()",
                                                             "(beta * chosen_logratio)")),
    "process_reward strips the text": ("rewards", "process_reward", (
        "task.verify_steps(problem, text)", "task.verify_steps(problem, text.strip())")),
    "RLOO group size hard-coded": ("reinforce", "rloo_baseline", ("group_size - 1", "3")),
    "offline DPO beta hard-coded": ("offline_online", "dpo_logit_gradient", (
        "weight = beta * torch.sigmoid(-h)", "weight = 0.1 * torch.sigmoid(-h)")),
    "process_reward guards too little": ("rewards", "process_reward", ("except Exception:", "except TypeError:")),
    "GRPO lengths not clamped": ("grpo", "grpo_clipped_loss", ("mask.sum(dim=1).clamp(min=1)", "mask.sum(dim=1)")),
}


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_every_mutation_class_loses_points(mutation):
    topic, exercise, replace = MUTATIONS[mutation]
    path = REPO / "solutions" / f"{topic}.py"
    assert _exercise_passes(topic, exercise, _load(path, f"_sol_{topic}"))  # the unmutated solution passes
    assert not _exercise_passes(topic, exercise, _load(path, f"_mut_{topic}", replace)), mutation


def test_process_reward_is_compared_on_untrimmed_text():
    from grader.checks.rewards import ADD3, P347, ref_process_reward

    assert ref_process_reward(ADD3, P347, " 12,13,06|632\n") == 0.5  # the example
    assert ref_process_reward(ADD3, P347, "12,13,06|632") == 1.0


# ----------------------------------------------------------------------------- bug clinic


def test_bug_clinic_fixes_pass_and_shipped_bugs_fail():
    from grader.checks.clinic import EXERCISES

    assert len(EXERCISES) >= 6
    fixed = _load(REPO / "solutions" / "clinic.py", "_clinic_fixed")
    buggy = _load(REPO / "exercises" / "clinic.py", "_clinic_buggy")
    for name, checks in EXERCISES.items():
        for check in checks:
            check(fixed)
            with pytest.raises(AssertionError):
                check(buggy)  # every check fails on the shipped bug: the stub scores 0
    exercise = (REPO / "exercises" / "clinic.py").read_text()
    assert "NotImplementedError" not in exercise and "BUGGY" not in exercise and "expm1(x) - x" not in exercise
    assert "torch.exp(x) - 1 - x" in exercise  # the region became its buggy line


def test_buggy_regions_need_a_function():
    source = "def f(x):\n    # BEGIN SOLUTION\n    # BUGGY: return x + 1\n    return x\n    # END SOLUTION\n"
    assert mk.strip_solutions(source, "solutions/s.py") == "def f(x):\n    return x + 1\n"
    assert mk.regions_by_function(source) == ["f"]


# ----------------------------------------------------------------------------- release, bundle, Gradescope


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One grading run of the solutions (hidden checks included) writes both folders."""
    base = tmp_path_factory.mktemp("release")
    release, bundle = base / "release", base / "bundle"
    proc = subprocess.run([sys.executable, "-m", "grader", "release", str(release), "--bundle", str(bundle)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr  # it requires full marks on the solutions
    assert proc.stdout.splitlines()[-1].startswith("total: ") and "0.00/" not in proc.stdout
    return release, bundle, proc.stderr


def test_release_holds_no_solution_text(built):
    release, bundle, notes = built
    assert not (release / "solutions").exists() and not (release / "grader" / "checks_hidden").exists()
    for name in ("exercises", "grader", "refimpl", "notebooks", "README.md"):
        assert (release / name).exists(), name
    assert (bundle / "grader" / "checks_hidden").is_dir() and (bundle / "run_autograder").is_file()
    for folder in (release, bundle):  # notebooks included: the build fails on any leaked line
        assert not leaked_lines(folder)
    lines = mk.solution_lines((REPO / "solutions" / "dpo.py").read_text())
    assert "chosen_logratio = policy_chosen_logps - ref_chosen_logps" in lines  # code, without its comment
    public = json.loads((release / "grader" / "expected.json").read_text())
    everything = json.loads((bundle / "grader" / "expected.json").read_text())
    assert set(public) < set(everything)  # the hidden checks' values are in the bundle only


def test_a_planted_solution_line_makes_the_release_fail(tmp_path):
    course = tmp_path / "course"
    for name in ("grader", "solutions", "refimpl", "notebooks", "exercises"):
        shutil.copytree(REPO / name, course / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    notebook = course / "notebooks" / "05_rl_with_verifiers.ipynb"
    data = json.loads(notebook.read_text())
    planted = "outcome=float( task.verify(problem, text) )  # spacing and a comment do not hide it"
    data["cells"].append({"cell_type": "code", "execution_count": None, "id": "planted", "metadata": {},
                          "outputs": [], "source": [planted]})
    notebook.write_text(json.dumps(data))
    out = tmp_path / "release"
    proc = subprocess.run([sys.executable, "-m", "grader", "release", str(out)], cwd=course, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(course)})
    assert proc.returncode == 1
    assert "line(s) of solutions/, so nothing was written" in proc.stderr
    leak = "a line of solutions/rewards.py: outcome = float(task.verify(problem, text))"
    assert f"  {out / 'notebooks' / notebook.name}: {leak}" in proc.stderr.splitlines()
    assert not out.exists()  # nothing is left behind to hand out
    assert "total:" not in proc.stdout  # it stopped before grading the solutions


def test_release_grades_with_stored_values_and_runs_refimpl_on_student_code(built, tmp_path):
    release, _, _ = built
    student = tmp_path / "student"
    student.mkdir()
    (student / "dpo.py").write_text((REPO / "solutions" / "dpo.py").read_text())
    (student / "clinic.py").write_text((release / "exercises" / "clinic.py").read_text())  # the shipped bugs
    code, report, err = grade(str(student), "--only", "dpo", "clinic", cwd=release)
    assert code == 0, err
    for e in report["exercises"]:  # no solutions/ here: the expected values come from expected.json
        assert e["points"] == (1.0 if e["topic"] == "dpo" else 0.0), e
    probe = textwrap.dedent("""\
        import shutil, sys, torch
        from refimpl.methods.dpo import dpo_gradient_weight
        try:
            dpo_gradient_weight(torch.zeros(2), torch.zeros(2))
        except NotImplementedError as e:
            print("STUB", e)
        shutil.copy(sys.argv[1], "exercises/dpo.py")
        del sys.modules["_student_exercise_dpo"]
        print("WRITTEN", dpo_gradient_weight(torch.zeros(2), torch.ones(2)).tolist())
        """)
    out = subprocess.run([sys.executable, "-c", probe, str(REPO / "solutions" / "dpo.py")], cwd=release,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(release)}, timeout=300)
    assert "STUB" in out.stdout and "exercises/dpo.py" in out.stdout and "python -m grader --only" in out.stdout
    assert "WRITTEN [0.731" in out.stdout, out.stderr  # sigmoid(1): refimpl ran the student's code


def test_bundle_writes_gradescope_results(built, tmp_path):
    _, bundle, _ = built
    student = tmp_path / "submission"
    student.mkdir()
    (student / "dpo.py").write_text((REPO / "solutions" / "dpo.py").read_text())
    (student / "grpo.py").write_text((ATTACKS / "grpo_wraps_refimpl.py").read_text())
    results = tmp_path / "results.json"
    code, report, err = grade(str(student), "--hidden", "--only", "dpo_loss", "group_advantages",
                              "--gradescope", str(results), cwd=bundle)
    assert code == 0, err
    data = json.loads(results.read_text())
    assert isinstance(data["score"], float) and data["max_score"] == 2.0 and isinstance(data["output"], str)
    tests = {t["name"]: t for t in data["tests"]}
    assert set(tests) == {"dpo/dpo_loss", "grpo/group_advantages"}
    for t in tests.values():  # the fields Gradescope documents for a test
        assert set(t) >= {"name", "score", "max_score", "output", "status", "visibility"}
        assert 0 <= t["score"] <= t["max_score"] == 1.0 and t["status"] in ("passed", "failed")
    assert tests["dpo/dpo_loss"]["score"] == 1.0 and "check_hidden_loss" in tests["dpo/dpo_loss"]["output"]
    assert tests["grpo/group_advantages"]["score"] == 0.0
    assert data["score"] == sum(t["score"] for t in tests.values())
