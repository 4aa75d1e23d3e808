"""Tests for refimpl.methods.ppo (rewards, GAE, whitening, the clipped policy and value losses, the
critic) and refimpl.methods.ppo_trainer (a short run on the cached cpu base, claim C15's metrics)."""

import math
from dataclasses import replace

import pytest
import torch

from refimpl.methods.ppo import (ValueModel, explained_variance, gae_advantages, pearson, ppo_loss,
                                 ppo_policy_loss, rl_memory, token_rewards, value_loss, whiten)
from refimpl.methods.ppo_analysis import advantage_quality
from refimpl.methods.ppo_trainer import PPOConfig, train_ppo

DT = torch.float64




def lengths_mask(lengths, T):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)


def random_case(B=5, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = [int(x) for x in torch.randint(1, T + 1, (B,), generator=g)]
    lengths[0] = T
    mask = lengths_mask(lengths, T)                                     # (B, T)
    rewards = torch.randn(B, T, generator=g, dtype=DT) * mask           # (B, T)
    values = torch.randn(B, T, generator=g, dtype=DT) * mask            # (B, T)
    return rewards, values, mask, lengths


# ------------------------------------------------------------------- rewards and GAE ------

def test_token_rewards_puts_score_on_last_token_and_kl_everywhere():
    mask = lengths_mask([3, 1, 4], 4)
    scores = torch.tensor([1.0, 0.0, 2.0], dtype=DT)
    kl = torch.arange(12, dtype=DT).view(3, 4) / 10
    r = token_rewards(scores, mask, kl, reward_kl_coef=0.5)
    expect = torch.tensor([[-0.0, -0.05, 1 - 0.1, 0.0],
                           [-0.2, 0.0, 0.0, 0.0],
                           [-0.4, -0.45, -0.5, 2 - 0.55]], dtype=DT)
    torch.testing.assert_close(r, expect)
    torch.testing.assert_close(token_rewards(scores, mask).sum(1), scores)


def test_gae_lambda1_gamma1_is_reward_to_go_minus_value():
    rewards, values, mask, lengths = random_case()
    adv, ret = gae_advantages(rewards, values, mask, gamma=1.0, lam=1.0)
    for b, L in enumerate(lengths):
        for t in range(L):
            to_go = sum(rewards[b, t:L].tolist())
            assert adv[b, t].item() == pytest.approx(to_go - values[b, t].item(), abs=1e-12)
            assert ret[b, t].item() == pytest.approx(to_go, abs=1e-12)
    assert (adv[~mask] == 0).all() and (ret[~mask] == 0).all()


def test_gae_hand_built_case():
    # one completion of 3 tokens, outcome reward 1, V = (0.5, 0.25, 0.75)
    mask = torch.ones(1, 3, dtype=torch.bool)
    r = token_rewards(torch.tensor([1.0], dtype=DT), mask)              # (0, 0, 1)
    v = torch.tensor([[0.5, 0.25, 0.75]], dtype=DT)
    adv, _ = gae_advantages(r, v, mask, gamma=1.0, lam=1.0)
    torch.testing.assert_close(adv, torch.tensor([[0.5, 0.75, 0.25]], dtype=DT))
    adv0, _ = gae_advantages(r, v, mask, gamma=1.0, lam=0.0)         # delta_t
    torch.testing.assert_close(adv0, torch.tensor([[-0.25, 0.5, 0.25]], dtype=DT))


def test_gae_lambda0_is_one_step_td_error():
    rewards, values, mask, lengths = random_case(seed=1)
    gamma = 0.9
    adv, ret = gae_advantages(rewards, values, mask, gamma=gamma, lam=0.0)
    for b, L in enumerate(lengths):
        for t in range(L):
            v_next = values[b, t + 1].item() if t + 1 < L else 0.0
            delta = rewards[b, t].item() + gamma * v_next - values[b, t].item()
            assert adv[b, t].item() == pytest.approx(delta, abs=1e-12)
    torch.testing.assert_close(ret, (adv + values) * mask)


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.8, 0.5)])
def test_gae_matches_explicit_sum_of_discounted_td_errors(gamma, lam):
    rewards, values, mask, lengths = random_case(seed=2)
    adv, _ = gae_advantages(rewards, values, mask, gamma=gamma, lam=lam)
    for b, L in enumerate(lengths):
        V = values[b, :L].tolist() + [0.0]
        deltas = [rewards[b, t].item() + gamma * V[t + 1] - V[t] for t in range(L)]
        for t in range(L):
            expect = sum((gamma * lam) ** l * deltas[t + l] for l in range(L - t))
            assert adv[b, t].item() == pytest.approx(expect, abs=1e-12)


