"""Supervised warm start (SFT): from a random transformer to the base / reference policy.

Minimises the negative log-likelihood of demonstration completions given their prompts,

    L_SFT = - sum_t mask_t log pi(y_t | x, y_<t) / sum_t mask_t,

and stops at the first held-out checkpoint whose greedy accuracy reaches a target (a moderate
pass rate), so that DPO, GRPO and REINFORCE have room to improve. The result is cached on
disk keyed by its configuration: every notebook shares one base instead of retraining.

The environment variable ``REFIMPL_BASE_SEED`` (default 0) sets the SFT seed of the base that
``load_base`` returns when no seed is given, and is part of the cache key: run the notebooks
under another base seed (and REFIMPL_NUM_THREADS=2) to see which of their numbers belong to
one particular base and CPU rather than to the method.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import time
from dataclasses import asdict, dataclass

import torch

from refimpl.core import checks
from refimpl.core.evaluation import accuracy
from refimpl.core.logprobs import token_logprobs
from refimpl.core.model import GPT, GPTConfig
from refimpl.core.tokenizer import CharTokenizer
from refimpl.core.training import StepBar, adamw
from refimpl.core.utils import Preset, cache_dir, get_device, get_preset, make_task, seed_everything

SFT_VERSION = 2   # bump when the training code changes, to invalidate cached bases


@dataclass
class Base:
    """The trained base policy and everything needed to use it."""

    model: GPT
    tokenizer: CharTokenizer
    task: object
    preset: Preset
    history: list          # dicts: step, loss, time_s, and heldout_acc at checkpoints
    seed: int = 0

    def policy(self) -> GPT:
        """A trainable copy of the base (train mode, gradients on)."""
        m = copy.deepcopy(self.model).train()
        m.requires_grad_(True)
        return m

    def reference(self) -> GPT:
        """A frozen copy of the base (eval mode, no gradients): pi_ref."""
        return copy.deepcopy(self.model).eval().requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def heldout(self, n: int = 256, level: int | None = None, seed: int = 0):
        return self.task.problems("heldout", n, level=level, seed=seed)

    def train_problems(self, n: int = 256, level: int | None = None, seed: int = 0):
        return self.task.problems("train", n, level=level, seed=seed)


def build_model(preset: Preset, tok: CharTokenizer) -> GPT:
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=preset.block_size,
                         n_layer=preset.n_layer, n_head=preset.n_head, n_embd=preset.n_embd))


def sft_batch(tok, task, problems, device):
    """Prompt ids/mask (B, P) and demonstration ids/mask (B, T) on ``device``."""
    p_ids, p_mask = tok.encode_prompts([p.prompt for p in problems])      # (B, P)
    c_ids, c_mask = tok.encode_completions([task.target(p) for p in problems])  # (B, T)
    return [t.to(device) for t in (p_ids, p_mask, c_ids, c_mask)]


def sft_loss(model, p_ids, p_mask, c_ids, c_mask) -> torch.Tensor:
    """Mean negative log-likelihood per completion token."""
    logps = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)           # (B, T)
    return -logps.sum() / c_mask.sum()


def train_sft(preset: Preset, seed: int = 0, device=None, progress: bool = True,
              stop_at_target: bool = True):
    """Train a fresh model on demonstrations; return (model, tokenizer, task, history)."""
    seed_everything(seed)
    device = torch.device(device) if device is not None else get_device(preset.device)
    task = make_task(preset)
    tok = CharTokenizer(task.alphabet)
    model = build_model(preset, tok).to(device)
    opt = adamw(model.parameters(), preset.sft_lr)
    pool = task.problems("train", 20_000, seed=seed)
    heldout = task.problems("heldout", preset.sft_eval_problems, seed=seed)
    rng = random.Random(seed)
    history, t0 = [], time.perf_counter()
    bar = StepBar(preset.sft_max_steps, "SFT", progress)
    for step in bar:
        batch = sft_batch(tok, task, rng.sample(pool, preset.sft_batch_size), device)
        loss = sft_loss(model, *batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        row = {"step": step, "loss": loss.item(), "time_s": time.perf_counter() - t0}
        if step % preset.sft_eval_every == 0:
            row["heldout_acc"] = accuracy(model, tok, task, heldout)
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['heldout_acc']:.2f}")
        history.append(row)
        if stop_at_target and row.get("heldout_acc", 0.0) >= preset.sft_target_acc:
            break
    bar.close()
    return model.eval(), tok, task, history


def base_seed() -> int:
    """The SFT seed of the default base: ``$REFIMPL_BASE_SEED``, or 0 when it is not set."""
    raw = os.environ.get("REFIMPL_BASE_SEED", "0")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"REFIMPL_BASE_SEED must be an integer, got {raw!r}") from None


def _cache_paths(preset: Preset, seed: int) -> tuple:
    """(weights, history) files of the cached base: a state dict that ``torch.load`` reads with
    ``weights_only=True`` and the SFT history as JSON beside it."""
    key = json.dumps({"preset": asdict(preset), "seed": seed, "v": SFT_VERSION,
                      "torch": torch.__version__.split("+")[0]}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = cache_dir() / f"base-{preset.name}-{digest}"
    return stem.with_name(stem.name + ".weights.pt"), stem.with_name(stem.name + ".history.json")


def _write_atomic(path, write) -> None:
    """``write(tmp)`` to a temporary file, then rename it to ``path`` (atomic on POSIX)."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def load_base(preset: str | Preset = "cpu", seed: int | None = None, device=None,
              progress: bool = True, retrain: bool = False) -> Base:
    """The SFT base policy for ``preset``: loaded from the on-disk cache, or trained and cached.

    seed: the SFT seed; None reads ``$REFIMPL_BASE_SEED`` (default 0, the curriculum's base).
    Running the notebooks under another base seed (and, say, REFIMPL_NUM_THREADS=2) shows
    which of their numbers depend on the particular base. The cache is keyed by the preset,
    the seed, the code version and the torch version. It holds only tensors (loaded with
    ``weights_only=True``, so a shared cache folder cannot run code on load) and a JSON
    history; both are written atomically (temporary file, then rename), so concurrent
    notebooks are safe.
    """
    preset = get_preset(preset)
    seed = base_seed() if seed is None else checks.count("seed", seed, None)
    device = torch.device(device) if device is not None else get_device(preset.device)
    weights, history_path = _cache_paths(preset, seed)
    task = make_task(preset)
    tok = CharTokenizer(task.alphabet)
    if weights.exists() and history_path.exists() and not retrain:
        model = build_model(preset, tok).to(device)
        model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        history = json.loads(history_path.read_text())
        return Base(model.eval(), tok, task, preset, history, seed)
    model, tok, task, history = train_sft(preset, seed=seed, device=device, progress=progress)
    _write_atomic(history_path, lambda tmp: tmp.write_text(json.dumps(history)))
    _write_atomic(weights, lambda tmp: torch.save(model.state_dict(), tmp))
    return Base(model, tok, task, preset, history, seed)
