"""Hidden checks for exercises/diagnosis.py: the graded runs, which no student has seen.

grader/checks_hidden/diagnosis_runs.json (written by ``python -m grader.make_diagnosis``)
holds the hidden set, broken clinic runs from seeds drawn in secret, with their labels, and
the labels of the public practice set. Every hidden run adds two checks to the exercise:
``check_<run>_failure`` and ``check_<run>_remedy``, so a run is worth half of its share for
the right failure and half for the right remedy. An answer that is malformed, outside the
closed lists or raised fails both checks of its run.
"""
from __future__ import annotations

import json
from pathlib import Path

from grader.checks.diagnosis import PARTS, grade_part, label_lists, load_cases

DATA = Path(__file__).with_name("diagnosis_runs.json")


def load_runs(path: Path = DATA) -> dict:
    """{"hidden": [run, ...], "public": [labels of run_01, ...]}; a run as in load_cases."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: write it with `python -m grader.make_diagnosis`")
    return json.loads(path.read_text(encoding="utf-8"))


def run_check(run: dict, part: str, lists: dict[str, list[str]]):
    """The check of one half (``part``) of one hidden run."""
    def check(mod):
        grade_part(mod, run, part, lists)

    check.__name__ = check.__qualname__ = f"check_{run['id']}_{part}"
    return check


def hidden_checks(runs: list[dict], lists: dict[str, list[str]]) -> list:
    return [run_check(run, part, lists) for run in runs for part in PARTS]


EXERCISES = {"diagnose": hidden_checks(load_runs()["hidden"], label_lists(load_cases()))}
