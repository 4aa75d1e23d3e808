"""Grading results and their presentation: per-check, per-exercise and per-topic records,
the score (an exercise earns the fraction of its checks that pass), and the text table.
"""
from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field


@dataclass
class CheckResult:
    name: str
    passed: bool
    message: str
    seconds: float = 0.0


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
    def points(self) -> float:
        return self.passed / self.total if self.total else 0.0

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
        return {"topic": self.topic, "name": self.name, "passed": self.passed, "total": self.total,
                "points": round(self.points, 4), "complete": self.complete,
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


def gradescope_results(topics: list[TopicResult]) -> dict:
    """Gradescope's results.json: one test per exercise worth 1 point, its checks as the output.

    Fields as documented for Gradescope autograders: top-level ``score``, ``max_score``,
    ``output`` and ``tests``; each test has ``name``, ``score``, ``max_score``, ``status``,
    ``output`` and ``visibility``.
    """
    exercises = [e for t in topics for e in t.exercises]
    tests = []
    for e in exercises:
        lines = [f"{'PASS' if c.passed else 'FAIL'} {c.name}" + ("" if c.passed else f": {c.message}") for c in e.checks]
        tests.append({"name": f"{e.topic}/{e.name}", "score": round(e.points, 4), "max_score": 1.0,
                      "status": "passed" if e.complete else "failed", "output": "\n".join(lines),
                      "visibility": "visible"})
    notes = [f"{t.topic}: {n}" for t in topics for n in t.notes]
    s = totals(exercises)
    return {"score": s["points"], "max_score": float(len(exercises)), "output": "\n".join(notes) or "graded",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}
