"""Tests for refimpl.methods.reinforce: REINFORCE with a baseline, RLOO, the running b(x) (claim C12).

The unbiasedness and variance statements are checked by exact enumeration of every group of
samples on a small softmax bandit, against closed forms derived in the comments.
Notation per prompt: pi the policy, s(a) = grad_logits log pi(a) = onehot(a) - pi (the
score), p = E[r] the pass rate, v = E[r s] the one-sample gradient, M prompts, G samples.
"""

import copy
import math
import types

import pytest
import torch

from refimpl.methods.reinforce import (BASELINE_KINDS, RunningBaseline, baseline,
                                       exact_reward_bandit_gradient, gradient_variance,
                                       per_sample_grads, reinforce_loss)

DT = torch.float64


def random_bandit(M, N, seed, binary=False):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(M, N, generator=gen, dtype=DT)  # (M, N)
    if binary:
        rewards = (torch.rand(M, N, generator=gen, dtype=DT) < 0.5).to(DT)  # (M, N)
    else:
        rewards = torch.rand(M, N, generator=gen, dtype=DT)  # (M, N)
    return logits, rewards


def per_prompt_moments(logits, rewards):
    """pi, pass rate p, E[r |s|^2], E[|s|^2], E[(r-p)^2 |s|^2], Var(r), |v|^2 for each prompt."""
    pi = torch.softmax(logits, dim=-1)  # (M, N)
    p = (pi * rewards).sum(-1)  # (M,)
    sq = 1 - 2 * pi + (pi**2).sum(-1, keepdim=True)  # (M, N): |onehot(a) - pi|^2
    u = rewards - p[:, None]  # (M, N)
    v = pi * u  # (M, N): E[r s] = sum_a pi_a r_a (e_a - pi) = pi * (r - p)
    return dict(pi=pi, p=p, Ers=(pi * rewards * sq).sum(-1), Es=(pi * sq).sum(-1),
                Eus=(pi * u**2 * sq).sum(-1), var_r=(pi * u**2).sum(-1), v2=(v**2).sum(-1))


# ---------------------------------------------------------------- unbiasedness (eq. 1) -----

def test_true_gradient_matches_softmax_closed_form():
    logits, rewards = random_bandit(3, 4, seed=0)
    out = exact_reward_bandit_gradient(logits, rewards, group_size=2, kinds=())
    pi = torch.softmax(logits, -1)  # (M, N)
    closed = pi * (rewards - (pi * rewards).sum(-1, keepdim=True)) / 3  # (M, N)
    torch.testing.assert_close(out.true_grad, closed, rtol=0, atol=1e-14)


@pytest.mark.parametrize("seed,G,binary", [(1, 2, False), (2, 3, True), (3, 4, False)])
def test_action_independent_baselines_are_unbiased(seed, G, binary):
    # E[b * s(a)] = b * E[s] = 0 for any b independent of the sample a: none, any constant,
    # the running b(x) (a function of past batches only) and RLOO (other samples only).
    logits, rewards = random_bandit(2, 3, seed, binary)
    constants = torch.tensor([0.7, -1.3], dtype=DT)
    out = exact_reward_bandit_gradient(logits, rewards, G, kinds=("none", "rloo"))
    out_const = exact_reward_bandit_gradient(logits, rewards, G, kinds=("running",), running_values=constants)
    out_default = exact_reward_bandit_gradient(logits, rewards, G, kinds=("running",))
    assert out.exact
    for mean in (out.mean["none"], out.mean["rloo"], out_const.mean["running"], out_default.mean["running"]):
        torch.testing.assert_close(mean, out.true_grad, rtol=0, atol=1e-14)