def test_whiten_and_explained_variance():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 100.0, -7.0]], dtype=DT)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    w = whiten(x, mask)
    assert w[mask].mean().item() == pytest.approx(0.0, abs=1e-12)
    assert w[mask].std().item() == pytest.approx(1.0, abs=1e-6)
    assert (w[~mask] == 0).all()
    returns = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0]], dtype=DT)
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    const = torch.full_like(returns, 1.5)
    assert explained_variance(const, returns, mask) == pytest.approx(0.0, abs=1e-12)
    assert explained_variance(-returns, returns, mask) < 0


# ------------------------------------------------------------------------------ losses ----

def slow_value_loss(values, old, returns, mask, eps):
    total, n, clipped = 0.0, 0, 0
    for b in range(len(values)):
        for t in range(len(values[0])):
            if not mask[b][t]:
                continue
            v, vo, g = values[b][t], old[b][t], returns[b][t]
            vc = min(max(v, vo - eps), vo + eps)
            total += 0.5 * max((v - g) ** 2, (vc - g) ** 2)
            clipped += (vc - g) ** 2 > (v - g) ** 2
            n += 1
    return total / n, clipped / n


@pytest.mark.parametrize("eps", [0.2, 0.05])
def test_value_loss_clipping_matches_slow_reference_and_autograd(eps):
    g = torch.Generator().manual_seed(3)
    B, T = 4, 5
    mask = lengths_mask([5, 2, 4, 1], T)
    old = torch.randn(B, T, generator=g, dtype=DT)
    values = (old + 0.3 * torch.randn(B, T, generator=g, dtype=DT)).requires_grad_(True)
    returns = torch.randn(B, T, generator=g, dtype=DT)
    loss, m = value_loss(values, old, returns, mask, eps)
    ref, frac = slow_value_loss(values.tolist(), old.tolist(), returns.tolist(), mask.tolist(), eps)
    assert loss.item() == pytest.approx(ref, abs=1e-12)
    assert m["vf_clipfrac"] == pytest.approx(frac)
    assert 0 < frac < 1                      # the case exercises both branches
    loss.backward()
    # where the clipped branch wins, V is outside the trust band and gets no gradient
    vc = old + (values.detach() - old).clamp(-eps, eps)
    wins = ((vc - returns) ** 2 > (values.detach() - returns) ** 2) & mask
    assert (values.grad[wins] == 0).all()
    n = mask.sum()
    torch.testing.assert_close(values.grad[mask & ~wins],
                               ((values.detach() - returns) / n)[mask & ~wins])
    plain, _ = value_loss(values, old, returns, mask, None)
    assert plain.item() == pytest.approx(0.5 * ((values - returns)[mask] ** 2).mean().item())


