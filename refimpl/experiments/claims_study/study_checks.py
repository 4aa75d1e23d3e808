"""The argument check that every runner of the claims study shares: one run of an arm at a
learning rate with its run config, measured on some problems (``refimpl.experiments.
claims_study.study_runs`` lists the runners). Written with the foundations' checks
(``refimpl.core.checks``); it belongs to the study, which is its only user.
"""
from __future__ import annotations

from refimpl.core import checks


def check_study_run(who: str, method, methods: tuple, lr, cfg, cls, problems):
    """The arguments of one claims-study run of ``who``: ``method`` one of the runner's arms
    ``methods``, an lr > 0, a ``cls`` config (None: its defaults), validated, and at least one
    problem to measure on. Returns the config."""
    checks.one_of("method", method, methods)
    checks.positive("lr", lr)
    cfg = checks.config("cfg", cfg, cls)
    cfg.validate()
    if not problems:
        raise ValueError(f"{who} got no problems to measure on")
    return cfg