@pytest.mark.parametrize("G", [2, 3, 4])
def test_group_mean_is_biased_by_g_minus_one_over_g(G):
    # b_i = r_i/G + (G-1)/G * b_i^rloo, so r_i - b_i = (G-1)/G * (r_i - b_i^rloo) sample by
    # sample: the mean shrinks by (G-1)/G and the variance by ((G-1)/G)^2.
    logits, rewards = random_bandit(2, 3, seed=10 + G)
    out = exact_reward_bandit_gradient(logits, rewards, G, kinds=("rloo", "group_mean"))
    k = (G - 1) / G
    torch.testing.assert_close(out.mean["group_mean"], k * out.true_grad, rtol=0, atol=1e-14)
    assert out.variance["group_mean"] == pytest.approx(k**2 * out.variance["rloo"], rel=1e-10)
    assert not torch.allclose(out.mean["group_mean"], out.true_grad)


# ---------------------------------------------------------------- variance -----------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_baseline_variance_closed_form(seed):
    # One sample: Var(b) = E[(r-b)^2 |s|^2] - |v|^2, so Var(0) - Var(b) = 2b E[r|s|^2] - b^2 E[|s|^2];
    # a batch of G i.i.d. samples per prompt, scaled by 1/(M G), divides by M^2 G.
    M, N, G = 2, 3, 2
    logits, rewards = random_bandit(M, N, seed)
    b = torch.tensor([0.3, 1.1], dtype=DT)
    out = exact_reward_bandit_gradient(logits, rewards, G, kinds=("none", "running"), running_values=b)
    mo = per_prompt_moments(logits, rewards)
    var_none = ((mo["pi"] * rewards**2 * (1 - 2 * mo["pi"] + (mo["pi"] ** 2).sum(-1, keepdim=True))).sum(-1)
                - mo["v2"]).sum() / (M**2 * G)
    reduction = (2 * b * mo["Ers"] - b**2 * mo["Es"]).sum() / (M**2 * G)
    assert out.variance["none"] == pytest.approx(var_none.item(), rel=1e-10)
    assert out.variance["none"] - out.variance["running"] == pytest.approx(reduction.item(), rel=1e-9)


@pytest.mark.parametrize("p_correct", [1, 2, 3])
def test_pass_rate_baseline_lowers_variance_when_score_norms_are_equal(p_correct):
    # Uniform policy over N actions: |s(a)|^2 = 1 - 1/N for every a, so the best constant
    # b* = E[r|s|^2]/E[|s|^2] is exactly the pass rate p, and b = p removes (1 - 1/N) p^2 / G
    # (per prompt, before the 1/M^2): a strict reduction for every p > 0.
    N, G = 4, 3
    logits = torch.zeros(1, N, dtype=DT)
    rewards = torch.tensor([[1.0] * p_correct + [0.0] * (N - p_correct)], dtype=DT)
    p = p_correct / N
    out = exact_reward_bandit_gradient(logits, rewards, G, kinds=("none", "running"))
    assert out.variance["none"] - out.variance["running"] == pytest.approx((1 - 1 / N) * p**2 / G, rel=1e-10)
    assert out.variance["running"] < out.variance["none"]


def test_pass_rate_baseline_can_raise_variance_on_a_confident_policy():
    # Two actions, pi(correct) = q, one sample. Every gradient lies along (1, -1)/sqrt(2), with
    # coordinate (r - b) sqrt(2) (1{correct} - q): sqrt(2)(1-b)(1-q) on a correct sample (prob q)
    # and sqrt(2) b q on a wrong one. So E[g^2] = 2q(1-q)^2 with b = 0 and
    # 2q(1-q)^4 + 2(1-q)q^4 = 2q(1-q)((1-q)^3 + q^3) with b = q; the mean is sqrt(2) q (1-q)
    # for both. At q = 0.9 the pass-rate baseline multiplies the variance by 64, because
    # b* = E[r|s|^2]/E[|s|^2] = 1 - q = 0.1 here, far from the pass rate 0.9.
    q = 0.9
    logits = torch.tensor([[math.log(q / (1 - q)), 0.0]], dtype=DT)
    rewards = torch.tensor([[1.0, 0.0]], dtype=DT)
    out = exact_reward_bandit_gradient(logits, rewards, 1, kinds=("none", "running"))
    mean2 = 2 * q**2 * (1 - q) ** 2
    var_none = 2 * q * (1 - q) ** 2 - mean2
    var_p = 2 * q * (1 - q) * ((1 - q) ** 3 + q**3) - mean2
    assert out.variance["none"] == pytest.approx(var_none, rel=1e-9)
    assert out.variance["running"] == pytest.approx(var_p, rel=1e-9)
    assert out.variance["running"] / out.variance["none"] == pytest.approx(64.0, rel=1e-9)
    best = exact_reward_bandit_gradient(logits, rewards, 1, kinds=("running",),
                                 running_values=torch.tensor([1 - q], dtype=DT))
    assert best.variance["running"] < out.variance["none"]


