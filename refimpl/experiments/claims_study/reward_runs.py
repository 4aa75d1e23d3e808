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
    process_score  = mean_x R_proc(x, y)         the exact step reward, eq. (1) of rewards
    rm_score       = mean_x r_phi(x, y)          the learned reward model (GRPO runs)

Methods, named as the method registry (``refimpl.methods.registry``) names the ones it holds:
"reinforce" (REINFORCE, RLOO, on the outcome reward: the registry's "reinforce"), "process" and
"tolerant" (the same on that reward); "nobaseline" (REINFORCE on the outcome reward with b = 0,
claim C12); "grpo" and "rm_grpo" (GRPO on the verifier, the registry's "grpo", or on a
Bradley-Terry reward model fitted to 128 prompts' worth of base pairs,
``refimpl.methods.reward_model``, one per base: claim C10). "base" trains nothing (0 steps) and
measures the base the same way, as a control that is the same for every run seed of a base.
"""
from __future__ import annotations

from dataclasses import dataclass

from refimpl.core.evaluation import completions_for
from refimpl.core.rewards import make_reward_fn, process_reward, tolerant_verify
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce
from refimpl.methods.reward_model import RMConfig, train_reward_model

# the REINFORCE methods and the reward each trains on (refimpl.core.rewards.make_reward_fn)
REINFORCE_REWARDS = {"reinforce": "outcome", "process": "process", "tolerant": "tolerant",
                     "nobaseline": "outcome"}
GRPO_METHODS = ("grpo", "rm_grpo")      # on the verifier, on the base's learned reward model
REWARD_METHODS = ("base", "reinforce", "process", "tolerant", "nobaseline", *GRPO_METHODS)
_RMS: dict = {}                  # (preset, base seed) -> the base's reward model (C10)


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


def grade(policy, base, problems, rm=None) -> dict:
    """Greedy completions of ``policy`` on ``problems`` graded by every grader (module
    docstring): accuracy, tolerant_acc, false_accept, process_score, and rm_score if a reward
    model ``rm`` is given."""
    task = base.task
    texts = completions_for(policy, base.tokenizer, task, problems)
    n = len(problems)
    acc = sum(task.verify(p, t) for p, t in zip(problems, texts)) / n
    tol = sum(tolerant_verify(task, p, t) for p, t in zip(problems, texts)) / n
    out = {"accuracy": acc, "tolerant_acc": tol, "false_accept": tol - acc,
           "process_score": sum(process_reward(task, p, t) for p, t in zip(problems, texts)) / n}
    if rm is not None:
        out["rm_score"] = rm.score(base.tokenizer, problems, texts).mean().item()
    return out


def _train(method: str, base, lr: float, cfg: RewardRunConfig, steps: int, rm):
    """The trained policy of one run and its last step's mean reward."""
    shape = dict(steps=steps, lr=lr, prompts_per_step=cfg.prompts_per_step,
                 group_size=cfg.group_size, eval_every=0, seed=cfg.seed)
    if method in GRPO_METHODS:
        reward_fn = (rm.as_reward_fn(base.tokenizer) if method == "rm_grpo"
                     else make_reward_fn(base.task, "outcome"))
        res = train_grpo(base, GRPOConfig(**shape), reward_fn=reward_fn, progress=False)
    else:
        kind = REINFORCE_REWARDS[method]
        tcfg = ReinforceConfig(baseline="none" if method == "nobaseline" else "rloo", **shape)
        res = train_reinforce(base, tcfg, reward_fn=make_reward_fn(base.task, kind),
                              progress=False)
    return res.model, res.history[-1]["reward"]


def reward_run(method: str, base, lr: float, cfg: RewardRunConfig, problems) -> dict:
    """Train from ``base`` at ``lr`` as ``method`` says (one of REWARD_METHODS, module
    docstring; "base" trains nothing) and grade the result on ``problems``.

    Returns {"final_acc" (= accuracy), "tolerant_acc", "false_accept", "process_score",
    "rm_score" (GRPO_METHODS), "base_<each of those>", "base_acc" (= base_accuracy), "steps", "samples", "train_reward"
    (mean reward of the last step)}.
    """
    cfg = check_study_run("reward_run", method, REWARD_METHODS, lr, cfg, RewardRunConfig, problems)
    rm = base_reward_model(base) if method in GRPO_METHODS else None
    before = grade(base.model, base, problems, rm)
    out = {f"base_{k}": v for k, v in before.items()}
    if method == "base":
        after, steps, reward = before, 0, float("nan")
    else:
        steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
        policy, reward = _train(method, base, lr, cfg, steps, rm)
        after = grade(policy, base, problems, rm)
    out.update(after, final_acc=after["accuracy"], base_acc=before["accuracy"], steps=steps,
               train_reward=reward, samples=steps * cfg.prompts_per_step * cfg.group_size)
    return out