def test_ppo_policy_loss_is_the_per_token_clipped_surrogate():
    g = torch.Generator().manual_seed(4)
    B, T, eps = 3, 4, 0.2
    mask = lengths_mask([4, 2, 3], T)
    old = -torch.rand(B, T, generator=g, dtype=DT) * 2 * mask
    logps = (old + 0.4 * torch.randn(B, T, generator=g, dtype=DT)) * mask
    adv = torch.randn(B, T, generator=g, dtype=DT) * mask
    logps.requires_grad_(True)
    loss, m = ppo_policy_loss(logps, old, adv, mask, eps)
    terms = []
    for b in range(B):
        for t in range(T):
            if mask[b, t]:
                rho = math.exp(logps[b, t].item() - old[b, t].item())
                a = adv[b, t].item()
                terms.append(-min(rho * a, min(max(rho, 1 - eps), 1 + eps) * a))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), abs=1e-12)
    # autograd against the obvious implementation
    (grad,) = torch.autograd.grad(loss, logps)
    x = logps.detach().clone().requires_grad_(True)
    ratio = torch.exp(x - old)
    obvious = -torch.min(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv)[mask].mean()
    (grad_ref,) = torch.autograd.grad(obvious, x)
    torch.testing.assert_close(grad, grad_ref)
    total, m2 = ppo_loss(logps, old, adv, adv, adv + 0.1, adv, mask, vf_coef=0.5)
    assert total.item() == pytest.approx(loss.item() + 0.5 * m2["value_loss"])


def test_losses_reject_bad_input():
    mask = torch.ones(2, 3, dtype=torch.bool)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="per token"):
        ppo_policy_loss(x, x, torch.zeros(2), mask)
    with pytest.raises(ValueError, match="clip_range_value"):
        value_loss(x, x, x, mask, clip_range_value=0.0)
    with pytest.raises(ValueError, match="NaN"):
        value_loss(x, x, torch.full((2, 3), float("nan")), mask)
    with pytest.raises(ValueError, match="lam"):
        gae_advantages(x, x, mask, lam=1.5)
    with pytest.raises(ValueError, match="right-padded"):
        gae_advantages(x, x, torch.tensor([[True, False, True], [True, True, True]]))
    with pytest.raises(ValueError, match="reward_kl_coef"):
        token_rewards(torch.zeros(2), mask, None, reward_kl_coef=0.1)
    with pytest.raises(ValueError, match="bool"):
        value_loss(x, x, x, mask.float())


def test_pearson_and_advantage_quality_closed_forms():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert math.isnan(pearson(x, torch.ones(4)))
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0])               # B=3 prompts, G=2
    p = torch.tensor([0.5, 0.25, 0.75])
    q = advantage_quality(r, p, values0=p.repeat_interleave(2), advantages0=r - p.repeat_interleave(2),
                          group_size=2)
    assert q["value_mae_mc"] == 0 and q["adv_corr_mc"] == pytest.approx(1.0)
    # group means 0.5, 0, 1 against p = 0.5, 0.25, 0.75
    assert q["baseline_mae_mc/group"] == pytest.approx((0 + 0.25 + 0.25) / 3)


# ------------------------------------------------------------------------------ critic ----

def test_value_model_reads_the_state_before_each_token(cpu_base):
    tok = cpu_base.tokenizer
    critic = ValueModel(cpu_base.model)
    torch.nn.init.normal_(critic.v_head.weight, generator=torch.Generator().manual_seed(0))
    p_ids, p_mask = tok.encode_prompts(["12+34=", "999+999="])        # (2, P) left-padded
    c_ids, c_mask = tok.encode_completions(["4,6|46", "8"])           # (2, T)
    with torch.no_grad():
        v = critic(p_ids, p_mask, c_ids, c_mask)                       # (2, T)
        for b in range(2):
            prompt = p_ids[b][p_mask[b]]
            for t in range(int(c_mask[b].sum())):
                prefix = torch.cat([prompt, c_ids[b, :t]])[None]       # unpadded state s_t
                h = critic.trunk.hidden(prefix)[0, -1]
                assert v[b, t].item() == pytest.approx(critic.v_head(h).item(), abs=1e-5)
        assert (v[~c_mask] == 0).all()
    fresh = ValueModel(cpu_base.model)
    assert (fresh(p_ids, p_mask, c_ids, c_mask) == 0).all()            # zero-initialised head


# ----------------------------------------------------------------------------- trainer ----