@pytest.mark.parametrize("seed,G", [(0, 2), (1, 3), (2, 4)])
def test_rloo_variance_closed_form(seed, G):
    # With A_i = u_i - mean_{j != i} u_j (u = r - p), expanding E|1/G sum_i A_i s_i|^2 with the
    # samples independent and E[s] = 0 leaves, per prompt:
    #   Var_rloo = (E[u^2 |s|^2] + E[|s|^2] Var(r) / (G-1)) / G - (G-2) / (G (G-1)) |v|^2.
    M, N = 2, 3
    logits, rewards = random_bandit(M, N, seed)
    out = exact_reward_bandit_gradient(logits, rewards, G, kinds=("rloo",))
    mo = per_prompt_moments(logits, rewards)
    closed = ((mo["Eus"] + mo["Es"] * mo["var_r"] / (G - 1)) / G - (G - 2) / (G * (G - 1)) * mo["v2"]).sum() / M**2
    assert out.variance["rloo"] == pytest.approx(closed.item(), rel=1e-10)


@pytest.mark.parametrize("n_correct,G", [(3, 4), (3, 2), (1, 4), (1, 2), (2, 2)])
def test_rloo_beats_no_baseline_on_easy_prompts_not_on_hard_ones(n_correct, G):
    # Uniform policy, binary rewards, pass rate p = n_correct / N. From the closed forms above,
    # G (G-1) (Var_none - Var_rloo) = p [(1 - 1/N)(G p - 1) - (1 - p)/N]: RLOO helps when the
    # prompt is easy (p = 0.75) but adds noise on a hard prompt with few samples (p = 0.25,
    # where plain REINFORCE already gives zero gradient to most samples).
    N = 4
    p = n_correct / N
    logits = torch.zeros(1, N, dtype=DT)
    rewards = torch.tensor([[1.0] * n_correct + [0.0] * (N - n_correct)], dtype=DT)
    out = exact_reward_bandit_gradient(logits, rewards, G, kinds=("none", "rloo"))
    gap = p * ((1 - 1 / N) * (G * p - 1) - (1 - p) / N) / (G * (G - 1))
    assert out.variance["none"] - out.variance["rloo"] == pytest.approx(gap, rel=1e-9, abs=1e-15)
    assert (out.variance["rloo"] < out.variance["none"]) == (gap > 0)


def test_monte_carlo_path_agrees_with_enumeration():
    logits, rewards = random_bandit(2, 3, seed=4, binary=True)
    exact = exact_reward_bandit_gradient(logits, rewards, 3)
    mc = exact_reward_bandit_gradient(logits, rewards, 3, max_enumerate=1, n_samples=20_000,
                               generator=torch.Generator().manual_seed(0))
    assert exact.exact and not mc.exact
    for kind in BASELINE_KINDS:
        # Each coordinate's variance is at most the trace: 5 standard errors bound the error.
        tol = 5 * math.sqrt(exact.variance[kind] / 20_000)
        assert (mc.mean[kind] - exact.mean[kind]).abs().max().item() < tol
        assert mc.variance[kind] == pytest.approx(exact.variance[kind], rel=0.1)


# ---------------------------------------------------------------- baselines ---------------

