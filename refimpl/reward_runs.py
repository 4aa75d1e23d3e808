"""One run of RL with a named reward, judged by every grader: the experiment of claims C13 and
C19 in the claims study (``refimpl.claims``).

A run trains REINFORCE with the leave-one-out baseline (Ahmadian et al. 2024; notebook 05)
from an SFT base against one reward of ``refimpl.rewards`` and then grades the greedy
completions of the trained policy on test problems with all of them:

    for step = 1 .. budget / (B G):
        sample G completions for each of B training prompts          # collect
        reward each with the run's reward  (outcome | process | tolerant)
        one REINFORCE step with the RLOO baseline                      # update
    greedy completions y(x) on the test problems                       # measure
    accuracy       = mean_x V(x, y)              the real verifier (what we want)
    tolerant_acc   = mean_x V_tol(x, y)          the grader with the 1% tolerance bug
    false_accept   = tolerant_acc - accuracy     near misses that grader lets through
    process_score  = mean_x R_proc(x, y)         the exact step reward, eq. (1) of rewards

Method "base" trains nothing (0 steps) and measures the base the same way, as a control that
is the same for every run seed of a base.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import checks
from .evaluation import completions_for
from .reinforce_trainer import ReinforceTrainConfig, train_reinforce
from .rewards import make_reward_fn, process_reward, tolerant_verify
from .training import check_fields

REWARD_METHODS = ("base", "outcome", "process", "tolerant")
REWARD_LABELS = {"base": "base (no training)", "outcome": "REINFORCE, outcome reward",
                 "process": "REINFORCE, exact process reward",
                 "tolerant": "REINFORCE, tolerant grader"}


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


def grade(policy, base, problems) -> dict:
    """Greedy completions of ``policy`` on ``problems`` graded by every grader (module
    docstring): accuracy, tolerant_acc, false_accept, process_score."""
    task = base.task
    texts = completions_for(policy, base.tokenizer, task, problems)
    n = len(problems)
    acc = sum(task.verify(p, t) for p, t in zip(problems, texts)) / n
    tol = sum(tolerant_verify(task, p, t) for p, t in zip(problems, texts)) / n
    return {"accuracy": acc, "tolerant_acc": tol, "false_accept": tol - acc,
            "process_score": sum(process_reward(task, p, t) for p, t in zip(problems, texts)) / n}


def reward_run(method: str, base, lr: float, cfg: RewardRunConfig, problems) -> dict:
    """Train REINFORCE (RLOO) from ``base`` at ``lr`` on the reward ``method`` (one of
    REWARD_METHODS; "base" trains nothing) and grade the result on ``problems``.

    Returns {"final_acc" (= accuracy), "tolerant_acc", "false_accept", "process_score",
    "base_<each of those>", "base_acc" (= base_accuracy), "steps", "samples", "train_reward"
    (mean reward of the last step)}.
    """
    cfg = checks.study_run("reward_run", method, REWARD_METHODS, lr, cfg, RewardRunConfig, problems)
    before = grade(base.model, base, problems)
    out = {f"base_{k}": v for k, v in before.items()}
    if method == "base":
        after, steps, reward = before, 0, float("nan")
    else:
        steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
        tcfg = ReinforceTrainConfig(steps=steps, lr=lr, prompts_per_step=cfg.prompts_per_step,
                                    group_size=cfg.group_size, baseline="rloo", eval_every=0,
                                    seed=cfg.seed)
        res = train_reinforce(base, tcfg, reward_fn=make_reward_fn(base.task, method),
                              progress=False)
        after, reward = grade(res.policy, base, problems), res.history[-1]["reward"]
    out.update(after, final_acc=after["accuracy"], base_acc=before["accuracy"], steps=steps,
               train_reward=reward, samples=steps * cfg.prompts_per_step * cfg.group_size)
    return out