FAST = PPOConfig(steps=4, prompts_per_step=6, group_size=4, eval_every=4, eval_problems=128,
                 reward_kl_coef=0.04, lam=1.0, critic_lr=3e-3, mc_every=4, mc_samples=8, seed=0)


def shifted_verifier(task):
    """1 + the verifier's score. A constant shift leaves the whitened advantages nearly
    unchanged (whitening removes it) but gives the critic, which starts at V = 0, a target
    it must move to: its value loss starts at E[R^2] / 2 >= 1/2."""
    return lambda problem, text: 1.0 + task.verify(problem, text)


@pytest.fixture(scope="module")
def ppo_run(cpu_base):
    return train_ppo(cpu_base, FAST, reward_fn=shifted_verifier(cpu_base.task), progress=False)


def test_first_inner_update_is_on_policy(ppo_run):
    for row in ppo_run.history[1:]:
        first = row["inner"][0]
        assert first["ratio_mean"] == pytest.approx(1.0, abs=1e-4)
        assert first["clip_ratio"] == 0.0


def test_ppo_keeps_the_policy_and_fits_the_critic(cpu_base, ppo_run):
    h = ppo_run.history
    n = FAST.eval_problems
    acc0, acc1 = h[0]["heldout_acc"], h[-1]["heldout_acc"]
    se = math.sqrt(2 * 0.25 / n)                # s.e. of a difference of two accuracies, worst case
    assert acc1 >= acc0 - 2.5 * se, (acc0, acc1)
    assert h[-1]["samples"] == FAST.steps * FAST.prompts_per_step * FAST.group_size
    # The value loss falls during training: at step 1 V = 0 and the loss is E[R^2] / 2 >= 1/2.
    assert h[1]["inner"][0]["value_loss"] >= 0.5
    assert h[-1]["value_loss"] < 0.5 * h[1]["inner"][0]["value_loss"]
    # On fresh samples, with targets = outcome reward R in {1, 2} (lam = 1): V = 0 has loss
    # E[R^2] / 2 >= 1/2, a constant V = c has E[(R - c)^2] / 2, at best Var(R) / 2 <= 1/8.
    from refimpl.core.rollouts import sample_groups
    ro = sample_groups(ppo_run.model, cpu_base.tokenizer, cpu_base.task,
                       cpu_base.train_problems(32, seed=7), 4,
                       reward_fn=shifted_verifier(cpu_base.task),
                       generator=torch.Generator().manual_seed(1))
    args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
    targets = token_rewards(ro.rewards, ro.completion_mask)
    _, returns = gae_advantages(targets, torch.zeros_like(targets), ro.completion_mask, 1.0, 1.0)
    with torch.no_grad():
        v = ppo_run.critic(*args)
    trained, _ = value_loss(v, v, returns, ro.completion_mask, None)
    start, _ = value_loss(torch.zeros_like(v), v, returns, ro.completion_mask, None)
    assert start >= 0.5 and trained < 0.5 * start, (trained.item(), start.item())
    # memory: weights of policy, reference and critic, one gradient and two Adam buffers per
    # trainable float, each as the run really holds it
    mem = rl_memory(ppo_run.model, ppo_run.critic)
    assert h[1]["memory/params"] == mem["params"] == 3 * cpu_base.model.num_params() + 129
    assert h[1]["memory/optimizer_state"] == mem["optimizer_state"]
    held = [p.grad.numel() for m in (ppo_run.model, ppo_run.critic) for p in m.parameters()
            if p.grad is not None]
    assert sum(held) == mem["grads"] == 2 * cpu_base.model.num_params() + 129
    # the Monte-Carlo check logged the C15 metrics
    for key in ("adv_corr_mc", "adv_corr_mc/group", "value_mae_mc", "baseline_mae_mc/group"):
        assert key in h[1] and key in h[-1]


