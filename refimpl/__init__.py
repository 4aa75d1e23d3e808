"""refimpl: reference implementations behind the DPO vs GRPO vs verifier-RL notebooks.

Four subpackages, each importing only itself and the ones above it (docs/ARCHITECTURE.md
gives the layers inside them; tests/test_architecture.py checks the imports):

1. ``core``: tokenizer, model, sampling, log-probs, rollouts, tasks and verifiers, evaluation,
   the supervised base policy and what every trainer shares (``training``)
2. ``methods``: per method a loss (pure tensor functions: ``dpo``, ``grpo``, ``kl``,
   ``reinforce``, ``ppo``), its trainer (one config dataclass, collect -> update -> log) with
   its registry row beside it, and its analysis; ``registry`` collects the rows
3. ``experiments``, in folders by job: ``labs``, ``head_to_head``, ``claims_study``,
   ``debugging`` (the run clinic) and ``to_trl``
4. ``figures``: the notebooks' figures

Import every module by its full path (``from refimpl.methods import grpo``,
``from refimpl.experiments.head_to_head.compare import run_compare``): one import style in the
library, the notebooks, the tests and the grader. A short path of the old flat layout
(``from refimpl import grpo``) raises an ImportError that names the full one.

Dimension letters used in every shape comment: B batch, G group size, P prompt tokens,
T completion tokens, V vocabulary, C model width.
"""

import os as _os
from pathlib import Path as _Path

import torch as _torch

__version__ = "0.1.0"

# The models here are tiny: on an idle 2-core machine a second thread speeds the larger batches
# up by at most 1.7x, but on a busy one it can make them several times slower (torch's worker
# threads spin-wait for each small op), so one thread is the default. Set REFIMPL_NUM_THREADS
# to use more.
_torch.set_num_threads(int(_os.environ.get("REFIMPL_NUM_THREADS", "1")))


SUBPACKAGES = ("core", "methods", "experiments", "figures")


class MovedModuleError(ImportError):
    """A module asked for by its short name; the message gives its full path."""


def _full_path(name: str) -> str | None:
    """``refimpl.<subpackage>[.<folder>].<name>`` of the module file ``name``.py, if one exists."""
    here = _Path(__file__).parent
    found = sorted(here.rglob(f"{name}.py"))
    return ".".join(found[0].relative_to(here.parent).with_suffix("").parts) if found else None


def __getattr__(name: str):
    full = _full_path(name) if name.isidentifier() and not name.startswith("_") else None
    if full:
        parent, _, leaf = full.rpartition(".")
        raise MovedModuleError(f"refimpl.{name} is not a short path any more: use "
                               f"'from {parent} import {leaf}' (docs/ARCHITECTURE.md)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