def test_rloo_hand_built_group_excludes_the_sample_itself():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # (2*4,)
    expected = torch.tensor([1 / 3, 2 / 3, 2 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0])
    torch.testing.assert_close(baseline(rewards, 4, "rloo"), expected)
    changed = rewards.clone()
    changed[0] = 5.0
    b = baseline(changed, 4, "rloo")  # (8,)
    assert b[0] == pytest.approx(1 / 3)  # its own reward does not enter
    torch.testing.assert_close(b[1:4], expected[1:4] + 4.0 / 3)
    torch.testing.assert_close(b[4:], expected[4:])


def test_group_mean_and_none_hand_built():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # (3*2,)
    torch.testing.assert_close(baseline(rewards, 2, "group_mean"), torch.tensor([0.5, 0.5, 0.5, 0.5, 1.0, 1.0]))
    torch.testing.assert_close(baseline(rewards, 2, "none"), torch.zeros(6))
    assert baseline(torch.tensor([1, 0, 1, 1]), 2, "rloo").dtype == torch.get_default_dtype()


def test_running_baseline_count_average_and_read_before_update():
    rb = RunningBaseline(init=0.5)
    keys = ["a", "b"]
    b1 = baseline(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 1.0]), 3, "running", running=rb, keys=keys)
    torch.testing.assert_close(b1, torch.full((6,), 0.5))  # never seen: init
    # The current rewards do not affect the current baseline: two different batches from the
    # same state get the same b.
    rb2 = copy.deepcopy(rb)
    b2 = baseline(torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 3, "running", running=rb, keys=["a", "c"])
    b2_other = baseline(torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0]), 3, "running", running=rb2, keys=["a", "c"])
    torch.testing.assert_close(b2, torch.tensor([2 / 3] * 3 + [0.5] * 3))
    torch.testing.assert_close(b2, b2_other)
    # Count average over all 6 rewards seen for "a": 1, 1, 0, 0, 0, 0.
    assert rb.value["a"] == pytest.approx(2 / 6) and rb.count["a"] == 6
    assert rb.value["b"] == pytest.approx(1 / 3) and rb.value["c"] == pytest.approx(1.0)


def test_running_baseline_exponential_moving_average():
    rb = RunningBaseline(momentum=0.9)
    rb.update(["x"], torch.tensor([1.0, 0.0]))  # first visit: the group mean
    rb.update(["x"], torch.tensor([1.0, 1.0]))
    assert rb.value["x"] == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)
    torch.testing.assert_close(rb.get(["x", "new"]), torch.tensor([0.55, 0.0], dtype=DT))


# ---------------------------------------------------------------- the loss ----------------

def test_loss_gradient_is_minus_advantage_over_n():
    gen = torch.Generator().manual_seed(0)
    seq_logps = (-3 * torch.rand(8, generator=gen)).requires_grad_(True)  # (8,)
    rewards = (torch.rand(8, generator=gen) < 0.5).float().requires_grad_(True)  # (8,)
    baselines = baseline(rewards.detach(), 4, "rloo").requires_grad_(True)  # (8,)
    loss, metrics = reinforce_loss(seq_logps, rewards, baselines, group_size=4)
    loss.backward()
    torch.testing.assert_close(seq_logps.grad, -(rewards - baselines).detach() / 8)
    assert rewards.grad is None and baselines.grad is None  # the advantage is detached
    expected = -((rewards - baselines) * seq_logps).mean()
    assert loss.item() == pytest.approx(expected.item())


def test_loss_autograd_on_bandit_equals_the_estimator():
    # d(-loss)/d logits = 1/(M G) sum (r - b)(onehot(a) - pi): the sample that
    # exact_reward_bandit_gradient averages over.
    M, N, G = 3, 4, 4
    logits, table = random_bandit(M, N, seed=7, binary=True)
    theta = logits.clone().requires_grad_(True)
    gen = torch.Generator().manual_seed(1)
    actions = torch.multinomial(torch.softmax(logits, -1), G, replacement=True, generator=gen)  # (M, G)
    seq_logps = torch.log_softmax(theta, -1).gather(1, actions).reshape(-1)  # (M*G,)
    rewards = table.gather(1, actions).reshape(-1)  # (M*G,)
    b = baseline(rewards, G, "rloo")  # (M*G,)
    loss, _ = reinforce_loss(seq_logps, rewards, b, group_size=G)
    (grad,) = torch.autograd.grad(loss, theta)
    pi = torch.softmax(logits, -1)  # (M, N)
    score = torch.nn.functional.one_hot(actions, N).to(DT) - pi[:, None, :]  # (M, G, N)
    estimate = ((rewards - b).reshape(M, G, 1) * score).sum(1) / (M * G)  # (M, N)
    torch.testing.assert_close(-grad, estimate)


