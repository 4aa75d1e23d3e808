"""Exercise modules, one per topic (``<topic>.py``), graded by ``grader/checks/<topic>.py``.

In solutions/ the functions are complete: these are the reference answers. exercises/ is
generated from this folder by ``python -m grader.make_exercises``, which replaces each marked
solution region with ``raise NotImplementedError(...)``.
"""
