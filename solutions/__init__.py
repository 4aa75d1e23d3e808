"""Exercise modules, one per topic (``<topic>.py``), graded by ``grader/checks/<topic>.py``.

In solutions/ the functions are complete (the reference answers). exercises/ is generated
from this folder by ``python -m grader.make_exercises``: each region between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` becomes ``raise NotImplementedError(...)``.
"""