def test_per_token_input_equals_sequence_input():
    gen = torch.Generator().manual_seed(2)
    tok = -2 * torch.rand(4, 5, generator=gen)  # (B*G, T)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    tok = torch.where(mask, tok, torch.tensor(float("-inf")))  # garbage off the mask is ignored
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])
    b = baseline(rewards, 2, "rloo")
    loss_tok, m_tok = reinforce_loss(tok, rewards, b, group_size=2, mask=mask)
    loss_seq, m_seq = reinforce_loss(torch.where(mask, tok, 0.0).sum(1), rewards, b, group_size=2)
    assert loss_tok.item() == pytest.approx(loss_seq.item())
    assert m_tok["completions/mean_length"] == pytest.approx(11 / 4)


def test_metrics_hand_built():
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])  # (2*4,)
    b = torch.full((8,), 0.25)
    _, m = reinforce_loss(torch.zeros(8), rewards, b, group_size=4)
    assert m["reward"] == pytest.approx(5 / 8)
    assert m["advantage_mean"] == pytest.approx(5 / 8 - 0.25)
    assert m["frac_reward_zero_std"] == pytest.approx(0.5)  # the all-correct group
    assert m["reward_std"] == pytest.approx((0.0 + 0.5) / 2)  # std of (0,1,0,0) with correction=1 is 0.5
    assert "kl" not in m
    _, m1 = reinforce_loss(torch.zeros(4), torch.tensor([1.0, 0.0, 1.0, 1.0]), torch.zeros(4), group_size=1)
    assert m1["frac_reward_zero_std"] == 1.0 and m1["reward_std"] == pytest.approx(0.5)


def test_kl_penalty_is_seq_kl_coef_times_summed_k3():
    gen = torch.Generator().manual_seed(3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    logps = torch.where(mask, -torch.rand(2, 4, generator=gen), 0.0)  # (B*G, T)
    ref = torch.where(mask, -torch.rand(2, 4, generator=gen), 0.0)  # (B*G, T)
    rewards, b = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])
    seq_kl_coef = 0.3
    base, _ = reinforce_loss(logps, rewards, b, group_size=2, mask=mask)
    loss, m = reinforce_loss(logps, rewards, b, ref, seq_kl_coef, group_size=2, mask=mask)
    lr = ref - logps  # (B*G, T)
    k3 = torch.where(mask, lr.exp() - lr - 1, 0.0)  # (B*G, T)
    assert (loss - base).item() == pytest.approx(seq_kl_coef * k3.sum(1).mean().item())
    assert m["kl/sequence"] == pytest.approx(k3.sum(1).mean().item())
    assert m["kl"] == pytest.approx((k3.sum() / mask.sum()).item())
    # Sequence inputs: the estimator on the sequence log-ratio.
    seq_loss, ms = reinforce_loss(logps.sum(1), rewards, b, ref.sum(1), seq_kl_coef, group_size=2,
                                  kl_estimator="k1")
    assert ms["kl"] == pytest.approx((logps.sum(1) - ref.sum(1)).mean().item())


# ---------------------------------------------------------------- helpers -----------------

def test_gradient_variance_weighted_and_sampled():
    gen = torch.Generator().manual_seed(5)
    g = torch.randn(6, 3, generator=gen, dtype=DT)  # (Z, W)
    w = torch.softmax(torch.randn(6, generator=gen, dtype=DT), 0)  # (Z,)
    mean = (w[:, None] * g).sum(0)  # (D,)
    explicit = sum(w[i] * ((g[i] - mean) ** 2).sum() for i in range(6))
    assert gradient_variance(g, w) == pytest.approx(explicit.item())
    assert gradient_variance(g) == pytest.approx(g.var(dim=0, correction=1).sum().item())


