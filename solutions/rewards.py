"""Exercise: an exact process reward from a step verifier.

An outcome verifier V(x, y) says only whether the final answer is right: 0 or 1. A step
verifier says which steps of the shown working are right, so it can give partial credit.
For the addition task, ``task.verify_steps(problem, text)`` returns one bool per column sum
of the working (K = 3 for 3-digit problems) and ``task.verify(problem, text)`` returns the
outcome. Counting the final answer as one more step gives the process reward

    R_proc(x, y) = (number of right steps + V(x, y)) / (K + 1)        in [0, 1],

which notebook 05 compares with the outcome reward (claim C13). Check your work with
``python -m grader --only process_reward``. Do not import refimpl.core.rewards here.
"""


def process_reward(task, problem, text) -> float:
    """Score a completion's working with the step verifier; the answer counts as a step.

    Args:
        task: a refimpl.core.tasks.Task (e.g. ``get_task("add")``); use its ``verify_steps``
            (a list of bools, one per step of the working) and ``verify`` (0.0 or 1.0).
        problem: one of the task's Problems.
        text: the completion, e.g. "12,13,06|632" for "347+285=". It may be anything the
            policy wrote, including junk, an empty string or a non-string.

    Returns:
        A Python float: (sum of verify_steps + verify) / (len(verify_steps) + 1).
        For 347+285 and 3-digit addition: "12,13,06|632" -> 1.0 (3 steps + answer),
        "12,99,06|632" -> 0.75 (2 steps + answer), "12,13,06|633" -> 0.75 (3 steps, wrong
        answer), "" -> 0.0. It must never raise: whatever goes wrong scores 0.0.
    """
    # BEGIN SOLUTION
    try:
        steps = [bool(s) for s in task.verify_steps(problem, text)]
        outcome = float(task.verify(problem, text))
        return (sum(steps) + outcome) / (len(steps) + 1)
    except Exception:
        return 0.0
    # END SOLUTION
