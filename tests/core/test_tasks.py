"""Verifiers: known right and wrong answers, fuzzing, splits and levels."""
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.core.tasks import AdditionTask, Problem, get_task

ADD = get_task("add")
CD = get_task("countdown")


def test_addition_known_cases():
    p = Problem("347+285=", 632, 3, (347, 285))
    assert ADD.target(p) == "12,13,06|632"
    assert ADD.verify(p, "12,13,06|632") == 1.0
    assert ADD.verify(p, "99,99,99|632") == 1.0          # outcome reward ignores the working
    assert ADD.verify_steps(p, "99,13,06|632") == [False, True, True]
    for wrong in ["12,13,06|633", "12,13,06|0632", "12,13,06|", "632", "12,13,06|632|632",
                  "12,13,06|６３２", "", "|+632", "12,13,06| 632"]:
        assert ADD.verify(p, wrong) == 0.0, wrong
    assert ADD.verify(p, None) == 0.0 and ADD.verify(p, 632) == 0.0
    assert ADD.verify_steps(p, "garbage") == [False, False, False]
    assert AdditionTask.carries(347, 285, 3) == 2 and AdditionTask.carries(100, 100, 3) == 0


def test_countdown_known_cases():
    p = Problem("3,5,7>22:", 22, 2, (3, 5, 7))
    assert CD.verify(p, "3*5=15,15+7=22") == 1.0
    assert CD.verify(p, "7*3=21,21+5=26") == 0.0            # valid steps, wrong target
    assert CD.verify(p, "3*5=15,15+15=30") == 0.0           # 15 used twice
    assert CD.verify(p, "3*5=16,16+6=22") == 0.0            # wrong arithmetic, unknown number
    assert CD.verify(p, "5*3=15,7+15=22") == 1.0            # another valid answer
    assert CD.verify_steps(p, "3*5=15,15+8=23") == [True, False]
    assert CD.verify(p, "22") == 0.0 and CD.verify(p, "") == 0.0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+=,|- *x", max_size=24), st.integers(0, 3), st.integers(0, 50))
def test_addition_fuzz_never_raises_never_accepts_wrong(text, level, seed):
    p = ADD.problems("train", 1, level=level, seed=seed)[0]
    r = ADD.verify(p, text)
    assert r in (0.0, 1.0)
    if r == 1.0:                                             # independent check of the answer
        assert re.fullmatch(r"[^|]*\|(0|[1-9]\d*)", text) and int(text.split("|")[1]) == p.answer
    assert len(ADD.verify_steps(p, text)) == ADD.digits


def _slow_countdown_check(p, text):
    pool = list(p.operands)
    last = None
    for step in text.split(","):
        m = re.fullmatch(r"(\d+)([+*-])(\d+)=(\d+)", step)
        if not m:
            return False
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        val = {"+": a + b, "-": a - b, "*": a * b}[op]
        if val != c or val < 0 or a not in pool:
            return False
        pool.remove(a)
        if b not in pool:
            return False
        pool.remove(b)
        pool.append(c)
        last = c
    return last == p.answer


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789+-*=,", max_size=30), st.integers(1, 3), st.integers(0, 50))
def test_countdown_fuzz_never_raises_never_accepts_wrong(text, level, seed):
    p = CD.problems("train", 1, level=level, seed=seed)[0]
    r = CD.verify(p, text)
    assert r in (0.0, 1.0)
    if r == 1.0:
        assert _slow_countdown_check(p, text)


@pytest.mark.parametrize("task", [ADD, CD])
def test_targets_verify_and_splits_are_disjoint(task):
    train = task.problems("train", 300, seed=1)
    held = task.problems("heldout", 300, seed=1)
    assert {p.prompt for p in train}.isdisjoint({p.prompt for p in held})
    for p in train[:100] + held[:100]:
        t = task.target(p)
        assert task.verify(p, t) == 1.0 and all(task.verify_steps(p, t))
        assert len(t) + 1 <= task.max_new_tokens(p.level)
    assert task.problems("train", 5, seed=3) == task.problems("train", 5, seed=3)


def test_levels_are_carry_counts():
    for level in ADD.levels:
        for p in ADD.problems("train", 20, level=level):
            assert AdditionTask.carries(*p.operands, 3) == level == p.level


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="unknown task"):
        get_task("chess")
    with pytest.raises(ValueError, match="unknown split"):
        ADD.problems("test")
    with pytest.raises(ValueError, match="unknown level"):
        ADD.problems("train", 3, level=9)


def test_mixed_addition_has_two_formats_both_verified():
    mixed = get_task("add_mixed")
    problems = mixed.problems("train", 400, seed=2)
    short = [p for p in problems if mixed.answer_only(p)]
    assert 0.4 < len(short) / len(problems) < 0.6                      # about short_share = 0.5
    for p in problems[:100]:
        t = mixed.target(p)
        full = ADD.target(p)
        assert t == (f"|{p.answer}" if mixed.answer_only(p) else full)
        assert mixed.verify(p, t) == 1.0 and mixed.verify(p, full) == 1.0
        assert mixed.verify(p, f"|{p.answer + 1}") == 0.0
        assert all(mixed.verify_steps(p, t)) == (not mixed.answer_only(p))   # no working, no steps
    assert mixed.answer_only(problems[0]) == get_task("add_mixed").answer_only(problems[0])  # stable
    assert not any(get_task("add_mixed", short_share=0.0).answer_only(p) for p in problems)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="short_share"):
            get_task("add_mixed", short_share=bad)
