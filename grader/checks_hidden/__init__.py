"""Hidden checks: ``grader/checks_hidden/<topic>.py`` adds checks to the exercises of
``grader/checks/<topic>.py`` (same ``EXERCISES`` format). They run with ``python -m grader
--hidden`` and ship in the autograder bundle (``python -m grader bundle``), never in the
student release (``python -m grader release``): new inputs and hyper-parameters that a
submission tuned to the public checks has not seen.
"""