def test_per_sample_grads_matches_manual():
    lin = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3)
    losses = lin(x).squeeze(1) ** 2  # (4,)
    grads = per_sample_grads(list(losses), lin.parameters())  # (4, 4)
    for i in range(4):
        out = lin(x[i])
        manual = torch.cat([2 * out * x[i], 2 * out]).detach()  # (4,)
        torch.testing.assert_close(grads[i], manual)


# ---------------------------------------------------------------- bad input ---------------

def _loss_kwargs(**over):
    kw = dict(logps=torch.zeros(4), rewards=torch.ones(4), baselines=torch.zeros(4), group_size=2)
    kw.update(over)
    return kw


@pytest.mark.parametrize("call,match", [
    (lambda: baseline(torch.ones(4), 1, "rloo"), "group_size"),
    (lambda: baseline(torch.ones(4), 1, "group_mean"), "group_size"),
    (lambda: baseline(torch.ones(5), 2, "rloo"), "multiple"),
    (lambda: baseline(torch.tensor([1.0, float("nan")]), 2, "rloo"), "NaN"),
    (lambda: baseline(torch.ones(4), 2, "mean"), "unknown baseline"),
    (lambda: baseline(torch.ones(2, 2), 2, "rloo"), "1-D"),
    (lambda: baseline(torch.ones(4), 2, "running"), "running"),
    (lambda: baseline(torch.ones(4), 2, "running", running=RunningBaseline(), keys=["a"]), "key"),
    (lambda: RunningBaseline(momentum=1.0), "momentum"),
    (lambda: reinforce_loss(**_loss_kwargs(rewards=torch.ones(3))), "rewards must have shape"),
    (lambda: reinforce_loss(**_loss_kwargs(baselines=torch.zeros(5))), "baselines must have shape"),
    (lambda: reinforce_loss(**_loss_kwargs(group_size=3)), "multiple"),
    (lambda: reinforce_loss(**_loss_kwargs(group_size=0)), "group_size"),
    (lambda: reinforce_loss(**_loss_kwargs(logps=torch.tensor([0.0, float("nan"), 0.0, 0.0]))), "NaN"),
    (lambda: reinforce_loss(**_loss_kwargs(rewards=torch.tensor([1.0, float("inf"), 0.0, 0.0]))), "NaN or inf"),
    (lambda: reinforce_loss(**_loss_kwargs(baselines=torch.tensor([0.0, float("nan"), 0.0, 0.0]))), "NaN"),
    (lambda: reinforce_loss(**_loss_kwargs(logps=torch.zeros(4, 3))), "mask"),
    (lambda: reinforce_loss(**_loss_kwargs(logps=torch.zeros(4, 3), mask=torch.ones(4, 2, dtype=torch.bool))), "mask"),
    (lambda: reinforce_loss(**_loss_kwargs(mask=torch.ones(4, dtype=torch.bool))), "mask"),
    (lambda: reinforce_loss(**_loss_kwargs(seq_kl_coef=-0.1)), "seq_kl_coef"),
    (lambda: reinforce_loss(**_loss_kwargs(seq_kl_coef=float("nan"))), "seq_kl_coef"),
    (lambda: reinforce_loss(**_loss_kwargs(seq_kl_coef=0.1)), "ref_logps"),
    (lambda: reinforce_loss(**_loss_kwargs(ref_logps=torch.zeros(3))), "ref_logps"),
    (lambda: reinforce_loss(**_loss_kwargs(kl_estimator="k4")), "unknown kl_estimator"),
    (lambda: gradient_variance(torch.zeros(1, 3)), "at least 2"),
    (lambda: gradient_variance(torch.zeros(2, 3), torch.tensor([0.5, 0.6])), "summing to 1"),
    (lambda: exact_reward_bandit_gradient(torch.zeros(2, 3), torch.zeros(2, 2), 2), r"\(M, N\)"),
    (lambda: exact_reward_bandit_gradient(torch.zeros(2, 3), torch.zeros(2, 3), 1, kinds=("rloo",)), "group_size"),
    (lambda: exact_reward_bandit_gradient(torch.zeros(2, 3), torch.zeros(2, 3), 2, running_values=torch.zeros(3)), "running_values"),
])
def test_bad_input_raises_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ---------------------------------------------------------------- the graded exercise -----