def test_rl_memory_counts_weights_gradients_and_adam_buffers():
    policy = torch.nn.Linear(3, 2)                     # N = 8 weights
    critic = torch.nn.Linear(3, 1)                     # N_c = 4
    grpo, ppo = rl_memory(policy), rl_memory(policy, critic)
    assert grpo == {"params": 16, "grads": 8, "optimizer_state": 16, "total": 40}   # 5 N
    assert ppo == {"params": 20, "grads": 12, "optimizer_state": 24, "total": 56}   # + 4 N_c
    assert rl_memory(policy, reference=False, adam_buffers=0)["total"] == 16


def test_same_seed_same_numbers(cpu_base, ppo_run):
    short = train_ppo(cpu_base, replace(FAST, steps=2, eval_every=0, mc_every=0),
                      reward_fn=shifted_verifier(cpu_base.task), progress=False)
    assert "heldout_acc" not in short.history[0] and "adv_corr_mc" not in short.history[1]
    keys = ("samples", "reward", "value_loss", "loss/policy", "kl", "clip_ratio",
            "explained_variance", "grad_norm")
    for a, b in zip(short.history[1:], ppo_run.history[1:3]):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}


@pytest.mark.parametrize("field,value,match", [
    ("group_size", 0, "group_size"), ("lam", 1.5, "lam"), ("gamma", -0.1, "gamma"),
    ("clip_eps", 0.0, "clip_eps"), ("critic_lr", 0.0, "critic_lr"), ("reward_kl_coef", -1.0, "reward_kl_coef"),
    ("clip_range_value", -0.2, "clip_range_value"), ("steps", 2.5, "steps"),
    ("mc_samples", 1, "mc_samples")])
def test_bad_config_raises(field, value, match):
    with pytest.raises((ValueError, TypeError), match=match):
        replace(PPOConfig(), **{field: value}).validate()


def test_group_size_one_and_snapshot(cpu_base):
    """PPO's usual layout (one completion per prompt) runs, and logs no GRPO comparison."""
    from refimpl.methods.ppo_trainer import advantage_snapshot
    cfg = replace(FAST, steps=1, prompts_per_step=4, group_size=1, eval_every=0, mc_every=1,
                  mc_samples=2)
    res = train_ppo(cpu_base, cfg, progress=False)
    row = res.history[1]
    assert row["samples"] == 4 and "adv_corr_mc/group" not in row and "value_mae_mc" in row
    # a snapshot computes every critic on the same samples: equal critics, equal numbers;
    # a critic that says V = 0 is off by exactly the mean pass rate, |0 - p(x)| = p(x)
    cfg2 = replace(cfg, group_size=2)
    snap = advantage_snapshot(res.model, {"a": res.critic, "b": res.critic,
                                           "zero": ValueModel(cpu_base.model)},
                              cpu_base, cpu_base.train_problems(3, seed=3), cfg2, mc_samples=4,
                              generator=torch.Generator().manual_seed(0))
    a, b, zero = snap["a"], snap["b"], snap["zero"]
    assert a.keys() == b.keys() and "adv_corr_mc/group" in a
    assert all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)
    assert zero["value_mae_mc"] == pytest.approx(zero["mc_pass_rate"])


def test_plots_run_without_display(cpu_base):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from refimpl.core.training import TrainResult
    from refimpl.figures.plots_ppo import (plot_advantage_quality, plot_ppo_vs_grpo,
                                           plot_reward_hacking)
    rows = [{"step": s, "samples": 64 * s, "heldout_acc": 0.4, "reward": 0.1 * s,
             "value_loss": 0.05, "explained_variance": 0.0, "value_mae_mc": 0.1,
             "baseline_mae_mc/group": 0.1} for s in range(3)]
    res = TrainResult(None, rows)
    q = {"adv_corr_mc": 0.9, "value_corr_mc": float("nan"), "adv_corr_mc/group": 0.9,
         "baseline_corr_mc/group": 0.5}
    for fig in (plot_ppo_vs_grpo(res, res), plot_reward_hacking(res, res),
                plot_advantage_quality({"critic": q})):
        assert len(fig.axes) >= 1
        plt.close(fig)


