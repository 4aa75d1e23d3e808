"""The runs of the claims study (``refimpl.experiments.claims_study.study``): one function per kind of experiment
(``Claim.runner``), each taking (claim, preset, method, lr, base, seed, problems) and returning
the values of one run, which ``refimpl.experiments.claims_study.study.run_cached`` stores.

    compare    refimpl.experiments.head_to_head.compare.run_method: the head-to-head run (C17)
    coverage   refimpl.experiments.labs.offline_online.coverage_run: error rate of each step (C3)
    reward     refimpl.experiments.claims_study.reward_runs.reward_run: RL on one reward, graded by all (C10, C12, C13, C19)
    critic     refimpl.methods.ppo_analysis.critic_run: PPO's critic fitted alone (C15's first record)
    dpo        refimpl.experiments.claims_study.dpo_runs.dpo_run: DPO on verifier-labelled pairs (C4, C5)
    length     refimpl.experiments.claims_study.length_runs.length_run: GRPO with one loss aggregation (C11b)
    variance   refimpl.experiments.claims_study.variance_runs.variance_run: REINFORCE's gradient variance by difficulty during training (C12)
    ppo        refimpl.experiments.claims_study.ppo_runs.ppo_run: PPO with a critic, V = 0 or Monte-Carlo values, and GRPO, paired;
               and for the critic arms critic_run (C15)
"""
from __future__ import annotations

from refimpl.methods.ppo_analysis import CRITIC_METHODS, CriticRunConfig, critic_run
from refimpl.experiments.claims_study.claims import Claim
from refimpl.experiments.head_to_head.compare import PRESET_DEFAULTS, config_for_preset, run_method
from refimpl.experiments.claims_study.dpo_runs import DpoRunConfig, dpo_run
from refimpl.experiments.claims_study.length_runs import LengthRunConfig, length_run
from refimpl.experiments.labs.offline_online import CoverageRunConfig, coverage_run
from refimpl.experiments.claims_study.ppo_runs import PpoRunConfig, ppo_run
from refimpl.experiments.claims_study.reward_runs import RewardRunConfig, reward_run
from refimpl.experiments.claims_study.variance_runs import VarianceRunConfig, variance_run


def _compare_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """The head-to-head run of refimpl.experiments.head_to_head.compare: accuracy after the budget, and its curve."""
    cc = config_for_preset(preset, budget_samples=claim.budget_samples,
                           eval_problems=claim.eval_problems, evals=4,
                           overrides={method: {"lr": lr, **claim.fixed.get(method, {})}})
    rec = run_method(method, base, cc, seed, problems)
    return {"final_acc": rec["final_acc"], "base_acc": rec["base_acc"], "steps": rec["steps"],
            "samples": rec["samples"], "flops": rec["flops"],
            "curve": [{"samples": c["samples"], "heldout_acc": c["heldout_acc"]} for c in rec["curve"]]}


def _step_shape(preset: str, claim: Claim, method: str, seed: int) -> dict:
    """The config fields of an online run: the claim's budget, the run seed, the preset's step
    shape (B prompts x G samples) and the claim's fixed settings for ``method``."""
    kw = {"budget_samples": claim.budget_samples, "seed": seed, **claim.fixed.get(method, {})}
    study = PRESET_DEFAULTS.get(preset, {})
    if study:
        kw = {"prompts_per_step": study["prompts_per_step"], "group_size": study["group_size"], **kw}
    return kw


def _coverage_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C3's run (refimpl.experiments.labs.offline_online.coverage_run): the teacher-forced error rate of each
    step before and after training, and their changes "<mode>_change"."""
    kw = _step_shape(preset, claim, method, seed)
    rec = coverage_run(method, base, lr, CoverageRunConfig(**kw), problems)
    rec.pop("method")
    rec["mean_change"] = (rec["units_change"] + rec["carry_change"]) / 2
    return rec


def _reward_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C13's and C19's run (refimpl.experiments.claims_study.reward_runs.reward_run): REINFORCE on one reward, graded
    by every grader."""
    kw = _step_shape(preset, claim, method, seed)
    return reward_run(method, base, lr, RewardRunConfig(**kw), problems)


def _critic_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C15's run (refimpl.methods.ppo_analysis.critic_run): PPO's critic fitted alone, measured."""
    kw = {"budget_samples": claim.budget_samples, "seed": seed, **claim.fixed.get(method, {})}
    return critic_run(method, base, lr, CriticRunConfig(**kw), problems)


def _dpo_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C4's and C5's run (refimpl.experiments.claims_study.dpo_runs.dpo_run): DPO on fresh verifier-labelled pairs."""
    return dpo_run(method, base, lr, DpoRunConfig(seed=seed, **claim.fixed.get(method, {})),
                   problems)


def _length_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C11b's run (refimpl.experiments.claims_study.length_runs.length_run): GRPO with one loss aggregation."""
    kw = _step_shape(preset, claim, method, seed)
    return length_run(method, base, lr, LengthRunConfig(**kw), problems)


def _variance_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C12's run (refimpl.experiments.claims_study.variance_runs.variance_run): REINFORCE (RLOO)
    trained, its gradient variance per baseline measured by difficulty at start, middle and end."""
    kw = _step_shape(preset, claim, method, seed)
    return variance_run(method, base, lr, VarianceRunConfig(**kw), problems)


def _ppo_runner(claim, preset, method, lr, base, seed, problems) -> dict:
    """C15's run (refimpl.experiments.claims_study.ppo_runs.ppo_run): PPO with a critic, V = 0 or
    Monte-Carlo values, or GRPO, matched in lr, samples, inner updates and KL; for the critic
    arms (CRITIC_METHODS) the critic fitted alone (``_critic_runner``)."""
    if method in CRITIC_METHODS:
        return _critic_runner(claim, preset, method, lr, base, seed, problems)
    kw = _step_shape(preset, claim, method, seed)
    return ppo_run(method, base, lr, PpoRunConfig(**kw), problems)


# runner name -> fn(claim, preset, method, lr, base, seed, problems) -> the run's values
RUNNERS = {"compare": _compare_runner, "coverage": _coverage_runner, "reward": _reward_runner,
           "critic": _critic_runner, "dpo": _dpo_runner, "length": _length_runner,
           "variance": _variance_runner, "ppo": _ppo_runner}
