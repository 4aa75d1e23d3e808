"""Tests of the grading framework: grader/runner.py, grader/worker.py, grader/make_exercises.py.

The grader is run as students run it (``python -m grader ... --json``, in subprocesses) on:
the generated stubs (zero; full marks on the solutions are tested by building the release in
tests/grader/test_grader_security.py), and the broken modules in
tests/grader/fixtures/ (a wrong answer, junk return values, and a toy topic whose exercises
hang, raise, exit, kill or crash their process). The toy topic needs no torch, so its runs
are cheap; every run that grades a torch topic costs one torch import per topic.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader import make_exercises as mk
from grader.runner import discover_topics, static_plan

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "grader" / "fixtures"
FIXTURE_CHECKS = FIXTURES / "checks"


def grade(*args: str) -> tuple[int, dict, str]:
    """Run `python -m grader ARGS --json` from the repository root: (exit code, report, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "grader", *args, "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), f"no JSON on stdout; stderr:\n{proc.stderr}"
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def rows(report: dict) -> dict[tuple[str, str], dict]:
    return {(e["topic"], e["name"]): e for e in report["exercises"]}


def student_folder(tmp_path: Path, **files: str) -> Path:
    """A folder holding fixture modules under their topic names: student_folder(t, toy='toy_broken.py')."""
    folder = tmp_path / "student"
    folder.mkdir()
    for topic, fixture in files.items():
        src = REPO / "solutions" / "logprobs.py" if fixture == "SOLUTION" else FIXTURES / fixture
        shutil.copy(src, folder / f"{topic}.py")
    return folder


# ----------------------------------------------------------------------------- reference and stubs


def test_generated_exercises_score_zero():
    code, report, err = grade("exercises", "--expect", "zero", "--jobs", "2")
    assert code == 0, err
    assert report["exercises"]
    for e in report["exercises"]:
        assert e["passed"] == 0 and e["points"] == 0.0 and not e["complete"], (e["topic"], e["name"])
        # the stub raises NotImplementedError, and the grader says so (the bug clinic's
        # stubs run: they return wrong numbers instead)
        if e["topic"] != "clinic":
            assert any(c["message"].startswith("not implemented yet") for c in e["checks"]), e
    logprobs = rows(report)[("logprobs", "sequence_logprobs_from_logits")]
    assert all(c["message"] == "not implemented yet: sequence_logprobs_from_logits" for c in logprobs["checks"])
    assert report["total"]["passed"] == 0


# ----------------------------------------------------------------------------- broken students


def test_wrong_answer_and_crashes_fail_only_themselves(tmp_path):
    folder = student_folder(tmp_path, logprobs="logprobs_ignores_mask.py", toy="toy_broken.py")
    code, report, err = grade(str(folder), "--checks", str(FIXTURE_CHECKS), "--timeout", "2", "--expect", "full")
    assert code == 1  # --expect full fails when any check fails...
    assert "lost points" in err
    r = rows(report)

    # the mask bug: the output is a (B,) float tensor, but the values are wrong, and the hint names the bug
    lp = r[("logprobs", "sequence_logprobs_from_logits")]
    checks = {c["name"]: c for c in lp["checks"]}
    assert checks["check_returns_a_float_tensor_of_shape_B"]["passed"]
    assert checks["check_inputs_are_not_modified"]["passed"]
    for name in ("check_uniform_logits_closed_form", "check_matches_slow_reference",
                 "check_masked_positions_do_not_contribute", "check_gradient_flows_to_logits"):
        assert not checks[name]["passed"], name
    assert "the mask is ignored" in checks["check_matches_slow_reference"]["message"]
    # the two checks it passes are property checks (shape and dtype, inputs untouched): with
    # every value wrong they earn nothing (grader/report.py)
    assert {checks[n]["kind"] for n in checks if checks[n]["passed"]} == {"property"}
    assert lp["passed"] >= 2 and lp["credited"] == 0 and lp["points"] == 0 and not lp["complete"]

    # toy: the correct exercises keep full marks whatever their neighbours do
    assert r[("toy", "add")]["complete"] and r[("toy", "absolute")]["complete"]
    expected = {
        "mul": "timed out after 2 s",                      # while True: the parent's wall-time limit
        "div": "ZeroDivisionError: division by zero",      # an ordinary exception, with its location
        "sub": "called sys.exit(3)",                       # SystemExit is caught like any exception
        "neg": "exited with code 7",                       # os._exit kills the child: restarted
        "square": "timed out after 2 s",                   # no signal to swallow: the parent waits
        "half": "SIGSEGV",                                 # segfault kills the child: restarted
    }
    for name, fragment in expected.items():
        e = r[("toy", name)]
        assert e["passed"] == 0, name
        assert fragment in e["checks"][0]["message"], (name, e["checks"][0]["message"])
    assert "toy.py:" in r[("toy", "div")]["checks"][0]["message"]  # points at the student's line
    # sys.exit did not end the worker: the second check of `sub` ran and failed the same way
    assert "called sys.exit(3)" in r[("toy", "sub")]["checks"][1]["message"]
    # after os._exit the rest of that exercise is not run; grading goes on with the next one
    assert r[("toy", "neg")]["checks"][1]["message"].startswith("not run")
    toy = next(t for t in report["topics"] if t["topic"] == "toy")
    assert toy["workers"] == 5  # the first child, then one restart after each of mul, neg, square, half
    assert any("about to exit" in n for n in toy["notes"])  # the student's last output is kept
    assert report["total"]["exercises"] == 9


def test_junk_return_and_exit_at_import(tmp_path):
    folder = student_folder(tmp_path, logprobs="logprobs_returns_string.py", toy="toy_exits_on_import.py")
    code, report, err = grade(str(folder), "--checks", str(FIXTURE_CHECKS), "--timeout", "5")
    assert code == 0, err  # a normal grading run exits 0 however badly the student did
    r = rows(report)
    lp = r[("logprobs", "sequence_logprobs_from_logits")]
    assert lp["points"] == 0
    assert all("expected a torch.Tensor, got str" in c["message"] for c in lp["checks"]), lp["checks"]
    for name in ("add", "mul", "div", "sub", "neg", "square", "half", "absolute"):
        e = r[("toy", name)]
        assert e["points"] == 0
        assert all("while importing the student module" in c["message"] for c in e["checks"]), e["checks"]
    assert "exited with code 1" in r[("toy", "add")]["checks"][0]["message"]


def test_wrong_shape_single_file_with_topic():
    code, report, err = grade(str(FIXTURES / "logprobs_wrong_shape.py"), "--topic", "logprobs")
    assert code == 0, err
    (e,) = report["exercises"]
    assert e["name"] == "sequence_logprobs_from_logits" and e["points"] == 0
    assert "expected shape (3,), got (3, 4)" in e["checks"][0]["message"]


# ----------------------------------------------------------------------------- options (toy only: no torch)


def test_only_expect_missing_file_and_table(tmp_path):
    folder = student_folder(tmp_path, toy="toy_solution.py")  # no logprobs.py in this folder
    code, report, _ = grade(str(folder), "--checks", str(FIXTURE_CHECKS), "--only", "add", "mul")
    assert code == 0
    assert sorted(rows(report)) == [("toy", "add"), ("toy", "mul")]
    assert report["total"] == {"exercises": 2, "complete": 2, "checks": 3, "passed": 3, "points": 2.0}

    code, report, err = grade(str(folder), "--checks", str(FIXTURE_CHECKS), "--only", "toy", "--expect", "zero")
    assert code == 1 and "toy/add" in err  # full marks are not zero
    assert len(report["exercises"]) == 8

    code, report, _ = grade(str(folder), "--checks", str(FIXTURE_CHECKS), "--expect", "full")
    assert code == 1  # the missing logprobs.py fails its checks
    lp = rows(report)[("logprobs", "sequence_logprobs_from_logits")]
    assert lp["points"] == 0 and lp["checks"][0]["message"].startswith("file not found")

    proc = subprocess.run([sys.executable, "-m", "grader", str(folder), "--checks", str(FIXTURE_CHECKS),
                           "--only", "no_such_exercise"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown exercise or topic no_such_exercise" in proc.stderr
    assert "add" in proc.stderr  # lists what exists

    proc = subprocess.run([sys.executable, "-m", "grader", str(folder), "--checks", str(FIXTURE_CHECKS),
                           "--only", "toy"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[-1] == "total: 8/8 exercises, 11/11 checks, 8.00/8 points"
    header = next(line for line in lines if line.startswith("exercise"))
    assert header.split() == ["exercise", "topic", "checks", "points", "first", "failure"]
    assert any(line.split()[:4] == ["add", "toy", "2/2", "1.00"] for line in lines)


def test_syntax_error_and_broken_checks_module(tmp_path):
    checks = tmp_path / "checks"
    checks.mkdir()
    shutil.copy(FIXTURE_CHECKS / "toy.py", checks / "toy.py")
    (checks / "broken.py").write_text('import no_such_module_here\nEXERCISES = {"thing": [print]}\n')
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "toy.py").write_text("def add(a, b)\n    return a + b\n")
    (folder / "broken.py").write_text("x = 1\n")
    code, report, err = grade(str(folder), "--checks", str(checks), "--expect", "zero")
    assert code == 1 and "could not be loaded" in err  # a broken checks module fails CI either way
    r = rows(report)
    assert "SyntaxError" in r[("toy", "add")]["first_failure"]
    assert r[("toy", "add")]["first_failure"].startswith("importing ")
    thing = r[("broken", "thing")]
    assert thing["points"] == 0 and "grader error" in thing["first_failure"]
    assert "no_such_module_here" in thing["first_failure"]


def test_static_plan_reads_the_exercises_literal(tmp_path):
    plan = static_plan(REPO / "grader" / "checks" / "logprobs.py")
    assert plan is not None and plan[0][0] == "sequence_logprobs_from_logits"
    assert "check_matches_slow_reference" in plan[0][1]
    dynamic = tmp_path / "dyn.py"
    dynamic.write_text("EXERCISES = dict(a=[print])\n")
    assert static_plan(dynamic) is None


# ----------------------------------------------------------------------------- make_exercises

SOLUTION = textwrap.dedent('''\
    """A module docstring."""
    import math


    def helper(x):
        return 2 * x


    def area(r):
        """Area of a circle of radius r."""
        if r < 0:
            raise ValueError("r must be >= 0")
        # BEGIN SOLUTION
        return math.pi * r * r
        # END SOLUTION


    class Shape:
        def grow(self, k):
            """Scale by k."""
            for _ in range(1):
                # BEGIN SOLUTION
                self.k = k
                # END SOLUTION
            return self
    ''')


def test_strip_solutions_replaces_regions_and_keeps_the_rest():
    out = mk.strip_solutions(SOLUTION, "solutions/shapes.py")
    assert "math.pi" not in out and "self.k = k" not in out and "SOLUTION" not in out
    assert '    raise NotImplementedError("Exercise: implement area (see the docstring)")\n' in out
    assert '            raise NotImplementedError("Exercise: implement Shape.grow (see the docstring)")\n' in out
    for kept in ('"""A module docstring."""', "import math", "def helper(x):", "return 2 * x",
                 '"""Area of a circle of radius r."""', 'raise ValueError("r must be >= 0")', "return self"):
        assert kept in out, kept
    assert mk.regions_by_function(SOLUTION) == ["area", "Shape.grow"]
    full = mk.make_exercise(SOLUTION, "shapes.py")
    assert full.startswith("# ---") and "GENERATED" in full and "YOUR file" in full
    assert mk.is_untouched(full) and not mk.is_untouched(full.replace("raise NotImplementedError", "return 0 #"))


@pytest.mark.parametrize("source, fragment", [
    ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "shapes.py:2: '# BEGIN SOLUTION' has no matching"),
    ("def f():\n    return 1\n    # END SOLUTION\n", "shapes.py:3: '# END SOLUTION' without a matching"),
    ("def f():\n    # BEGIN SOLUTION\n    # BEGIN SOLUTION\n    return 1\n    # END SOLUTION\n",
     "shapes.py:3: '# BEGIN SOLUTION' inside the region opened at line 2"),
    ("x = 1\n# BEGIN SOLUTION\ny = 2\n# END SOLUTION\n", "shapes.py:2: region is not inside a function"),
    ("def f():\n    # BEGIN SOLUTIONS\n    return 1\n", "shapes.py:2: '# BEGIN SOLUTIONS' looks like a region marker"),
    ("from solutions.logprobs import f\n", "shapes.py:1: solutions must not import from solutions/"),
    ("def f(:\n", "shapes.py:1: the solution does not parse"),
])
def test_malformed_regions_name_file_and_line(source, fragment):
    with pytest.raises(mk.RegionError) as info:
        mk.strip_solutions(source, "solutions/shapes.py")
    assert fragment in str(info.value)


def test_malformed_region_makes_the_command_fail(tmp_path, capsys):
    sols = tmp_path / "solutions"
    sols.mkdir()
    (sols / "bad.py").write_text("def f():\n    # BEGIN SOLUTION\n    return 1\n")
    assert mk.main(["--solutions", str(sols), "--out", str(tmp_path / "ex")]) == 1
    assert "solutions/bad.py:2" in capsys.readouterr().err


def test_check_passes_on_the_repository(capsys):
    assert mk.main(["--check"]) == 0, capsys.readouterr().err


def test_check_fails_on_a_stale_copy(tmp_path, capsys):
    out = tmp_path / "exercises"
    shutil.copytree(REPO / "exercises", out, ignore=shutil.ignore_patterns("__pycache__"))
    assert mk.main(["--check", "--out", str(out)]) == 0
    (out / "logprobs.py").write_text((out / "logprobs.py").read_text() + "\n# an old version\n")
    (out / "README.md").unlink()
    (out / "removed_topic.py").write_text("x = 1\n")
    capsys.readouterr()
    assert mk.main(["--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "out of date" in err and "python -m grader.make_exercises" in err
    assert "logprobs.py: differs" in err and "README.md: missing" in err and "removed_topic.py: has no" in err


def test_generation_copies_python_only_and_never_overwrites_student_work(tmp_path, capsys):
    sols, out = tmp_path / "solutions", tmp_path / "exercises"
    sols.mkdir()
    (sols / "shapes.py").write_text(SOLUTION)
    (sols / "shapes.md").write_text("# The derivation (an answer)\n")
    assert mk.main(["--solutions", str(sols), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "shapes.py"]
    readme = (out / "README.md").read_text()
    assert "`exercises/shapes.py` | `area`, `Shape.grow`" in readme and "python -m grader" in readme

    # an untouched generated file follows its solution
    (sols / "shapes.py").write_text(SOLUTION.replace("A module docstring", "A new docstring"))
    assert mk.main(["--solutions", str(sols), "--out", str(out)]) == 0
    assert "A new docstring" in (out / "shapes.py").read_text()

    # a file the student edited is not overwritten, unless --force
    edited = (out / "shapes.py").read_text().replace(
        'raise NotImplementedError("Exercise: implement area (see the docstring)")', "return 3.14 * r * r")
    (out / "shapes.py").write_text(edited)
    (sols / "shapes.py").write_text(SOLUTION)
    capsys.readouterr()
    assert mk.main(["--solutions", str(sols), "--out", str(out)]) == 1
    assert "edited after generation" in capsys.readouterr().err
    assert (out / "shapes.py").read_text() == edited
    assert mk.main(["--solutions", str(sols), "--out", str(out), "--force"]) == 0
    assert (out / "shapes.py").read_text() == mk.make_exercise(SOLUTION, "shapes.py")

    # a generated file whose solution disappeared is removed; --check is then clean
    (sols / "shapes.py").unlink()
    assert mk.main(["--solutions", str(sols), "--out", str(out)]) == 0
    assert not (out / "shapes.py").exists()
    assert mk.main(["--check", "--solutions", str(sols), "--out", str(out)]) == 0


def test_repository_exercises_keep_signatures_and_docstrings():
    for sol in sorted((REPO / "solutions").glob("*.py")):
        ex = (REPO / "exercises" / sol.name).read_text()
        assert "# BEGIN SOLUTION" not in ex and "# END SOLUTION" not in ex, sol.name
        for name in mk.regions_by_function(sol.read_text()):
            if mk.BUGGY not in sol.read_text():  # a bug clinic starts from its buggy lines instead
                assert f'NotImplementedError("Exercise: implement {name} (see the docstring)")' in ex
            assert f"def {name.split('.')[-1]}(" in ex
    # the written derivations (solutions/*.md) are answers: only the README is markdown here
    assert {p.name for p in (REPO / "exercises").glob("*.md")} == {"README.md"}


# ----------------------------------------------------------------------------- the logprobs checks themselves


def _logprobs_mutants():
    import torch

    def gathered(logits, ids):
        return torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # (B, T)

    # mistake -> (a wrong implementation, the check that must catch it)
    return {
        "ignores the mask": (lambda z, y, m: gathered(z, y).sum(-1), "check_matches_slow_reference"),
        "mean instead of sum": (lambda z, y, m: (gathered(z, y) * m).sum(-1) / m.sum(-1).clamp(min=1),
                                "check_uniform_logits_closed_form"),
        "shifted by one column": (lambda z, y, m: (gathered(z, torch.roll(y, -1, 1)) * m).sum(-1),
                                  "check_matches_slow_reference"),
        "log of softmax": (lambda z, y, m: (torch.log(torch.softmax(z, -1)).gather(-1, y.unsqueeze(-1))
                                            .squeeze(-1) * m).sum(-1), "check_large_logits_are_stable"),
        "detached": (lambda z, y, m: (gathered(z, y) * m).sum(-1).detach(), "check_gradient_flows_to_logits"),
        "float64 output": (lambda z, y, m: (gathered(z.double(), y) * m).sum(-1),
                           "check_returns_a_float_tensor_of_shape_B"),
        "modifies logits in place": (lambda z, y, m: (gathered(z.masked_fill_(~m[..., None], 0.0), y) * m).sum(-1),
                                     "check_inputs_are_not_modified"),
    }


@pytest.mark.parametrize("mutant", list(_logprobs_mutants()))
def test_logprobs_checks_catch_classic_mistakes(mutant):
    from types import SimpleNamespace

    from grader.checks.logprobs import EXERCISES

    fn, catcher = _logprobs_mutants()[mutant]
    (check,) = [c for c in EXERCISES["sequence_logprobs_from_logits"] if c.__name__ == catcher]
    with pytest.raises(AssertionError):
        check(SimpleNamespace(sequence_logprobs_from_logits=fn))


def test_logprobs_checks_pass_the_reference_in_process():
    import importlib.util
    from types import SimpleNamespace

    from grader.checks.logprobs import EXERCISES, slow_sequence_logprobs

    spec = importlib.util.spec_from_file_location("_sol_logprobs", REPO / "solutions" / "logprobs.py")
    sol = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sol)
    for check in EXERCISES["sequence_logprobs_from_logits"]:
        check(sol)
    # the slow reference on a case worked by hand: V = 2, logits (0, log 3) give probabilities (1/4, 3/4)
    import math

    import torch
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    ids, mask = torch.tensor([[1, 0]]), torch.tensor([[True, False]])
    assert slow_sequence_logprobs(logits, ids, mask) == pytest.approx([math.log(0.75)])
    with pytest.raises(AssertionError, match="expected a torch.Tensor, got str"):
        EXERCISES["sequence_logprobs_from_logits"][0](SimpleNamespace(sequence_logprobs_from_logits=lambda *a: "x"))