def test_critic_run_measures_the_critic_and_the_oracle_on_the_same_rollouts(cpu_base):
    from refimpl.methods.ppo_analysis import CriticRunConfig, critic_run
    cfg = CriticRunConfig(budget_samples=64, prompts_per_step=4, group_size=4, mc_samples=8)
    r = critic_run("critic", cpu_base, 1e-4, cfg, cpu_base.heldout(16))
    assert (r["steps"], r["samples"]) == (4, 64)
    assert r["half_oracle_ev"] == pytest.approx(r["oracle_ev"] / 2)
    assert r["explained_variance"] < 1 and -1 <= r["corr_v0_p"] <= 1
    # the same seed on the same machine gives the same numbers
    assert critic_run("critic", cpu_base, 1e-4, cfg, cpu_base.heldout(16)) == r
    h = critic_run("critic_head", cpu_base, 1e-4, cfg, cpu_base.heldout(16))
    assert h["oracle_ev"] == r["oracle_ev"]      # same held-out rollouts and p(x) for both
    with pytest.raises(ValueError, match="unknown method"):
        critic_run("ppo", cpu_base, 1e-4, cfg, cpu_base.heldout(4))
    with pytest.raises(ValueError, match="no problems"):
        critic_run("critic", cpu_base, 1e-4, cfg, [])


def test_critic_run_checkpoints_equal_shorter_runs(cpu_base):
    """A checkpoint after k steps scores the critic a run of k steps ends with: the held-out
    rollouts are drawn before training, so both runs see the same samples in the same order."""
    from refimpl.methods.ppo_analysis import CriticRunConfig, critic_run
    cfg = CriticRunConfig(budget_samples=64, prompts_per_step=4, group_size=4, mc_samples=8,
                          eval_every=2)
    long = critic_run("critic", cpu_base, 1e-3, cfg, cpu_base.heldout(16))
    assert long["ev_samples"] == [0, 32, 64] and long["steps"] == 4
    assert long["ev_curve"][0] == 0.0              # the head starts at zero: V = 0 explains 0
    assert long["ev_curve"][-1] == long["explained_variance"]
    short = critic_run("critic", cpu_base, 1e-3, replace(cfg, budget_samples=32, eval_every=0),
                       cpu_base.heldout(16))
    assert short["ev_samples"] == [0, 32]
    assert short["explained_variance"] == long["ev_curve"][1] != 0.0
    with pytest.raises(ValueError, match="eval_every"):
        critic_run("critic", cpu_base, 1e-3, replace(cfg, eval_every=-1), cpu_base.heldout(4))


# --------------------------------------------- the critic that learns: dense step rewards -----

def test_step_token_rewards_pay_each_column_when_written():
    from refimpl.core.rewards import process_reward
    from refimpl.core.tasks import AdditionTask
    from refimpl.methods.ppo_analysis import prefix_step_score, step_token_rewards
    task = AdditionTask(3)
    p = task.problems("train", 1, seed=3)[0]
    right = task.target(p)                                       # e.g. "10,15,08|850"
    texts = [right, right[:3] + "99" + right[5:], right[:-1], "+=+|||", right]
    lengths = [len(t) + 1 for t in texts[:4]] + [len(right)]     # the last: cut, no EOS
    mask = lengths_mask(lengths, max(lengths))
    r = step_token_rewards(task, [p] * 5, texts, mask)
    for i, t in enumerate(texts):                                # rows telescope
        assert r[i].sum().item() == pytest.approx(process_reward(task, p, t), abs=1e-6)
    assert (r[~mask] == 0).all()
    paid = {1: 0.25, 4: 0.25, 7: 0.25, len(right): 0.25}        # second digit of each column, EOS
    assert r[0].tolist() == pytest.approx([paid.get(t, 0.0) for t in range(mask.shape[1])])
    assert r[1, 4] == 0 and r[1, 7] == pytest.approx(0.25)       # the wrong column earns nothing
    assert r[4, len(right) - 1] == pytest.approx(0.25)           # cut: the answer paid at the end
    assert prefix_step_score(task, p, right[:4]) == pytest.approx(0.25)     # "10,1": one column
    assert prefix_step_score(task, p, right[:5]) == pytest.approx(0.5)      # "10,15": two
    assert prefix_step_score(task, p, None) == 0.0
    with pytest.raises(ValueError, match="must match"):
        step_token_rewards(task, [p], texts, mask)


