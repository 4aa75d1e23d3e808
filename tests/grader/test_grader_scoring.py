"""Points for right values: a property check (detached, shape, untouched input, never raising,
...) earns its share only when every value check of its exercise passes (grader/report.py).

In this process: the scoring rule itself, and every exercise of every topic graded on the
solutions with their outputs replaced by zeros (0 points) and unchanged (full marks). Through
``python -m grader``: the fixtures in tests/grader/fixtures/ (a dpo_loss returning zeros, one
that overwrites its inputs, and two wrong variants of the solutions that used to get full
marks: process_reward without its guard, the GRPO loss without its length clamp).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from grader import make_exercises as mk
from grader.report import PROPERTY, VALUE, CheckResult, ExerciseResult
from grader.runner import DEFAULT_CHECKS_DIR, discover_topics, kind_of, load_checks

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "grader" / "fixtures"
TOPICS = [t for t in discover_topics(DEFAULT_CHECKS_DIR) if (REPO / "solutions" / f"{t.name}.py").is_file()]


def grade(*args: str) -> dict[str, dict]:
    """``python -m grader ARGS --json``: {exercise: its JSON row}."""
    proc = subprocess.run([sys.executable, "-m", "grader", *args, "--json"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert proc.stdout.strip(), proc.stderr
    return {e["name"]: e for e in json.loads(proc.stdout)["exercises"]}


def failed(row: dict) -> set[str]:
    return {c["name"] for c in row["checks"] if not c["passed"]}


# ----------------------------------------------------------------------------- the rule


def test_property_checks_count_only_once_the_values_are_right():
    def exercise(*checks):  # (kind, passed) per check
        return ExerciseResult("t", "e", [CheckResult(f"c{i}", ok, "", kind=k) for i, (k, ok) in enumerate(checks)])

    zeros = exercise((VALUE, False), (VALUE, False), (PROPERTY, True), (PROPERTY, True))
    assert (zeros.passed, zeros.credited, zeros.points) == (2, 0, 0.0)
    mutates = exercise((VALUE, True), (VALUE, True), (PROPERTY, True), (PROPERTY, False))
    assert (mutates.credited, mutates.points, mutates.complete) == (3, 0.75, False)
    half = exercise((VALUE, True), (VALUE, False), (PROPERTY, True), (PROPERTY, True))
    assert half.points == 0.25  # the value check that passes still counts
    only_properties = exercise((PROPERTY, True), (PROPERTY, False))
    assert only_properties.points == 0.5
    right = exercise((VALUE, True), (PROPERTY, True))
    assert right.points == 1.0 and right.complete


def test_every_check_declares_a_known_kind():
    kinds = {kind_of(c) for t in TOPICS for checks in load_checks(t, hidden=True).values() for c in checks}
    assert kinds == {VALUE, PROPERTY}


# ----------------------------------------------------------------------------- every exercise, in this process


def _solution(topic: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_scoring_{topic}", REPO / "solutions" / f"{topic}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _zeros(value, attached: bool):
    """A zero of the same shape and type; with ``attached``, a tensor keeps its graph (value * 0)."""
    import torch

    if isinstance(value, torch.Tensor):
        return value * 0 if attached and value.requires_grad else torch.zeros_like(value.detach())
    if isinstance(value, (bool, int, float, str)):
        return type(value)()
    if isinstance(value, (list, tuple)):
        return type(value)(_zeros(v, attached) for v in value)
    if isinstance(value, dict):
        return {k: _zeros(v, attached) for k, v in value.items()}
    return value


def _zeroed(topic: str, attached: bool) -> types.ModuleType:
    """The solutions module whose graded functions return zeros (and raise where they raise)."""
    module = _solution(topic)
    source = (REPO / "solutions" / f"{topic}.py").read_text(encoding="utf-8")
    for name in mk.regions_by_function(source):
        def zero(*args, _fn=getattr(module, name), **kwargs):
            return _zeros(_fn(*args, **kwargs), attached)
        setattr(module, name, zero)
    return module


def _points(checks: list, module) -> float:
    results = []
    for check in checks:
        try:
            check(module)
            results.append(CheckResult(check.__name__, True, "", kind=kind_of(check)))
        except Exception:  # noqa: BLE001 - any failure fails the check, as in the runner
            results.append(CheckResult(check.__name__, False, "", kind=kind_of(check)))
    return ExerciseResult("t", "e", results).points


@pytest.mark.parametrize("topic", TOPICS, ids=lambda t: t.name)
def test_zeros_score_nothing_and_the_solutions_everything(topic):
    exercises = load_checks(topic, hidden=True)
    right, detached, attached = _solution(topic.name), _zeroed(topic.name, False), _zeroed(topic.name, True)
    for name, checks in exercises.items():
        assert _points(checks, right) == 1.0, f"{topic.name}/{name}: the solution loses points in this harness"
        for module in (detached, attached):
            assert _points(checks, module) == 0.0, (
                f"{topic.name}/{name}: returning zeros earns points; mark the checks it passes with "
                "grader.checks.property_check")


# ----------------------------------------------------------------------------- fixtures, graded as students run it


def test_zeros_score_0_and_the_two_wrong_variants_lose_points(tmp_path):
    for topic, fixture in (("dpo", "dpo_returns_zeros.py"), ("rewards", "rewards_without_guard.py"),
                           ("grpo", "grpo_without_length_clamp.py")):
        shutil.copy(FIXTURES / fixture, tmp_path / f"{topic}.py")
    r = grade(str(tmp_path), "--only", "dpo_loss", "process_reward", "grpo_clipped_loss")
    zeros = r["dpo_loss"]
    assert zeros["points"] == 0 and zeros["passed"] == 2  # two property checks pass, and earn nothing
    assert {c["kind"] for c in zeros["checks"] if c["passed"]} == {PROPERTY}
    assert failed(r["process_reward"]) == {"check_never_raises"} and r["process_reward"]["points"] < 1
    assert failed(r["grpo_clipped_loss"]) == {"check_loss_empty_completion"}
    assert r["grpo_clipped_loss"]["points"] < 1


def test_a_right_loss_that_overwrites_its_inputs_gets_partial_credit():
    (row,) = grade(str(FIXTURES / "dpo_modifies_input.py"), "--topic", "dpo", "--only", "dpo_loss").values()
    assert failed(row) == {"check_inputs_are_not_modified"}
    assert row["credited"] == row["total"] - 1 == 5 and not row["complete"]
    assert row["points"] == pytest.approx(5 / 6, abs=1e-4)


def test_the_solutions_keep_full_marks():
    r = grade("solutions", "--hidden", "--expect", "full", "--only", "dpo_loss", "process_reward",
              "grpo_clipped_loss")
    assert sorted(r) == ["dpo_loss", "grpo_clipped_loss", "process_reward"]
    assert all(e["points"] == 1.0 and e["complete"] for e in r.values()), r
