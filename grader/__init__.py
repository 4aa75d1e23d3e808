"""Auto-grader for the exercises.

Layout:

- ``solutions/<topic>.py``: reference solutions; the part a student writes sits between
  ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines.
- ``exercises/<topic>.py``: generated from solutions/ by ``python -m grader.make_exercises``
  (each region becomes ``raise NotImplementedError(...)``); students edit these.
- ``grader/checks/<topic>.py``: ``EXERCISES = {"exercise_name": [check_fn, ...]}``; each
  ``check_fn(mod)`` gets the student's imported module and raises AssertionError with a hint
  when the student's function is wrong.

Grade with ``python -m grader [PATH] [--only NAME ...]`` (see ``grader/runner.py``). Each topic
is graded in its own subprocess (``grader/worker.py``), each check under a time limit, so a
crash, ``sys.exit`` or infinite loop in student code fails only the checks it touches.
The grader isolates faults; it is not a security sandbox against deliberately hostile code.
"""