def _run_checks(mod, name):
    from grader.checks.reinforce import EXERCISES

    failures = []
    for check in EXERCISES[name]:
        try:
            check(mod)
        except Exception as e:  # noqa: BLE001 - a crash counts as a failed check too
            failures.append(f"{check.__name__}: {type(e).__name__}: {e}")
    return failures


def test_reference_solution_passes_every_check():
    import solutions.reinforce as sol

    assert _run_checks(sol, "reinforce_loss") == []
    assert _run_checks(sol, "rloo_baseline") == []


def _group_view(r, G):
    return r.float().reshape(-1, G)


def _validated(fn):
    """A wrong rloo_baseline that still raises the right errors, so only its maths is judged."""
    def rloo_baseline(r, G):
        if G < 2 or r.numel() % G:
            raise ValueError("bad group size")
        return fn(r, G)
    return rloo_baseline


@pytest.mark.parametrize("name,fn", [
    ("reinforce_loss", lambda lp, r, b: -((r - b) * lp).mean()),              # not detached
    ("reinforce_loss", lambda lp, r, b: ((r - b).detach() * lp).mean()),      # wrong sign
    ("reinforce_loss", lambda lp, r, b: -((r - b).detach() * lp).sum()),      # sum, not mean
    ("reinforce_loss", lambda lp, r, b: -(r.detach() * lp).mean()),           # baseline ignored
    ("rloo_baseline", _validated(lambda r, G: _group_view(r, G).mean(1, keepdim=True).expand(-1, G).reshape(-1))),
    ("rloo_baseline", _validated(lambda r, G: (r.sum() - r).float() / (r.numel() - 1))),  # whole batch
    ("rloo_baseline", _validated(lambda r, G: ((_group_view(r, G).sum(1, keepdim=True) - _group_view(r, G))
                                               / G).reshape(-1))),  # divides by G
    ("rloo_baseline", _validated(lambda r, G: ((r.float().reshape(G, -1).sum(0, keepdim=True)
                                                - r.float().reshape(G, -1)) / (G - 1)).reshape(-1))),  # strided
    ("rloo_baseline", lambda r, G: ((_group_view(r, G).sum(1, keepdim=True) - _group_view(r, G))
                                    / (G - 1)).reshape(-1)),  # right maths, no ValueError for G = 1
])
def test_checks_reject_wrong_solutions(name, fn):
    mod = types.SimpleNamespace(**{name: fn})
    assert _run_checks(mod, name), f"a wrong {name} passed every check"


# ------------------------------------------- refimpl.methods.reinforce_analysis (notebook 05) -----

def _pool(B, N, W, seed, centred):
    """Random scores S (B*N, W) and 0/1 rewards (B, N) with both outcomes in every row;
    centred: each prompt's scores average to 0, as they do in expectation under the policy."""
    gen = torch.Generator().manual_seed(seed)
    S = torch.randn(B * N, W, generator=gen, dtype=DT)  # (BN, W)
    if centred:
        S = (S.view(B, N, W) - S.view(B, N, W).mean(1, keepdim=True)).reshape(B * N, W)
    R = torch.zeros(B, N, dtype=DT)
    R[:, 0] = 1.0
    R[:, 1:] = (torch.rand(B, N - 1, generator=gen, dtype=DT) < 0.5).to(DT)
    R[:, -1] = 0.0
    return S, R


