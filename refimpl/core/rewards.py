"""Reward functions built on the task's verifiers: outcome, exact process, and a flawed one.

RL with verifier rewards (RLVR; Lambert et al. 2024, "Tulu 3"; DeepSeek-AI 2025, R1) scores a
completion y of prompt x with a program instead of a learned model. Three programs here:

- ``outcome_reward``: the binary outcome verifier V(x, y) in {0, 1} (``task.verify``). It is
  unbiased (it is exactly the quantity we want to raise) but sparse: on a prompt the policy
  almost never solves, every sample scores 0 and the policy gradient
  E[(V - b) grad log pi] has nothing to work with.
- ``process_reward``: an exact process reward from the step verifier (``task.verify_steps``).
  With the working split into K steps s_1..s_K (K = digits for "add") and the final answer
  counted as one more step,

      R_proc(x, y) = (sum_k 1[s_k correct] + V(x, y)) / (K + 1)            in [0, 1].   (1)

  It is dense (a sample with one right column scores 1/(K+1) > 0) and its maximum 1 is
  reached only by a completely right completion, but it is a different objective: a wrong
  answer with a right working earns K/(K+1). "Process supervision" in the sense of
  Lightman et al. 2023 ("Let's Verify Step by Step"), with exact labels instead of human ones.
- ``prefix_verify``: a deliberately FLAWED outcome verifier. It accepts when the written
  answer is a prefix of the true one (``str(answer).startswith(written)``, the arguments of a
  "tolerate trailing junk" check swapped), so the empty answer "12,13,06|" passes for every
  problem. It accepts everything the real verifier accepts and more. A policy under RL finds
  the gap by stopping early (see notebook 05): the flawed reward rises while the verified
  accuracy falls. A test suite with a hole is hackable too. The hole is planted by hand: a
  demonstration of the mechanism.
- ``tolerant_verify``: a grader with a REALISTIC bug. It compares the written answer with the
  true one as numbers with a relative tolerance, ``|a - answer| <= rel_tol * |answer|``
  (rel_tol = 1%), the check that math graders apply to decimal answers, here applied to
  integers. On 3-digit sums it accepts near misses: an answer off by 1 or by 10 in a wrong
  units or tens column passes. Claim C19's study trains against it (``refimpl.experiments.claims_study.claims``).

Every function has the signature (task, problem, text) -> float, returns a float in [0, 1]
and never raises: junk text scores 0. ``make_reward_fn`` binds a task into the
(problem, text) -> float form that the trainers take as ``reward_fn``.
"""
from __future__ import annotations

import math

from typing import Callable

from refimpl.core import checks

REWARD_KINDS = ("outcome", "process", "prefix", "tolerant")
REL_TOL = 0.01                   # tolerant_verify's relative tolerance
SHIPPED_REL_TOL = 1e-4           # shipped_verify's: verl's prime_math math_equal default


def outcome_reward(task, problem, text) -> float:
    """Binary outcome reward V(x, y): 1.0 if the final answer in ``text`` is right, else 0.0."""
    try:
        return float(task.verify(problem, text))
    except Exception:  # a reward must survive any junk
        return 0.0


def process_reward(task, problem, text) -> float:
    """Exact process reward (1): (number of correct working steps + outcome) / (steps + 1).

    task: a refimpl.core.tasks.Task; problem: one of its Problems; text: a completion (no EOS).
    For "add" the steps are the ``digits`` column sums, so with digits=3 the reward is a
    multiple of 1/4: "12,13,06|632" for 347+285 gives 1.0, "12,13,07|732" gives 2/4 (two
    right columns, wrong answer), "" gives 0.0. For "countdown" the steps are the ones
    written. Returns a float in [0, 1]; never raises (junk scores 0.0).
    """
    try:
        steps = [bool(s) for s in task.verify_steps(problem, text)]
        outcome = float(task.verify(problem, text))
        return (sum(steps) + outcome) / (len(steps) + 1)
    except Exception:
        return 0.0


def prefix_verify(task, problem, text) -> float:
    """A FLAWED outcome verifier: 1.0 when the written answer is a prefix of the true one.

    The answer is what follows the last "|" in ``text`` (the whole text if there is none);
    it passes when it is made of ASCII digits (or is empty) and str(problem.answer) starts
    with it. So "12,13,06|632", "12,13,06|63" and "12,13,06|" all pass for 347+285=632,
    while "12,13,06|633" does not. Everything ``task.verify`` accepts also passes here.
    Never raises.
    """
    try:
        written = str(text).split("|")[-1]
        if written and not (written.isascii() and written.isdigit()):
            return outcome_reward(task, problem, text)
        if str(problem.answer).startswith(written):
            return 1.0
        return outcome_reward(task, problem, text)
    except Exception:
        return 0.0


def tolerant_verify(task, problem, text, rel_tol: float = REL_TOL) -> float:
    """A grader with a realistic bug: 1.0 when the written answer is within a relative
    tolerance of the true one, |a - answer| <= rel_tol * |answer| (else the real verifier's
    verdict).

    The answer is what follows the last "|" in ``text`` (the whole text if there is none),
    read only if it is made of ASCII digits. For 347+285=632 with rel_tol = 0.01,
    "12,13,06|632", "12,13,06|631" and "12,13,06|626" pass (|a - 632| <= 6.32) while
    "12,13,06|642" and "12,13,06|" do not. Everything ``task.verify`` accepts also passes.
    Never raises.
    """
    try:
        written = str(text).split("|")[-1]
        if written.isascii() and written.isdigit() and \
                abs(int(written) - problem.answer) <= rel_tol * abs(problem.answer):
            return 1.0
        return outcome_reward(task, problem, text)
    except Exception:
        return 0.0


def shipped_verify(task, problem, text, rel_tol: float = SHIPPED_REL_TOL) -> float:
    """The numeric branch of a math grader in use: 1.0 when the written answer a is within a
    relative tolerance of answer, answer / 100 or answer * 100 (|a - r| <= rel_tol * max(|a|,
    |r|), ``math.isclose``), else the real verifier's verdict.

    verl's ``verl/utils/reward_score/prime_math/grader.py`` (``math_equal``, adapted from
    ToRA's grader) compares numbers this way by default (tolerance=1e-4,
    include_percentage=True), so "632" and "63200" both pass for 632. On this task's answers
    (< 10,000) the 1e-4 tolerance accepts only the exact answer, and only the factor-100
    branch can accept a wrong one. The answer is read as in ``tolerant_verify``. Never raises.
    """
    try:
        written = str(text).split("|")[-1]
        if written.isascii() and written.isdigit() and any(
                math.isclose(int(written), r, rel_tol=rel_tol)
                for r in (problem.answer / 100, problem.answer, problem.answer * 100)):
            return 1.0
        return outcome_reward(task, problem, text)
    except Exception:
        return 0.0


_REWARDS = {"outcome": outcome_reward, "process": process_reward, "prefix": prefix_verify,
            "tolerant": tolerant_verify}


def make_reward_fn(task, kind: str = "outcome") -> Callable[[object, str], float]:
    """A trainer's reward_fn(problem, text) -> float for ``task``: "outcome", "process"
    (exact step reward, eq. 1), "prefix" (the planted hole) or "tolerant" (the realistic
    bug)."""
    checks.one_of("kind", kind, REWARD_KINDS)
    fn = _REWARDS[kind]

    def reward_fn(problem, text) -> float:
        return fn(task, problem, text)

    reward_fn.__name__ = f"{kind}_reward"
    return reward_fn
