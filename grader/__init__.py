"""Auto-grader for the exercises.

Layout:

- ``solutions/<topic>.py``: reference solutions; the part a student writes sits between
  ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines (``# BUGGY: code`` lines in a region make
  a bug-clinic exercise that starts from that code).
- ``exercises/<topic>.py``: generated from solutions/ by ``python -m grader.make_exercises``;
  students edit these.
- ``grader/checks/<topic>.py``: ``EXERCISES = {"exercise_name": [check_fn, ...]}``; each
  ``check_fn(mod)`` gets the student's module, whose functions run in a sandboxed child, and
  raises AssertionError with a hint when they are wrong. ``grader/checks_hidden/`` adds
  checks for the autograder only.

Grade with ``python -m grader [PATH] [--only NAME ...]``, or from a notebook cell with
``from grader import check; check("dpo_loss")`` (same sandbox, same printed report; see
:func:`check`). Modules: ``runner`` (command line, ``check()``, the checks, time limits),
``sandbox`` (the child process, its limits, the call proxy), ``child`` and ``codec`` (the
untrusted side and the plain-data channel), ``reference`` (expected values from solutions/ or
a release's stored file), ``report`` (scores, the table, Gradescope's results.json),
``release`` (student release and autograder bundle; ``delegates`` and ``student_calls`` hold
the code it puts into the release's refimpl) and ``make_exercises`` (solutions/ ->
exercises/). ``python -m grader`` (``__main__``) sends ``release`` and ``bundle`` to
``release`` and the rest to ``runner``. docs/GRADING.md describes the trust model and the scoring.
"""


def check(name: str, path="exercises", timeout: float = 10.0, show_output: bool = False):
    """Grade one exercise (``"dpo_loss"``) or topic (``"dpo"``) from Python, e.g. a notebook cell.

    Runs what ``python -m grader PATH --only NAME`` runs (the student's module in a sandboxed
    child process), prints the same report and returns a ``grader.report.Grade`` with
    ``.points``, ``.max_points``, ``.scores`` ({exercise: points}) and ``.complete``. A
    relative ``path`` that does not exist from the working directory is taken from the
    repository root, so ``check("dpo_loss")`` works from notebooks/ too (with the repository
    root on ``sys.path``). An unknown name raises ValueError listing the choices.
    """
    from grader.runner import check as run_check  # imported on use: ``import grader`` stays light

    return run_check(name, path, timeout=timeout, show_output=show_output)
