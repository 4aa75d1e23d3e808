"""Device, seeding, presets and the on-disk cache shared by every notebook.

A *preset* names one coherent size for the whole curriculum: the model, the task level mix
and the training budgets. ``cpu`` (the default) runs every notebook in under a minute on a
2-core laptop; ``gpu`` is the same code at a larger size for a CUDA machine.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from refimpl.core import checks
from refimpl.core.tasks import get_task


def get_device(prefer: str = "auto") -> torch.device:
    """Return ``cuda`` when available (``prefer="auto"``), else ``cpu``.

    ``prefer`` may be "auto", "cpu" or "cuda"; asking for "cuda" on a machine without it is an
    error rather than a silent fallback.
    """
    if prefer == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if prefer == "cpu":
        return torch.device("cpu")
    if prefer == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False; "
                             "use 'cpu' or 'auto'")
        return torch.device("cuda")
    raise ValueError(f"unknown device {prefer!r}: expected 'auto', 'cpu' or 'cuda'")


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU ``torch.Generator`` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Preset:
    """One size for the whole curriculum (model, task, SFT budget)."""

    name: str
    task: str = "add"                     # see refimpl.core.tasks.get_task
    digits: int = 3                       # operand length for the "add" task
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 32                  # context length in tokens
    sft_lr: float = 3e-3
    sft_batch_size: int = 128
    sft_max_steps: int = 1500
    sft_eval_every: int = 10
    sft_target_acc: float = 0.3           # stop SFT at the first checkpoint at or above this
    sft_eval_problems: int = 256
    device: str = "auto"
    extra: dict = field(default_factory=dict)
    # (the head-to-head study's defaults at each size live with it:
    # refimpl.experiments.head_to_head.compare.PRESET_DEFAULTS)

    def __post_init__(self):
        for name in ("digits", "n_layer", "n_head", "n_embd", "block_size", "sft_batch_size",
                     "sft_max_steps", "sft_eval_every", "sft_eval_problems"):
            checks.count(f"Preset.{name}", getattr(self, name), 1)
        checks.positive("Preset.sft_lr", self.sft_lr)
        checks.positive("Preset.sft_target_acc", self.sft_target_acc,
                        "above 1 trains for sft_max_steps")
        if self.n_embd % self.n_head:
            raise ValueError(f"Preset.n_embd={self.n_embd} must be a multiple of "
                             f"n_head={self.n_head}")


PRESETS: dict[str, Preset] = {
    "cpu": Preset(name="cpu"),
    # Same code, a wider and deeper model, a harder level mix, more SFT: for a CUDA GPU.
    "gpu": Preset(name="gpu", digits=5, n_layer=4, n_head=8, n_embd=256,
                  block_size=48, sft_lr=1e-3, sft_batch_size=512, sft_max_steps=4000,
                  sft_eval_every=50, sft_target_acc=0.35, sft_eval_problems=1024),
    # A very small preset that exercises the same code paths in tests.
    "tiny": Preset(name="tiny", digits=2, n_layer=1, n_head=2, n_embd=32, block_size=32,
                   sft_batch_size=64, sft_max_steps=40, sft_eval_every=20, sft_target_acc=1.01,
                   sft_eval_problems=64),
}


def get_preset(name: str | Preset = "cpu", **overrides) -> Preset:
    """Look up a preset by name (``cpu``, ``gpu``, ``tiny``), optionally overriding fields."""
    if isinstance(name, Preset):
        preset = name
    elif name in PRESETS:
        preset = PRESETS[name]
    else:
        raise ValueError(f"unknown preset {name!r}: choose one of {sorted(PRESETS)}")
    return replace(preset, **overrides) if overrides else preset


def make_task(preset: "Preset"):
    """The task a preset trains on (``digits`` applies to the two addition tasks only)."""
    if preset.task in ("add", "add_mixed"):
        return get_task(preset.task, digits=preset.digits)
    return get_task(preset.task)


def cache_dir() -> Path:
    """Folder for cached base policies: ``$REFIMPL_CACHE`` or ``<repo>/.cache``."""
    root = os.environ.get("REFIMPL_CACHE")
    path = Path(root) if root else Path(__file__).resolve().parents[2] / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
