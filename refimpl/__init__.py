"""refimpl: reference implementations behind the DPO vs GRPO vs verifier-RL notebooks.

Four subpackages, each importing only itself and the ones above it (docs/ARCHITECTURE.md
gives the layers inside them; tests/test_architecture.py checks the imports):

1. ``core``: tokenizer, model, sampling, log-probs, rollouts, tasks and verifiers, evaluation,
   the supervised base policy and what every trainer shares (``training``)
2. ``methods``: per method a loss (pure tensor functions: ``dpo``, ``grpo``, ``kl``,
   ``reinforce``, ``ppo``), its trainer (one config dataclass, collect -> update -> log) and its
   analysis
3. ``experiments``: the method registry, the labs, the head-to-head, the claims study, TRL
4. ``figures``: the notebooks' figures

Every module is also reachable by its short name: ``from refimpl import grpo, plots_grpo`` is
``refimpl.methods.grpo`` and ``refimpl.figures.plots_grpo``.

Dimension letters used in every shape comment: B batch, G group size, P prompt tokens,
T completion tokens, V vocabulary, C model width.
"""

import importlib
import os as _os
from pathlib import Path as _Path

import torch as _torch

__version__ = "0.1.0"

# The models here are tiny: on an idle 2-core machine a second thread speeds the larger batches
# up by at most 1.7x, but on a busy one it can make them several times slower (torch's worker
# threads spin-wait for each small op), so one thread is the default. Set REFIMPL_NUM_THREADS
# to use more.
_torch.set_num_threads(int(_os.environ.get("REFIMPL_NUM_THREADS", "1")))


# short name -> subpackage, so that ``from refimpl import grpo`` finds refimpl.methods.grpo (a
# module loads when it is first asked for)
SUBPACKAGES = ("core", "methods", "experiments", "figures")
_HOME = {_p.stem: _sub for _sub in SUBPACKAGES
         for _p in sorted((_Path(__file__).parent / _sub).glob("*.py")) if _p.stem != "__init__"}


def __getattr__(name: str):
    if name in SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _HOME:
        return importlib.import_module(f"{__name__}.{_HOME[name]}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(SUBPACKAGES) + list(_HOME))
