"""Checks for exercises/diagnosis.py: read a run's dashboard, name its failure and its remedy.

``diagnose(dashboard)`` gets the metrics a training run logged ({TRL metric name: one float
per logged step}, "step" included) and returns ``(failure, remedy)``, two labels from the run
clinic's closed lists (FAILURES and REMEDIES of refimpl.experiments.debugging.clinic, copied into the
exercise).

The public checks below use the clinic's teaching cases: the seed-0 broken dashboard of every
case, the one notebook 07 shows next to its diagnosis, so their labels are public. They are
stored, with the closed lists, in grader/checks/diagnosis_cases.json, which
``python -m grader.make_diagnosis`` writes together with the practice runs
(exercises/diagnosis_runs/, unlabelled) and the hidden runs (grader/checks_hidden/).

Feedback on a wrong label names the metric to read (the case's first dashboard panel), never
the label. An answer that is not a tuple of two strings, a label outside the closed lists or
a call that raises earns nothing for that run, with a message that says so.
"""
from __future__ import annotations

import json
from pathlib import Path

from grader.checks import get_function, property_check
from grader.runner import describe_failure
from grader.sandbox import StudentProcessDied

DATA = Path(__file__).with_name("diagnosis_cases.json")
PARTS = ("failure", "remedy")  # the two halves of an answer, in order
MAX_LISTED = 4  # wrong runs listed in one message


def load_cases(path: Path = DATA) -> dict:
    """{"failures": {label: text}, "remedies": {label: text}, "cases": [run, ...]}; every run is
    {"id", "failure", "remedy", "read", "dashboard"}."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: write it with `python -m grader.make_diagnosis`")
    return json.loads(path.read_text(encoding="utf-8"))


def label_lists(data: dict) -> dict[str, list[str]]:
    """The closed lists by part: {"failure": [labels], "remedy": [labels]}."""
    return {"failure": list(data["failures"]), "remedy": list(data["remedies"])}


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def valid_answer(answer, run_id: str, lists: dict[str, list[str]]) -> tuple[str, str]:
    """``answer`` when it is (failure, remedy) with both labels from the closed lists, else an
    AssertionError that says what is wrong with it (never which label was right)."""
    if not (isinstance(answer, tuple) and len(answer) == 2 and all(isinstance(a, str) for a in answer)):
        raise AssertionError(f"{run_id}: diagnose must return a tuple (failure, remedy) of two strings, "
                             f"got {_short(answer)}")
    for part, label in zip(PARTS, answer):
        if label not in lists[part]:
            raise AssertionError(f"{run_id}: {_short(label)} is not a {part} label; choose one of "
                                 f"{', '.join(lists[part])}")
    return answer


def ask(mod, run_id: str, dashboard: dict, lists: dict[str, list[str]]) -> tuple[str, str]:
    """The student's valid answer for one dashboard (the call runs in the sandbox).

    An unwritten stub and a dead or hung student process propagate, so that the runner reports
    them as such; any other exception becomes an AssertionError naming the run."""
    fn = get_function(mod, "diagnose")
    try:
        answer = fn(dashboard)
    except (NotImplementedError, StudentProcessDied):
        raise
    except Exception as exc:  # noqa: BLE001 - the student's function raised: this run earns 0
        raise AssertionError(f"{run_id}: diagnose raised {describe_failure(exc, 0)}") from None
    return valid_answer(answer, run_id, lists)


def grade_part(mod, run: dict, part: str, lists: dict[str, list[str]]) -> None:
    """Pass when the student names this run's ``part`` ("failure" or "remedy") right."""
    answer = ask(mod, run["id"], run["dashboard"], lists)
    if answer[PARTS.index(part)] != run[part]:
        raise AssertionError(f"{run['id']}: the {part} is not {answer[PARTS.index(part)]!r}; "
                             f"read '{run['read']}' again")


def _all_runs(mod, runs: list[dict], part: str, lists: dict[str, list[str]]) -> None:
    """grade_part on every run; one AssertionError listing the runs that lost it."""
    wrong = []
    for run in runs:
        try:
            grade_part(mod, run, part, lists)
        except AssertionError as exc:
            wrong.append(str(exc))
    if wrong:
        more = f" (and {len(wrong) - MAX_LISTED} more)" if len(wrong) > MAX_LISTED else ""
        raise AssertionError(f"{len(wrong)} of {len(runs)} teaching cases: " + "; ".join(wrong[:MAX_LISTED]) + more)


# ----------------------------------------------------------------------------- the checks


def check_teaching_failures(mod):
    data = load_cases()
    _all_runs(mod, data["cases"], "failure", label_lists(data))


def check_teaching_remedies(mod):
    data = load_cases()
    _all_runs(mod, data["cases"], "remedy", label_lists(data))


@property_check  # a constant answer from the lists passes it too
def check_answers_in_closed_lists(mod):
    """Labels from the closed lists on dashboards the reader was not tuned to: each teaching
    dashboard cut to its first half, and with its metrics in reverse order."""
    data = load_cases()
    lists = label_lists(data)
    for run in data["cases"]:
        board = run["dashboard"]
        half = {k: v[: max(2, len(v) // 2)] for k, v in board.items()}
        ask(mod, f"{run['id']} (first half of its steps)", half, lists)
        ask(mod, f"{run['id']} (metrics in reverse order)", dict(reversed(list(board.items()))), lists)


EXERCISES = {
    "diagnose": [check_teaching_failures, check_teaching_remedies, check_answers_in_closed_lists],
}
