"""Tests for refimpl.core.rewards: outcome, exact process reward, and the flawed prefix verifier (C13, C19).

The process reward is checked against an independent reference that recomputes the column
sums of each problem by hand from its operands; the flawed verifier is checked to accept a
strict superset of what the real verifier accepts (property tests with hypothesis).
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.core.rewards import (REL_TOL, REWARD_KINDS, make_reward_fn, outcome_reward,
                                  prefix_verify, process_reward, shipped_verify, tolerant_verify)
from refimpl.core.tasks import Problem, get_task

ADD = get_task("add", digits=3)
P = Problem(prompt="347+285=", answer=632, level=2, operands=(347, 285))  # 12,13,06|632
PROBLEMS = ADD.problems("train", 40, seed=7)


def slow_process_reward(problem, text, digits=3):
    """Reference: split the working by hand and compare with column sums done digit by digit."""
    a, b = problem.operands
    carry, right = 0, 0
    fields = text.split("|")[0].split(",") if isinstance(text, str) else []
    for i in range(digits):
        s = (a // 10 ** i) % 10 + (b // 10 ** i) % 10 + carry
        carry = s // 10
        w = fields[i] if i < len(fields) else ""
        right += len(w) == 2 and w.isascii() and w.isdigit() and int(w) == s
    parts = text.split("|") if isinstance(text, str) else []
    answer_ok = (len(parts) == 2 and parts[1].isascii() and parts[1].isdigit()
                 and not (len(parts[1]) > 1 and parts[1][0] == "0") and int(parts[1]) == problem.answer)
    return (right + answer_ok) / (digits + 1)


# ---------------------------------------------------------------- outcome and process -----

def test_outcome_reward_is_the_verifier():
    for q in PROBLEMS[:10]:
        right = ADD.target(q)
        assert outcome_reward(ADD, q, right) == 1.0
        assert outcome_reward(ADD, q, right + "1") == 0.0


@pytest.mark.parametrize("text, expected", [
    ("12,13,06|632", 1.0),      # everything right
    ("12,99,06|632", 0.75),     # one column wrong, answer right
    ("12,13,06|633", 0.75),     # working right, answer wrong
    ("12,13,07|732", 0.5),      # last column and answer wrong
    ("12,13", 0.5),             # cut off: two steps present and right
    ("", 0.0),
    ("+=+|||", 0.0),
])
def test_process_reward_hand_built(text, expected):
    assert process_reward(ADD, P, text) == pytest.approx(expected)


def test_process_reward_matches_slow_reference_on_mutations():
    for q in PROBLEMS:
        right = ADD.target(q)
        variants = [right, right[:-1], right[:3] + "00" + right[5:], right.replace(",", ";"),
                    right.split("|")[0], "|" + right, right + "|", right[::-1]]
        for text in variants:
            assert process_reward(ADD, q, text) == pytest.approx(slow_process_reward(q, text)), text


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="0123456789,|+=", max_size=20))
def test_process_reward_matches_slow_reference_on_random_text(text):
    assert process_reward(ADD, P, text) == pytest.approx(slow_process_reward(P, text))


def test_process_reward_other_tasks_are_multiples_of_one_over_steps_plus_one():
    add4 = get_task("add", digits=4)
    q = add4.problems("train", 1, seed=3)[0]
    right = add4.target(q)
    assert process_reward(add4, q, right) == 1.0
    assert process_reward(add4, q, right[:3] + "99" + right[5:]) == pytest.approx(4 / 5)
    cd = get_task("countdown")
    q = cd.problems("train", 1, seed=2)[0]
    assert process_reward(cd, q, cd.target(q)) == 1.0
    assert process_reward(cd, q, "") == 0.0


# ---------------------------------------------------------------- the flawed verifier -----

def test_prefix_verify_accepts_what_the_real_verifier_rejects():
    for text in ("12,13,06|63", "12,13,06|6", "12,13,06|", "6", "", "99,99,99|"):
        assert ADD.verify(P, text) == 0.0
        assert prefix_verify(ADD, P, text) == 1.0, text
    for text in ("12,13,06|633", "12,13,06|6320", "12,13,06|x", "7"):
        assert prefix_verify(ADD, P, text) == 0.0, text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789,|+=", max_size=20), st.sampled_from(PROBLEMS))
def test_prefix_verify_never_accepts_less_than_the_real_verifier(text, problem):
    assert prefix_verify(ADD, problem, text) >= ADD.verify(problem, text)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PROBLEMS), st.integers(0, 12), st.text(alphabet="0123456789", max_size=3))
def test_prefix_verify_on_true_answers_and_their_edits(problem, cut, tail):
    right = ADD.target(problem)
    assert prefix_verify(ADD, problem, right) == 1.0 == ADD.verify(problem, right)
    text = right[:len(right) - cut] + tail
    assert prefix_verify(ADD, problem, text) >= ADD.verify(problem, text)
    written = text.split("|")[-1]
    expected = 1.0 if str(problem.answer).startswith(written) else ADD.verify(problem, text)
    assert prefix_verify(ADD, problem, text) == expected


# ---------------------------------------------------------------- robustness -----

JUNK = [None, 12, 3.5, b"12,13,06|632", ["12"], object(), "\x00" * 5, "１２,１３,０６|６３２",
        "9" * 10_000, "|" * 50]


@pytest.mark.parametrize("kind", REWARD_KINDS)
def test_rewards_never_raise_on_junk(kind):
    fn = make_reward_fn(ADD, kind)
    for junk in JUNK:
        r = fn(P, junk)
        assert isinstance(r, float) and 0.0 <= r <= 1.0, (kind, junk, r)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_rewards_are_floats_in_unit_interval_on_any_text(text):
    for kind in REWARD_KINDS:
        r = make_reward_fn(ADD, kind)(P, text)
        assert isinstance(r, float) and 0.0 <= r <= 1.0


def test_make_reward_fn_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind"):
        make_reward_fn(ADD, "partial")


# ---------------------------------------------------------------- the tolerant grader -----

def test_tolerant_verify_accepts_near_misses_within_one_percent():
    assert REL_TOL == 0.01
    for text in ("12,13,06|632", "12,13,06|631", "12,13,06|626", "12,13,06|638", "99|630"):
        assert tolerant_verify(ADD, P, text) == 1.0, text        # |a - 632| <= 6.32
    for text in ("12,13,06|642", "12,13,06|625", "12,13,06|", "12,13,06|63x", "", None,
                 "12,13,06|６３２", "12,13,06|-632"):
        assert tolerant_verify(ADD, P, text) == 0.0, text


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PROBLEMS), st.integers(-40, 40), st.sampled_from([0.0, 0.01, 0.05]))
def test_tolerant_verify_is_the_closed_form_and_never_below_the_verifier(problem, delta, tol):
    text = ADD.target(problem).split("|")[0] + f"|{problem.answer + delta}"
    expected = float(abs(delta) <= tol * problem.answer)
    assert tolerant_verify(ADD, problem, text, rel_tol=tol) == expected
    assert tolerant_verify(ADD, problem, text, rel_tol=tol) >= ADD.verify(problem, text)


def test_tolerant_reward_fn_is_bound_by_make_reward_fn():
    fn = make_reward_fn(ADD, "tolerant")
    assert fn(P, "12,13,06|633") == 1.0 and fn(P, "12,13,06|700") == 0.0


# ------------------------------------------------------- the shipped grader (verl's math_equal) --

def test_shipped_verify_accepts_the_answer_and_its_percentage_forms_only():
    for text in ("12,13,06|632", "12,13,06|63200", "99|63200"):
        assert shipped_verify(ADD, P, text) == 1.0, text         # 632 and 632 * 100
    for text in ("12,13,06|631", "12,13,06|633", "12,13,06|6320", "12,13,06|6", "12,13,06|",
                 "", None, "12,13,06|-632", "12,13,06|63200.5"):
        assert shipped_verify(ADD, P, text) == 0.0, text


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 10 ** 6), st.integers(-200, 200))
def test_shipped_verify_is_isclose_at_1e_4(answer, delta):
    """The closed form: |a - r| <= 1e-4 max(|a|, |r|) for r in (answer / 100, answer, 100
    answer); so on answers below 10,000 a near miss (delta != 0) never passes."""
    problem = Problem(prompt="x=", answer=answer, level=0, operands=(answer, 0))
    a = answer + delta
    text = f"|{a}"
    close = any(abs(a - r) <= 1e-4 * max(abs(a), abs(r)) for r in (answer / 100, answer, answer * 100))
    assert shipped_verify(ADD, problem, text) == float(a >= 0 and close)
    if answer < 10_000 and delta != 0 and a >= 0:
        assert shipped_verify(ADD, problem, text) == float(a == 100 * answer)
