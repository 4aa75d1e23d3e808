"""Auto-grader for the exercises.

Layout:

- ``solutions/<topic>.py``: reference solutions; the part a student writes sits between
  ``# BEGIN SOLUTION`` and ``# END SOLUTION`` lines.
- ``exercises/<topic>.py``: generated from solutions/ by ``python -m grader.make_exercises``
  (each region becomes ``raise NotImplementedError(...)``); students edit these.
- ``grader/checks/<topic>.py``: ``EXERCISES = {"exercise_name": [check_fn, ...]}``; each
  ``check_fn(mod)`` gets the student's imported module and raises AssertionError with a hint
  when the student's function is wrong.

Grade with ``python -m grader [PATH] [--only NAME ...]``. Modules: ``runner`` (command line,
one subprocess per topic, watchdog, restarts), ``worker`` (the subprocess: imports the
student's file and runs each check under a time limit), ``report`` (scores and the table),
``make_exercises`` (solutions/ -> exercises/). A crash, ``sys.exit`` or infinite loop in
student code fails only the checks it touches.
The grader isolates faults; it is not a security sandbox against deliberately hostile code.
"""
