"""Grading results and their presentation: per-check, per-exercise and per-topic records,
the score, the text table, Gradescope's results.json and what ``grader.check()`` returns.

Score: every check is a *value* check (it compares what the function returns, or its
gradient, with the right numbers) or a *property* check (detached, shape, dtype, no in-place
change, the right error, never raising: properties that a function returning zeros can have
too). An exercise earns

    (value checks passed + property checks passed, if every value check passed) / checks

points, so a property check earns its share only when the values it describes are right, and
the exercise is complete when every check passes.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field

VALUE, PROPERTY = "value", "property"
KINDS = (VALUE, PROPERTY)


@dataclass
class CheckResult:
    name: str
    passed: bool
    message: str
    seconds: float = 0.0
    kind: str = VALUE  # VALUE or PROPERTY (see the module docstring)


@dataclass
class ExerciseResult:
    topic: str
    name: str
    checks: list[CheckResult]

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def values_right(self) -> bool:
        """Every value check passed (vacuously true for an exercise of property checks only)."""
        return all(c.passed for c in self.checks if c.kind == VALUE)

    @property
    def credited(self) -> int:
        """Checks that earn points: the value checks passed, and the property checks passed
        once every value check passed."""
        return sum(c.passed and (c.kind == VALUE or self.values_right) for c in self.checks)

    @property
    def points(self) -> float:
        return self.credited / self.total if self.total else 0.0

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def first_failure(self) -> str:
        if self.checks and len({(c.passed, c.message) for c in self.checks}) == 1 and not self.checks[0].passed:
            return self.checks[0].message  # one reason for all (not implemented, import failed, ...)
        for c in self.checks:
            if not c.passed:
                if c.message.startswith("not implemented yet"):
                    return c.message
                name = c.name[len("check_"):] if c.name.startswith("check_") else c.name
                return f"{name}: {c.message}"
        return ""

    def to_json(self) -> dict:
        return {"topic": self.topic, "name": self.name, "passed": self.passed, "credited": self.credited,
                "total": self.total, "points": round(self.points, 4), "complete": self.complete,
                "first_failure": self.first_failure, "checks": [asdict(c) for c in self.checks]}


@dataclass
class TopicResult:
    topic: str
    file: str
    exercises: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 0
    grader_error: bool = False  # the checks module itself could not be loaded


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def totals(exercises: list[ExerciseResult]) -> dict:
    return {"exercises": len(exercises), "complete": sum(e.complete for e in exercises),
            "checks": sum(e.total for e in exercises), "passed": sum(e.passed for e in exercises),
            "points": round(sum(e.points for e in exercises), 4)}


def format_table(topics: list[TopicResult], header: str) -> str:
    exercises = [e for t in topics for e in t.exercises]
    rows = [("exercise", "topic", "checks", "points", "first failure")]
    for e in exercises:
        rows.append((e.name, e.topic, f"{e.passed}/{e.total}", f"{e.points:.2f}", e.first_failure))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    room = max(40, shutil.get_terminal_size((120, 20)).columns - sum(widths) - 9)
    lines = [header, ""]
    for r in rows:
        cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2]), r[3].rjust(widths[3])]
        lines.append(("  ".join(cells) + "  " + shorten(r[4], room)).rstrip())
    for t in topics:
        for note in t.notes:
            lines.append(f"note ({t.topic}): {shorten(note, 300)}")
    s = totals(exercises)
    lines += ["", f"total: {s['complete']}/{s['exercises']} exercises, {s['passed']}/{s['checks']} checks, "
                  f"{s['points']:.2f}/{s['exercises']} points"]
    return "\n".join(lines)


def _check_line(e: ExerciseResult, c: CheckResult) -> str:
    """One check in Gradescope's output: PASS or FAIL, and why it earns nothing when it does not."""
    if not c.passed:
        return f"FAIL {c.name}: {c.message}"
    if c.kind == PROPERTY and not e.values_right:
        return f"PASS {c.name} (a property check: it counts once every value check of {e.name} passes)"
    return f"PASS {c.name}"


def gradescope_results(topics: list[TopicResult]) -> dict:
    """Gradescope's results.json: one test per exercise worth 1 point, its checks as the output.

    Fields as documented for Gradescope autograders: top-level ``score``, ``max_score``,
    ``output`` and ``tests``; each test has ``name``, ``score``, ``max_score``, ``status``,
    ``output`` and ``visibility``.
    """
    exercises = [e for t in topics for e in t.exercises]
    tests = []
    for e in exercises:
        lines = [_check_line(e, c) for c in e.checks]
        tests.append({"name": f"{e.topic}/{e.name}", "score": round(e.points, 4), "max_score": 1.0,
                      "status": "passed" if e.complete else "failed", "output": "\n".join(lines),
                      "visibility": "visible"})
    notes = [f"{t.topic}: {n}" for t in topics for n in t.notes]
    s = totals(exercises)
    return {"score": s["points"], "max_score": float(len(exercises)), "output": "\n".join(notes) or "graded",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


@dataclass(repr=False)
class Grade:
    """What ``grader.check()`` returns: the graded topics and the report it printed.

    ``points`` and ``max_points`` sum the exercises (1 point each), ``scores`` maps each
    exercise to its points, ``complete`` says whether every check of every exercise passed.
    """
    topics: list[TopicResult]
    report: str

    @property
    def exercises(self) -> list[ExerciseResult]:
        return [e for t in self.topics for e in t.exercises]

    @property
    def points(self) -> float:
        return totals(self.exercises)["points"]

    @property
    def max_points(self) -> int:
        return len(self.exercises)

    @property
    def scores(self) -> dict[str, float]:
        return {e.name: round(e.points, 4) for e in self.exercises}

    @property
    def complete(self) -> bool:
        return bool(self.exercises) and all(e.complete for e in self.exercises)

    def __repr__(self) -> str:
        done = sum(e.complete for e in self.exercises)
        return f"Grade({self.points:.2f}/{self.max_points} points, {done}/{self.max_points} exercises complete)"
