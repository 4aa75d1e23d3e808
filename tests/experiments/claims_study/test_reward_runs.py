"""refimpl.experiments.claims_study.reward_runs (claims C13, C19): every grader scores the same greedy completions, the
false-accept rate is the tolerant grader's excess over the real verifier, and a run spends its
sample budget in whole steps."""
import pytest

from refimpl.core.evaluation import completions_for
from refimpl.core.rewards import process_reward, shipped_verify, tolerant_verify
from refimpl.experiments.claims_study.reward_runs import (REWARD_METHODS, RewardRunConfig, grade,
                                                          reward_run)


def test_grade_matches_a_slow_count(cpu_base):
    problems = cpu_base.heldout(48)
    g = grade(cpu_base.model, cpu_base, problems)
    texts = completions_for(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems)
    task = cpu_base.task
    right = [task.verify(p, t) for p, t in zip(problems, texts)]
    tol = [tolerant_verify(task, p, t) for p, t in zip(problems, texts)]
    assert g["accuracy"] == pytest.approx(sum(right) / 48)
    assert g["tolerant_acc"] == pytest.approx(sum(tol) / 48)
    assert g["false_accept"] == pytest.approx(sum(t - r for t, r in zip(tol, right)) / 48)
    assert all(t >= r for t, r in zip(tol, right))        # the tolerant grader accepts more
    shipped = [shipped_verify(task, p, t) for p, t in zip(problems, texts)]
    assert g["shipped_false_accept"] == pytest.approx(sum(s - r for s, r in zip(shipped, right)) / 48)
    assert g["process_score"] == pytest.approx(
        sum(process_reward(task, p, t) for p, t in zip(problems, texts)) / 48)


def test_base_method_trains_nothing_and_a_run_spends_its_budget(cpu_base):
    problems = cpu_base.heldout(16)
    b = reward_run("base", cpu_base, 1e-4, RewardRunConfig(), problems)
    assert b["steps"] == b["samples"] == 0 and b["final_acc"] == b["base_acc"]
    cfg = RewardRunConfig(budget_samples=40, prompts_per_step=4, group_size=4)
    r = reward_run("tolerant", cpu_base, 1e-4, cfg, problems)
    assert (r["steps"], r["samples"]) == (3, 48)                 # ceil(40 / 16) whole steps
    assert r["base_acc"] == b["base_acc"] and 0 <= r["false_accept"] <= 1


@pytest.mark.parametrize("kw, match", [
    (dict(method="sft"), "unknown method"), (dict(method="outcome"), "unknown method"),
    (dict(lr=0.0), "lr"),
    (dict(lr=float("nan")), "lr"), (dict(problems=[]), "no problems"),
    (dict(cfg=RewardRunConfig(group_size=1)), "group_size"),
])
def test_bad_arguments_are_named(cpu_base, kw, match):
    args = dict(method="reinforce", lr=1e-4, cfg=RewardRunConfig(), problems=cpu_base.heldout(2))
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        reward_run(args["method"], cpu_base, args["lr"], args["cfg"], args["problems"])
    assert "base" in REWARD_METHODS


def test_c10_and_c12_methods(cpu_base):
    """nobaseline is REINFORCE with b = 0; the GRPO runs (grpo, rm_grpo) are graded by the
    base's reward model too, the same model for every run of a base."""
    from refimpl.experiments.claims_study.reward_runs import base_reward_model
    problems = cpu_base.heldout(16)
    cfg = RewardRunConfig(budget_samples=16, prompts_per_step=4, group_size=4)
    rm = base_reward_model(cpu_base)
    assert base_reward_model(cpu_base) is rm
    for m in ("nobaseline", "grpo", "rm_grpo"):
        r = reward_run(m, cpu_base, 1e-4, cfg, problems)
        assert (r["steps"], r["samples"]) == (1, 16)
        assert ("rm_score" in r) == m.endswith("grpo")
    g = grade(cpu_base.model, cpu_base, problems, rm)
    texts = completions_for(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems)
    assert g["rm_score"] == pytest.approx(rm.score(cpu_base.tokenizer, problems, texts).mean().item())
    assert r["base_rm_score"] == pytest.approx(g["rm_score"])


def test_c10_c12b_c13_arms(cpu_base):
    """rm_grpo_unscaled optimises the same reward model without the std scaling (another run
    than rm_grpo's); learned_prm is graded by the base's PRM, fitted once per base;
    rloo_positive and every arm log the share of uniform training groups."""
    from refimpl.experiments.claims_study.reward_runs import base_prm
    problems = cpu_base.heldout(16)
    cfg = RewardRunConfig(budget_samples=32, prompts_per_step=4, group_size=4)
    runs = {m: reward_run(m, cpu_base, 1e-3, cfg, problems)
            for m in ("rm_grpo", "rm_grpo_unscaled", "learned_prm", "rloo_positive", "reinforce")}
    assert base_prm(cpu_base) is base_prm(cpu_base)
    assert "rm_score" in runs["rm_grpo_unscaled"] and "prm_score" in runs["learned_prm"]
    assert runs["rm_grpo_unscaled"]["train_reward"] != runs["rm_grpo"]["train_reward"]
    assert all(0 <= r["uniform_share"] <= 1 for r in runs.values())
    prm_fn = base_prm(cpu_base).reward_fn()
    texts = completions_for(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems)
    assert runs["learned_prm"]["base_prm_score"] == pytest.approx(
        sum(prm_fn(p, t) for p, t in zip(problems, texts)) / 16)
