"""grader.check(): grading from a notebook cell prints the command line's report and returns it.

check() runs in a fresh Python here (as in a notebook kernel) and its printed report is
compared, character for character, with ``python -m grader --only NAME`` on the same
submission; both runs get the same table width (COLUMNS).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "grader" / "fixtures"
ENV = {**os.environ, "COLUMNS": "120", "PYTHONPATH": str(REPO)}


def run(args: list[str], cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_check_prints_the_command_lines_report(tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    shutil.copy(FIXTURES / "dpo_modifies_input.py", folder / "dpo.py")  # partial credit: a non-trivial row
    cli = run(["-m", "grader", str(folder), "--only", "dpo_loss"])
    assert cli.returncode == 0, cli.stderr
    cell = run(["-c", f"from grader import check\n"
                      f"grade = check('dpo_loss', path={str(folder)!r})\n"
                      "import sys; print(repr(grade), grade.scores, grade.complete, file=sys.stderr)"])
    assert cell.returncode == 0, cell.stderr
    assert cell.stdout == cli.stdout  # the same header, table and total
    assert "inputs_are_not_modified" in cell.stdout and "0.83" in cell.stdout
    assert "Grade(0.83/1 points, 0/1 exercises complete) {'dpo_loss': 0.8333} False" in cell.stderr


def test_check_from_the_notebooks_folder_grades_the_course_exercises():
    cell = run(["-c", "from grader import check\ngrade = check('dpo')\nprint(grade.points, grade.max_points)"],
               cwd=REPO / "notebooks")
    assert cell.returncode == 0, cell.stderr
    lines = cell.stdout.splitlines()
    assert lines[0].startswith("Grading exercises with the checks in ")  # the folder as the learner named it
    assert "not implemented yet: dpo_loss" in cell.stdout  # the untouched stubs of exercises/
    assert lines[-1] == "0.0 3"


def test_an_unknown_name_is_a_one_line_error_listing_the_choices():
    from grader import check

    with pytest.raises(ValueError) as info:
        check("dpo_los")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("unknown exercise or topic dpo_los (did you mean dpo_loss?); choose from: ")
    for choice in ("dpo", "dpo_loss", "grpo_clipped_loss", "process_reward", "rewards"):
        assert f" {choice}," in message or message.endswith(f" {choice}"), choice
    with pytest.raises(TypeError, match="name of an exercise or topic"):
        check(["dpo_loss"])


def test_importing_grader_stays_light():
    out = run(["-c", "import sys, grader; print('torch' in sys.modules, 'grader.runner' in sys.modules)"])
    assert out.stdout.split() == ["False", "False"], out.stderr
