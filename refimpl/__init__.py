"""refimpl: reference implementations behind the DPO vs GRPO vs verifier-RL notebooks.

Layers (each imports only the ones above it):

1. ``utils``, ``tokenizer``, ``model``, ``sampling``, ``tasks``
2. ``logprobs``, ``rollouts``, ``sft``, ``evaluation``
3. losses as pure tensor functions: ``dpo``, ``grpo``, ``kl``, ``reinforce``, ``ppo``
4. trainers (one config dataclass each)
5. experiments (``bandit``, the head-to-head study, the command-line main job, the TRL bridge)
6. ``plots*``: the notebooks' figures

Dimension letters used in every shape comment: B batch, G group size, P prompt tokens,
T completion tokens, V vocabulary, C model width.
"""

import os as _os

import torch as _torch

__version__ = "0.1.0"

# The models here are tiny: on an idle 2-core machine a second thread speeds the larger batches
# up by at most 1.7x, but on a busy one it can make them several times slower (torch's worker
# threads spin-wait for each small op), so one thread is the default. Set REFIMPL_NUM_THREADS
# to use more.
_torch.set_num_threads(int(_os.environ.get("REFIMPL_NUM_THREADS", "1")))