def test_mc_prefix_values_are_expected_returns_to_go(cpu_base):
    from refimpl.core.rollouts import sample_groups
    from refimpl.methods.ppo_analysis import mc_prefix_values, prefix_step_score
    problems = cpu_base.heldout(6)
    ro = sample_groups(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems, 1,
                       generator=torch.Generator().manual_seed(0))
    mask = ro.completion_mask
    v = mc_prefix_values(cpu_base.model, cpu_base, problems, ro.texts, mask, 4,
                         torch.Generator().manual_seed(1))
    assert v.shape == mask.shape and (v[~mask] == 0).all()
    for i, (q, text) in enumerate(zip(problems, ro.texts)):
        for t in range(int(mask[i].sum())):                      # reward still to come
            phi = prefix_step_score(cpu_base.task, q, text[:t])
            assert -phi - 1e-6 <= v[i, t] <= 1 - phi + 1e-6
    again = mc_prefix_values(cpu_base.model, cpu_base, problems, ro.texts, mask, 4,
                             torch.Generator().manual_seed(1))
    assert torch.equal(v, again)


def test_dense_critic_run_checkpoints_against_the_eval_set(cpu_base):
    from refimpl.methods.ppo_analysis import DenseCriticConfig, dense_critic_run, dense_eval_set
    cfg = DenseCriticConfig(steps=2, prompts_per_step=4, group_size=2, eval_problems=4,
                            mc_samples=2, checkpoints=(0, 2))
    out = dense_critic_run(cpu_base, cfg)
    assert [r["step"] for r in out["rows"]] == [0, 2] and out["samples"] == 16
    ev = dense_eval_set(cpu_base, cfg, torch.Generator().manual_seed(cfg.seed))
    mask = ev["rollout"].completion_mask
    first = out["rows"][0]                                       # V = 0: the zero value head
    assert first["explained_variance"] == 0.0
    assert first["adv_corr/lam_0"] == pytest.approx(pearson(ev["rewards"][mask], ev["adv_mc"][mask]))
    assert first["adv_corr/lam_1"] == pytest.approx(pearson(ev["returns"][mask], ev["adv_mc"][mask]))
    assert out["eval_tokens"] == int(mask.sum())
    for bad, match in (({"checkpoints": (0, 3)}, "checkpoints"), ({"lams": (1.5,)}, "lams"),
                       ({"mc_samples": 0}, "mc_samples")):
        with pytest.raises(ValueError, match=match):
            dense_critic_run(cpu_base, replace(cfg, **bad))


def test_the_dense_critic_learns_and_short_horizons_win(cpu_base):
    """Notebook 04's run: the critic's explained variance rises from 0 (its zero head); a
    half-trained critic (step 3) costs GAE(0) more than GAE(1); once it has learned, lambda
    <= 0.5 tracks the true advantages better than lambda >= 0.95. Smallest margins over base
    seeds 0-6: 0.27, 0.10 and 0.08."""
    from refimpl.methods.ppo_analysis import dense_critic_run
    first, half, last = (dense_critic_run(cpu_base)["rows"][i] for i in (0, 1, -1))
    c = lambda row, lam: row[f"adv_corr/lam_{lam:g}"]
    assert last["explained_variance"] > first["explained_variance"] + 0.15
    assert c(first, 0) - c(half, 0) > c(first, 1) - c(half, 1)
    assert max(c(last, 0), c(last, 0.5)) > max(c(last, 0.95), c(last, 1)) + 0.03
