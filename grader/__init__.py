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

Grade with ``python -m grader [PATH] [--only NAME ...]``. Modules: ``runner`` (command line,
the checks, time limits), ``sandbox`` (the child process, its limits, the call proxy),
``child`` and ``codec`` (the untrusted side and the plain-data channel), ``reference``
(expected values from solutions/ or a release's stored file), ``report`` (scores, the table,
Gradescope's results.json), ``release`` (student release and autograder bundle) and
``make_exercises`` (solutions/ -> exercises/). docs/GRADING.md describes the trust model.
"""
