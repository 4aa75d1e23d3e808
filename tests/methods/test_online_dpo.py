"""Online DPO (refimpl/methods/online_dpo.py): the DPO loss on fresh verifier-labelled pairs.

One step must equal, parameter for parameter, the slow obvious procedure: sample with the same
generator, pair, score the pairs under the frozen reference, take one ``dpo_update``. Budgets
count every generated completion; a step without a mixed group changes nothing.
"""
import copy
import random

import pytest
import torch

from refimpl.core.preferences import pairs_from_rollout
from refimpl.core.rollouts import sample_groups
from refimpl.core.sft import load_base
from refimpl.core.training import adamw, problem_sets, start_policy
from refimpl.methods.dpo_trainer import dpo_update, pair_logps
from refimpl.methods.online_dpo import OnlineDPOConfig, train_online_dpo


@pytest.fixture(scope="module")
def tiny():
    return load_base("tiny", progress=False)


CFG = dict(steps=1, prompts_per_step=8, group_size=4, inner_updates=1, eval_every=0,
           train_pool=64, lr=1e-3, seed=3)


def test_one_step_equals_the_slow_procedure(tiny):
    cfg = OnlineDPOConfig(**CFG)
    res = train_online_dpo(tiny, cfg, progress=False)
    # the same step, by hand
    policy, _, gen = start_policy(tiny, None, cfg.seed)
    _, pool, rng = problem_sets(tiny, cfg)
    problems = rng.sample(pool, cfg.prompts_per_step)
    ro = sample_groups(policy, tiny.tokenizer, tiny.task, problems, cfg.group_size,
                       temperature=cfg.temperature, generator=gen)
    pairs = pairs_from_rollout(ro, tiny.tokenizer, cfg.pairs_per_prompt, rng.randrange(2**31))
    with torch.no_grad():
        rc, rr = pair_logps(tiny.reference(), pairs)
    dpo_update(policy, adamw(policy.parameters(), cfg.lr), pairs, rc.sum(-1), rr.sum(-1), cfg)
    for a, b in zip(res.model.parameters(), policy.parameters()):
        torch.testing.assert_close(a, b)
    assert res.history[1]["pairs_formed"] == len(pairs) > 0
    assert "pairs" not in res.history[1]      # "pairs": pairs consumed so far, offline DPO only
    assert any((a != b).any() for a, b in zip(res.model.parameters(), tiny.model.parameters()))


def test_budget_counts_every_completion(tiny):
    res = train_online_dpo(tiny, OnlineDPOConfig(**{**CFG, "steps": 3}), progress=False)
    assert [r["samples"] for r in res.history] == [0, 32, 64, 96]
    assert all(0 <= r["reward"] <= 1 for r in res.history[1:])


def test_no_mixed_group_means_no_update(tiny, monkeypatch):
    task = copy.copy(tiny.task)
    monkeypatch.setattr(task, "verify", lambda problem, text: 0.0, raising=False)
    base = copy.copy(tiny)
    base.task = task
    res = train_online_dpo(base, OnlineDPOConfig(**CFG), progress=False)
    assert res.history[1]["pairs_formed"] == 0 and "loss" not in res.history[1]
    for a, b in zip(res.model.parameters(), tiny.model.parameters()):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("field, value, match", [
    ("group_size", 1, "group_size"), ("lr", 0.0, "lr"), ("beta", float("nan"), "beta"),
    ("inner_updates", 0, "inner_updates"), ("loss_type", "hinge", "loss_type"),
    ("nll_coef", float("nan"), "nll_coef"), ("label_smoothing", 0.5, "label_smoothing"),
])
def test_bad_config_names_the_field(tiny, field, value, match):
    with pytest.raises(ValueError, match=match):
        train_online_dpo(tiny, OnlineDPOConfig(**{**CFG, field: value}), progress=False)


def test_wrong_config_type_is_refused(tiny):
    with pytest.raises(TypeError, match="OnlineDPOConfig"):
        train_online_dpo(tiny, {"steps": 1}, progress=False)
