"""refimpl.experiments.claims_study.ppo_runs (claim C15) and the values it gives PPO
(PPOConfig.values, refimpl.methods.ppo.loo_values): V = 0 makes GAE's advantages the
lambda-discounted returns-to-go, the Monte-Carlo values are the leave-one-out group means, the
four arms run on the same samples budget, and GRPO's advantage check leaves its training alone."""
import hashlib
import math
from types import SimpleNamespace

import pytest
import torch

from refimpl.core.rewards import make_reward_fn
from refimpl.experiments.claims_study.ppo_runs import (PPO_METHODS, PpoRunConfig, _GroupProbe,
                                                       ppo_run)
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.ppo import gae_advantages, loo_values, token_rewards
from refimpl.methods.ppo_trainer import PPOConfig, rollout_values, train_ppo

DT = torch.float64
LENGTHS = [5, 2, 4, 1, 3, 5]                                 # B = 3 prompts x G = 2
MASK = torch.arange(5)[None, :] < torch.tensor(LENGTHS)[:, None]    # (6, 5)


def fake_batch(rewards):
    """What rollout_values reads of a Rollout: the completion mask, rewards and G."""
    return SimpleNamespace(completion_mask=MASK, rewards=rewards, group_size=2)


def test_loo_values_match_a_slow_loop():
    G = 3
    rewards = torch.tensor([1., 0., 1., 0., 0., 1., 0.25, 0.5, 2.0], dtype=DT)   # (B*G,)
    mask = torch.arange(4)[None, :] < torch.tensor([4, 1, 2, 3, 4, 4, 1, 2, 3])[:, None]
    v = loo_values(rewards, mask, G)                                            # (9, 4)
    for i in range(9):
        g0 = i - i % G
        others = [rewards[j].item() for j in range(g0, g0 + G) if j != i]
        for t in range(4):
            want = sum(others) / (G - 1) if mask[i, t] else 0.0
            assert v[i, t].item() == pytest.approx(want)
    with pytest.raises(ValueError, match="group_size"):
        loo_values(rewards, mask, 1)
    with pytest.raises(ValueError, match="mask"):
        loo_values(rewards, mask[:6], G)


