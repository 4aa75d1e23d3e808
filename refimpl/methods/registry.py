"""The method registry: one row per training method, read by every place that picks one by name.

A ``Method`` says what a reader of a results table wants to know about a method (its label,
what it learns from, whether it samples from the current policy) and what a study needs to run
it (its config class, its trainer, the config fields a head-to-head run sets, and its FLOPs
model). ``refimpl.experiments.head_to_head.compare``, ``refimpl.experiments.claims_study.study``, the command line (``python -m refimpl compare
--methods ...``) and the figures all look a method up here, so adding a method is one row.

FLOPs per update step follow the usual rule of thumb (Kaplan et al. 2020, sec. 2.1): a forward
pass costs 2 N per token and a forward + backward pass 6 N per token, for a model with N
parameters (attention's own FLOPs ignored: the context is 32 tokens). With B prompts per step,
G samples per prompt, L tokens per sequence (prompt + mean completion), mu inner updates and a
critic of N_c parameters:

    DPO / RPO:  6 N * 2B L            (chosen and rejected, B pairs per batch)
    GRPO:       2 N BG L (sampling) + 2 N BG L (reference, if beta > 0) + mu * 6 N BG L
                (mu inner updates)
    REINFORCE:  2 N BG L (sampling) + 6 N BG L (one update)   [+ 2 N BG L with a KL term]
    PPO:        2 N BG L (sampling) + 2 N BG L (reference) + 2 N_c BG L (critic values)
                + mu * (6 N + 6 N_c) BG L (policy and critic updates)
    online DPO: 2 N BG L (sampling) + 2 N * 2n L (reference on the n pairs formed)
                + mu * 6 N * 2n L (mu DPO steps on the pairs), n <= B * pairs_per_prompt

DPO's data (sampling the pairs once, and the frozen reference on them) is counted apart by
``refimpl.experiments.head_to_head.compare.run_one``. This is the textbook count, in which every sequence runs its own
prompt; refimpl's trainers encode a prompt once per group, which does less work.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from refimpl.methods.dpo_trainer import DPOConfig, train_dpo
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.online_dpo import OnlineDPOConfig, train_online_dpo
from refimpl.methods.ppo_trainer import PPOConfig, train_ppo
from refimpl.methods.reinforce_trainer import ReinforceTrainConfig, train_reinforce


@dataclass(frozen=True)
class Method:
    """One training method of the head-to-head.

    name: the key learners type (``--methods dpo,grpo``); label: as tables and legends show it;
    signal: what its update learns from; online: it samples from the current policy while it
    trains (offline methods learn from preference pairs drawn once from the base);
    config: its trainer's config dataclass; trainer: ``trainer(base, cfg, [pairs,] *,
    progress, heldout) -> TrainResult`` (offline trainers take the pairs);
    study_fields: ``fn(cc) -> dict`` of the config fields a study run sets from ``cc`` (a
    ``refimpl.experiments.head_to_head.compare.CompareConfig``, or any config with the fields it reads, such as C3's
    ``CoverageRunConfig``: B and G); flops: ``fn(cfg, N, L, N_critic) -> FLOPs`` of one step.
    """

    name: str
    label: str
    signal: str
    online: bool
    config: type
    trainer: Callable
    study_fields: Callable
    flops: Callable

    def make_config(self, cc, **common):
        """The trainer config of one run of the study ``cc``; ``common``: steps, seed, ..."""
        cfg = self.config(**common, **self.study_fields(cc))
        return replace(cfg, **cc.overrides.get(self.name, {}))

    def train(self, base, cfg, *, heldout, pairs=None, progress: bool = False):
        """Train from ``base`` with ``cfg``; an offline method learns from ``pairs``."""
        if self.online:
            return self.trainer(base, cfg, progress=progress, heldout=heldout)
        return self.trainer(base, cfg, pairs, progress=progress, heldout=heldout)


# ---- the config fields each method takes from a study (refimpl.experiments.head_to_head.compare.CompareConfig) ----
def _dpo_fields(cc, nll_coef: float = 0.0) -> dict:
    return dict(group_size=cc.group_size, n_prompts=cc.dpo_prompts,
                pairs_per_prompt=cc.dpo_pairs_per_prompt, nll_coef=nll_coef)


def _rpo_fields(cc) -> dict:
    return _dpo_fields(cc, nll_coef=cc.rpo_nll_coef)


def _online_dpo_fields(cc) -> dict:
    return dict(prompts_per_step=cc.prompts_per_step, group_size=cc.group_size,
                pairs_per_prompt=cc.dpo_pairs_per_prompt)


def _group_fields(cc) -> dict:
    return dict(prompts_per_step=cc.prompts_per_step, group_size=cc.group_size)


def _reinforce_fields(cc) -> dict:
    return dict(_group_fields(cc), baseline="rloo")


# ---- FLOPs of one update step (module docstring); L: tokens per sequence ----
def dpo_flops(cfg, N, L, N_critic=0) -> float:
    """DPO / RPO: one forward + backward over chosen and rejected of each pair."""
    return 6 * N * 2 * cfg.batch_size * L


def online_dpo_flops(cfg, N, L, N_critic=0) -> float:
    """Online DPO: sample B x G, the reference on the n pairs formed, mu DPO steps."""
    BG = cfg.prompts_per_step * cfg.group_size
    n = cfg.prompts_per_step * cfg.pairs_per_prompt
    return (2 * BG + 2 * 2 * n + cfg.updates_per_step * 6 * 2 * n) * N * L


def grpo_flops(cfg, N, L, N_critic=0) -> float:
    """GRPO: sample, reference pass (when beta > 0), mu inner updates, over B x G sequences."""
    BG = cfg.prompts_per_step * cfg.group_size
    return (2 + (2 if cfg.beta > 0 else 0) + 6 * cfg.inner_updates) * N * BG * L


def reinforce_flops(cfg, N, L, N_critic=0) -> float:
    """REINFORCE: sample, one update [, reference pass with a KL term]."""
    BG = cfg.prompts_per_step * cfg.group_size
    return (2 + 6 + (2 if cfg.beta > 0 else 0)) * N * BG * L


def ppo_flops(cfg, N, L, N_critic=0) -> float:
    """PPO: sample, reference, critic values, mu updates of policy and critic."""
    BG = cfg.prompts_per_step * cfg.group_size
    return (2 * N + 2 * N + 2 * N_critic + cfg.inner_updates * 6 * (N + N_critic)) * BG * L


METHODS: dict[str, Method] = {m.name: m for m in (
    # Rafailov et al. 2023, eq. 7
    Method("dpo", "DPO", "implicit (pairs)", False, DPOConfig, train_dpo,
           _dpo_fields, dpo_flops),
    # DPO + NLL on the chosen completions, Pang et al. 2024
    Method("rpo", "DPO+NLL (RPO)", "implicit (pairs) + NLL", False, DPOConfig, train_dpo,
           _rpo_fields, dpo_flops),
    # the DPO loss on fresh pairs from the current policy, labelled by the verifier (Guo et al. 2024)
    Method("online_dpo", "online DPO", "implicit (fresh pairs)", True, OnlineDPOConfig,
           train_online_dpo, _online_dpo_fields, online_dpo_flops),
    # Shao et al. 2024
    Method("grpo", "GRPO", "verifier", True, GRPOConfig, train_grpo, _group_fields, grpo_flops),
    # REINFORCE with the RLOO baseline, Ahmadian et al. 2024
    Method("reinforce", "REINFORCE (RLOO)", "verifier", True, ReinforceTrainConfig,
           train_reinforce, _reinforce_fields, reinforce_flops),
    # PPO with a learned critic, Ouyang et al. 2022
    Method("ppo", "PPO (critic)", "verifier + critic", True, PPOConfig, train_ppo,
           _group_fields, ppo_flops),
)}

LABELS = {name: m.label for name, m in METHODS.items()}   # as tables and legends show them


def samples_per_step(method: str, cfg) -> int:
    """Completions one update step learns from: the B*G it samples (online methods), or the
    chosen and rejected completion of each of its pairs (offline DPO, 2 per pair)."""
    if get_method(method).online:
        return cfg.prompts_per_step * cfg.group_size
    return 2 * cfg.batch_size


def get_method(name: str) -> Method:
    """The registry row of ``name``; an unknown name is an error listing the choices."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}: choose from {', '.join(METHODS)}")
    return METHODS[name]
