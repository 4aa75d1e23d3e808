"""One run of RL with a named reward, judged by every grader: the experiment of claims C10,
C12, C13 and C19 in the claims study (``refimpl.experiments.claims_study.claims``).

A run trains REINFORCE with the leave-one-out baseline (Ahmadian et al. 2024; notebook 05), or
GRPO for the GRPO_METHODS, from an SFT base against one reward and then grades the greedy
completions of the trained policy on test problems with all of them:

    for step = 1 .. budget / (B G):
        sample G completions for each of B training prompts          # collect
        reward each with the run's reward  (outcome | process | tolerant | learned RM)
        one REINFORCE step with the run's baseline, or one GRPO step   # update
    greedy completions y(x) on the test problems                       # measure
    accuracy       = mean_x V(x, y)              the real verifier (what we want)
    tolerant_acc   = mean_x V_tol(x, y)          the grader with the 1% tolerance bug
    false_accept   = tolerant_acc - accuracy     near misses that grader lets through
    shipped_false_accept                         the same for verl's prime_math grader
                                                 (rewards.shipped_verify: 1e-4, x100, /100)
    process_score  = mean_x R_proc(x, y)         the exact step reward, eq. (1) of rewards
    rm_score       = mean_x r_phi(x, y)          the learned reward model (GRPO runs)
    prm_score      = mean_x R_PRM(x, y)          the learned process reward model ("learned_prm")
    uniform_share  = share of training groups whose G rewards were all equal (no signal)

Methods, named as the method registry (``refimpl.methods.registry``) names the ones it holds:
"reinforce" (REINFORCE, RLOO, on the outcome reward: the registry's "reinforce"), "process" and
"tolerant" (the same on that reward); "nobaseline" (REINFORCE on the outcome reward with b = 0,
claim C12); "grpo" and "rm_grpo" (GRPO on the verifier, the registry's "grpo", or on a
Bradley-Terry reward model fitted to 128 prompts' worth of base pairs,
``refimpl.methods.reward_model``, one per base: claim C10), "rm_grpo_unscaled" (the same without
the group std scaling, GRPOConfig.scale = "none": C10's mechanism); "learned_prm" (REINFORCE,
RLOO, on a process reward model fitted to 128 prompts x 16 base samples' step labels,
``refimpl.methods.prm``, one per base: claim C13); "rloo_positive" (RLOO with its negative
advantages set to 0, ReinforceConfig.positive_only: claim C12b). "base" trains nothing (0 steps) and
measures the base the same way, as a control that is the same for every run seed of a base.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from refimpl.core.evaluation import completions_for
from refimpl.core.rewards import make_reward_fn, process_reward, shipped_verify, tolerant_verify
from refimpl.core.rollouts import sample_groups
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce
from refimpl.methods.prm import PRMConfig, train_prm
from refimpl.methods.reward_model import RMConfig, train_reward_model

# the REINFORCE methods and the reward each trains on (refimpl.core.rewards.make_reward_fn)
REINFORCE_REWARDS = {"reinforce": "outcome", "process": "process", "tolerant": "tolerant",
                     "nobaseline": "outcome", "learned_prm": None, "rloo_positive": "outcome"}
# on the verifier, on the base's learned reward model (with and without the group std scaling)
GRPO_METHODS = ("grpo", "rm_grpo", "rm_grpo_unscaled")
RM_METHODS = ("rm_grpo", "rm_grpo_unscaled")
REWARD_METHODS = ("base", *REINFORCE_REWARDS, *GRPO_METHODS)
_RMS: dict = {}                  # (preset, base seed) -> the base's reward model (C10)
_PRMS: dict = {}                 # (preset, base seed) -> the base's process reward model (C13)


@dataclass
class RewardRunConfig:
    """One run: ``budget_samples`` completions generated in steps of B x G, seed ``seed``."""

    budget_samples: int = 2560
    prompts_per_step: int = 16       # B
    group_size: int = 8              # G
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 2,
                            "seed": None})


def base_reward_model(base):
    """The base's learned reward model (RMConfig's defaults: 128 training prompts), fitted
    once per base and kept: every C10 run of a base optimises the same flawed proxy."""
    key = (repr(base.preset), base.seed)
    if key not in _RMS:
        _RMS[key] = train_reward_model(base, RMConfig(), progress=False).model
    return _RMS[key]


def base_prm(base):
    """The base's learned process reward model: fitted once per base (PRMConfig(steps=100),
    notebook 05's) to the exact step labels of 16 base samples for each of 128 training
    prompts (seeded, so every run of a base optimises the same proxy)."""
    key = (repr(base.preset), base.seed)
    if key not in _PRMS:
        problems = base.train_problems(128, seed=1)
        pool = sample_groups(base.model, base.tokenizer, base.task, problems, 16,
                             generator=torch.Generator().manual_seed(0))
        each = [problems[i // 16] for i in range(pool.num_samples)]
        _PRMS[key] = train_prm(base, PRMConfig(steps=100), problems=each, texts=pool.texts).model
    return _PRMS[key]


def grade(policy, base, problems, rm=None, prm=None) -> dict:
    """Greedy completions of ``policy`` on ``problems`` graded by every grader (module
    docstring): accuracy, tolerant_acc, false_accept, process_score, and rm_score if a reward
    model ``rm`` is given."""
    task = base.task
    texts = completions_for(policy, base.tokenizer, task, problems)
    n = len(problems)
    acc = sum(task.verify(p, t) for p, t in zip(problems, texts)) / n
    tol = sum(tolerant_verify(task, p, t) for p, t in zip(problems, texts)) / n
    shipped = sum(shipped_verify(task, p, t) for p, t in zip(problems, texts)) / n
    out = {"accuracy": acc, "tolerant_acc": tol, "false_accept": tol - acc,
           "shipped_false_accept": shipped - acc,
           "process_score": sum(process_reward(task, p, t) for p, t in zip(problems, texts)) / n}
    if rm is not None:
        out["rm_score"] = rm.score(base.tokenizer, problems, texts).mean().item()
    if prm is not None:
        reward_fn = prm.reward_fn()
        out["prm_score"] = sum(reward_fn(p, t) for p, t in zip(problems, texts)) / n
    return out


def _train(method: str, base, lr: float, cfg: RewardRunConfig, steps: int, rm, prm):
    """The trained policy of one run, its last step's mean reward and the share of its
    training groups with all-equal rewards."""
    shape = dict(steps=steps, lr=lr, prompts_per_step=cfg.prompts_per_step,
                 group_size=cfg.group_size, eval_every=0, seed=cfg.seed)
    if method in GRPO_METHODS:
        reward_fn = (rm.as_reward_fn(base.tokenizer) if method in RM_METHODS
                     else make_reward_fn(base.task, "outcome"))
        scale = "none" if method == "rm_grpo_unscaled" else "group"
        res = train_grpo(base, GRPOConfig(scale=scale, **shape), reward_fn=reward_fn, progress=False)
    else:
        reward_fn = (prm.reward_fn() if method == "learned_prm" else
                     make_reward_fn(base.task, REINFORCE_REWARDS[method]))
        tcfg = ReinforceConfig(baseline="none" if method == "nobaseline" else "rloo",
                               positive_only=method == "rloo_positive", **shape)
        res = train_reinforce(base, tcfg, reward_fn=reward_fn, progress=False)
    steps_logged = [r for r in res.history if "frac_reward_zero_std" in r]
    uniform = sum(r["frac_reward_zero_std"] for r in steps_logged) / max(len(steps_logged), 1)
    return res.model, res.history[-1]["reward"], uniform


def reward_run(method: str, base, lr: float, cfg: RewardRunConfig, problems) -> dict:
    """Train from ``base`` at ``lr`` as ``method`` says (one of REWARD_METHODS, module
    docstring; "base" trains nothing) and grade the result on ``problems``.

    Returns {"final_acc" (= accuracy), "tolerant_acc", "false_accept",
    "shipped_false_accept", "process_score", "rm_score" (GRPO_METHODS), "prm_score"
    ("learned_prm"), "base_<each of those>", "base_acc" (= base_accuracy), "steps", "samples",
    "train_reward" (mean reward of the last step), "uniform_share"}.
    """
    cfg = check_study_run("reward_run", method, REWARD_METHODS, lr, cfg, RewardRunConfig, problems)
    rm = base_reward_model(base) if method in GRPO_METHODS else None
    prm = base_prm(base) if method == "learned_prm" else None
    before = grade(base.model, base, problems, rm, prm)
    out = {f"base_{k}": v for k, v in before.items()}
    if method == "base":
        after, steps, reward, uniform = before, 0, float("nan"), float("nan")
    else:
        steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
        policy, reward, uniform = _train(method, base, lr, cfg, steps, rm, prm)
        after = grade(policy, base, problems, rm, prm)
    out.update(after, final_acc=after["accuracy"], base_acc=before["accuracy"], steps=steps,
               train_reward=reward, uniform_share=uniform,
               samples=steps * cfg.prompts_per_step * cfg.group_size)
    return out