@pytest.mark.parametrize("gamma, lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0)])
def test_zero_values_give_lambda_discounted_returns_to_go(gamma, lam):
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(6, 5, generator=g, dtype=DT) * MASK                  # (6, 5) KL-like
    cfg = PPOConfig(values="zero", gamma=gamma, lam=lam)
    values = rollout_values(None, fake_batch(torch.ones(6, dtype=DT)), cfg)    # no critic
    assert values.shape == (6, 5) and not values.any()
    adv, returns = gae_advantages(rewards, values, MASK, gamma, lam)
    for i, L in enumerate(LENGTHS):
        for t in range(5):
            want = sum((gamma * lam) ** (l - t) * rewards[i, l].item() for l in range(t, L))
            assert adv[i, t].item() == pytest.approx(want if t < L else 0.0)
    assert torch.equal(adv, returns)


def test_mc_values_give_lam_powers_of_r_minus_the_leave_one_out_mean():
    scores = torch.tensor([1., 0., 1., 1., 0., 0.], dtype=DT)                  # (B*G,)
    values = rollout_values(None, fake_batch(scores), PPOConfig(values="mc"))  # (6, 5)
    adv, _ = gae_advantages(token_rewards(scores, MASK), values, MASK, 1.0, 0.9)
    b = torch.tensor([0., 1., 1., 1., 0., 0.], dtype=DT)                      # the other sample
    for i, L in enumerate(LENGTHS):
        want = [0.9 ** (L - 1 - t) * (scores[i] - b[i]).item() if t < L else 0.0
                for t in range(5)]
        assert adv[i].tolist() == pytest.approx(want)


def test_bad_values_name_and_mc_without_a_group_are_refused():
    with pytest.raises(ValueError, match=r"values.*'critic', 'zero', 'mc'"):
        PPOConfig(values="critc").validate()
    with pytest.raises(ValueError, match="group_size >= 2"):
        PPOConfig(values="mc", group_size=1).validate()


def test_without_a_critic_the_critic_is_neither_trained_nor_logged(cpu_base):
    cfg = PPOConfig(steps=1, prompts_per_step=4, group_size=2, eval_every=0, values="zero")
    res = train_ppo(cpu_base, cfg, progress=False)
    assert "value_loss" not in res.history[1] and "loss/policy" in res.history[1]
    assert not res.critic.v_head.weight.any() and not res.critic.v_head.bias.any()


@pytest.fixture(scope="module")
def runs(cpu_base):
    cfg = PpoRunConfig(budget_samples=60, prompts_per_step=8, group_size=4, mc_every=1,
                       mc_samples=4)                             # ceil(60 / 32) = 2 steps
    problems = cpu_base.heldout(16)
    return {m: ppo_run(m, cpu_base, 5e-5, cfg, problems) for m in PPO_METHODS}


def test_each_arm_reports_finite_values_on_the_same_budget(runs):
    keys = {"final_acc", "base_acc", "collapsed", "adv_mc_corr", "adv_mc_corr_group",
            "value_mae_mc", "critic_ev", "critic_ev_curve", "train_reward", "steps", "samples"}
    for m, r in runs.items():
        assert set(r) == keys, m
        assert (r["steps"], r["samples"]) == (2, 64)
        assert r["base_acc"] == runs["grpo"]["base_acc"]
        assert r["collapsed"] == float(r["final_acc"] < r["base_acc"] - 0.1)
        for k in keys - {"critic_ev", "critic_ev_curve"}:
            assert math.isfinite(r[k]), (m, k)
        assert (len(r["critic_ev_curve"]) == 2) == (m == "ppo")
        assert math.isfinite(r["critic_ev"]) == (m == "ppo")
    assert runs["ppo"]["critic_ev"] == runs["ppo"]["critic_ev_curve"][-1]
    assert runs["ppo"]["critic_ev_curve"][0] == 0.0              # the zero head: V = 0
    assert runs["ppo_v0"]["value_mae_mc"] > 0                    # |0 - p(x)| = mean p(x)
    assert runs["grpo"]["adv_mc_corr"] == runs["grpo"]["adv_mc_corr_group"]


def test_grpo_probe_checks_and_leaves_training_unchanged(cpu_base):
    def digest(model):
        h = hashlib.sha256()
        for p in model.parameters():
            h.update(p.detach().numpy().tobytes())
        return h.hexdigest()
    cfg = PpoRunConfig(prompts_per_step=4, group_size=4, mc_every=2, mc_samples=4)
    g = GRPOConfig(steps=3, prompts_per_step=4, group_size=4, beta=0.0, inner_updates=1,
                   eval_every=0)
    plain = train_grpo(cpu_base, g, reward_fn=make_reward_fn(cpu_base.task, "outcome"),
                       progress=False)
    policy = cpu_base.policy()
    probe = _GroupProbe(policy, cpu_base, cfg)
    probed = train_grpo(cpu_base, g, policy=policy, reward_fn=probe, progress=False)
    assert digest(plain.model) == digest(probed.model)
    assert len(probe.checks) == 2                                # steps 1 and 2
    assert [r["reward"] for r in plain.history[1:]] == [r["reward"] for r in probed.history[1:]]


@pytest.mark.parametrize("kw, match", [
    (dict(method="ppo_critic"), "unknown method"), (dict(method="critic"), "unknown method"),
    (dict(lr=0.0), "lr"), (dict(problems=[]), "no problems"),
    (dict(cfg=PpoRunConfig(group_size=1)), "group_size"),
    (dict(cfg=PpoRunConfig(mc_samples=1)), "mc_samples"),
])
def test_bad_arguments_are_named(cpu_base, kw, match):
    args = dict(method="ppo", lr=1e-4, cfg=PpoRunConfig(), problems=cpu_base.heldout(2))
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        ppo_run(args["method"], cpu_base, args["lr"], args["cfg"], args["problems"])


def test_the_study_runs_c15s_critic_arms_with_critic_run(cpu_base):
    """C15's runner sends "critic" and "critic_head" to critic_run with the claim's fixed budget
    and checkpoints, and the PPO arms to ppo_run."""
    from dataclasses import replace

    from refimpl.experiments.claims_study.claims import CLAIMS
    from refimpl.experiments.claims_study.study_runs import RUNNERS
    from refimpl.methods.ppo_analysis import CriticRunConfig, critic_run
    c15 = CLAIMS["C15"]
    assert {m: c15.fixed[m] for m in ("critic", "critic_head")} == {
        m: {"budget_samples": 10240, "eval_every": 10} for m in ("critic", "critic_head")}
    small = {"budget_samples": 32, "eval_every": 1, "prompts_per_step": 4, "group_size": 4,
             "mc_samples": 4}
    claim = replace(c15, fixed={"critic_head": small})
    problems = cpu_base.heldout(8)
    got = RUNNERS["ppo"](claim, "cpu", "critic_head", 1e-3, cpu_base, 3, problems)
    assert got == critic_run("critic_head", cpu_base, 1e-3, CriticRunConfig(seed=3, **small),
                             problems)
    assert got["ev_samples"] == [0, 16, 32]