def _exact_pool_variance(S, R, G, make_b):
    """Trace of Cov(g) of g = 1/(B G) sum_i (r_i - b_i) s_i over every group of G indices
    drawn with replacement from each prompt's pool (prompts independent: variances add)."""
    import itertools
    B, N = R.shape
    total = 0.0
    for b in range(B):
        Sb, r = S[b * N:(b + 1) * N], R[b]
        hs = []
        for idx in itertools.product(range(N), repeat=G):
            rr = r[list(idx)]  # (G,)
            hs.append(((rr - make_b(rr, r))[:, None] * Sb[list(idx)]).sum(0) / (B * G))  # (W,)
        H = torch.stack(hs)  # (N**G, W)
        total += ((H - H.mean(0)) ** 2).sum(1).mean().item()
    return total


@pytest.mark.parametrize("G,centred", [(2, False), (3, False), (3, True), (4, True)])
def test_rloo_excess_variance_equals_enumeration(G, centred):
    from refimpl.methods.reinforce_analysis import rloo_excess_variance
    S, R = _pool(2, 3, 5, seed=G, centred=centred)
    rloo = _exact_pool_variance(S, R, G, lambda rr, r: baseline(rr, G, "rloo"))
    fixed_p = _exact_pool_variance(S, R, G, lambda rr, r: r.mean())
    excess = rloo_excess_variance(S @ S.T, R, G)
    assert excess == pytest.approx(rloo - fixed_p, rel=1e-9, abs=1e-12)
    if centred:   # under the policy's own distribution (E[s] = 0) the penalty is positive
        K = (S @ S.T).view(2, 3, 2, 3)
        c = R - R.mean(1, keepdim=True)
        per = [((c[b] ** 2).mean() * K[b, :, b].diagonal().mean()
                + c[b] @ K[b, :, b] @ c[b] / 9) / (G * (G - 1)) for b in range(2)]
        assert excess > 0 and excess == pytest.approx(sum(per).item() / 4, rel=1e-9)


def test_best_constant_baseline_minimises_the_variance_of_a_fixed_baseline():
    from refimpl.methods.reinforce_analysis import best_constant_baseline
    S, R = _pool(2, 4, 3, seed=7, centred=True)
    K = S @ S.T
    b_star = best_constant_baseline(K, R)  # (B,)
    sq = K.diagonal().view(2, 4)
    torch.testing.assert_close(b_star, (R * sq).sum(1) / sq.sum(1))
    def row(b):   # the first prompt alone, a fixed baseline b
        return _exact_pool_variance(S[:4], R[:1], 2, lambda rr, r: torch.full_like(rr, b))

    v0, vstar, v2star = row(0.0), row(b_star[0].item()), row(2 * b_star[0].item())
    assert vstar < v0 and v2star == pytest.approx(v0, rel=1e-9)   # symmetric about b*
    assert vstar < row(b_star[0].item() + 0.05) and vstar < row(b_star[0].item() - 0.05)


def test_fixed_baselines_are_measured_on_the_same_draws_as_the_kinds():
    from refimpl.methods.reinforce_analysis import estimator_variance
    S, R = _pool(2, 4, 3, seed=3, centred=False)
    K = S @ S.T
    out = estimator_variance(K, R, 2, kinds=("none", "running"), resamples=500,
                             fixed={"p": R.mean(1), "zero": torch.zeros(2, dtype=DT)})
    assert out["p"] == pytest.approx(out["running"], rel=1e-12)
    assert out["zero"] == pytest.approx(out["none"], rel=1e-12)


def test_difficulty_bins_and_pass_rates_by_bin_hand_built():
    from refimpl.methods.reinforce_analysis import difficulty_bins, pass_rate_by_bin
    first = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=DT)
    bins = difficulty_bins(first)
    assert bins.tolist() == [0, 1, 2, 2]
    second = torch.tensor([[0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 1, 0]], dtype=DT)
    out = pass_rate_by_bin(second, bins)
    assert out["prompts"] == [1, 1, 2]
    assert out["pass_rate"] == pytest.approx([0.0, 1 / 3, 1 / 3])
    assert out["all_zero"] == pytest.approx([1.0, 0.0, 0.5])
    assert math.isnan(pass_rate_by_bin(second, torch.zeros(4, dtype=torch.long))["pass_rate"][1])
