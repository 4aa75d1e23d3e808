"""Tests for refimpl.methods.grpo: group advantages (C7, C11), the clipped surrogate, the three loss
aggregations, and the zero gradient of uniform groups (C8, article exercise 2)."""

import itertools
import math

import pytest
import torch

from refimpl.methods.grpo import (frac_reward_zero_std, group_advantages, grpo_loss,
                                  prob_uniform_group)

DT = torch.float64


# ---------------------------------------------------------------- slow reference ----------

def slow_grpo_loss(logps, old_logps, adv, mask, eps_low, eps_high, ref_logps=None, beta=0.0,
                   loss_agg="grpo", max_tokens=None):
    """Token by token with Python floats: the formula as written in the papers."""
    B, T = len(logps), len(logps[0])
    max_tokens = T if max_tokens is None else max_tokens
    per_seq, total, n_tok = [], 0.0, 0
    for b in range(B):
        seq, n = 0.0, 0
        for t in range(T):
            if not mask[b][t]:
                continue
            rho = math.exp(logps[b][t] - old_logps[b][t])
            clipped = min(max(rho, 1 - eps_low), 1 + eps_high)
            term = -min(rho * adv[b], clipped * adv[b])
            if beta > 0:
                lr = ref_logps[b][t] - logps[b][t]
                term += beta * (math.exp(lr) - 1 - lr)
            seq += term
            n += 1
        per_seq.append(seq / max(n, 1))
        total += seq
        n_tok += n
    if loss_agg == "grpo":
        return sum(per_seq) / B
    if loss_agg == "dapo":
        return total / n_tok
    return total / (B * max_tokens)


def slow_variant_loss(logps, old_logps, adv, mask, eps_low, eps_high, ref_logps=None, beta=0.0,
                      loss_agg="grpo", max_tokens=None, level="token", surrogate="clip",
                      kl_weight=False):
    """GSPO, CISPO and the weighted KL, one scalar tensor at a time (autograd: the gradient)."""
    B, T = logps.shape
    max_tokens = T if max_tokens is None else max_tokens
    per_seq, total, n_tok = [], 0.0, 0
    for b in range(B):
        toks = [t for t in range(T) if mask[b, t]]
        s = torch.exp(sum(logps[b, t] - old_logps[b, t] for t in toks) / len(toks))  # GSPO s_i
        seq = 0.0
        for t in toks:
            w = s if level == "sequence" else torch.exp(logps[b, t] - old_logps[b, t])
            if surrogate == "cispo":
                term = -min(w.item(), eps_high) * adv[b].item() * logps[b, t]
            else:
                low, high = (torch.tensor(1 + e, dtype=DT) for e in (-eps_low, eps_high))
                clipped = min(max(w, low), high)
                term = -min(w * adv[b].item(), clipped * adv[b].item())
            if beta > 0:
                lr = ref_logps[b, t] - logps[b, t]
                term = term + beta * (torch.exp(lr) - 1 - lr) * (w if kl_weight else 1.0)
            seq = seq + term
        per_seq.append(seq / len(toks))
        total, n_tok = total + seq, n_tok + len(toks)
    if loss_agg == "grpo":
        return sum(per_seq) / B
    if loss_agg == "dapo":
        return total / n_tok
    return total / (B * max_tokens)


def random_batch(B=6, T=7, seed=0, spread=0.5):
    g = torch.Generator().manual_seed(seed)
    logps = -torch.rand(B, T, generator=g, dtype=DT) * 3  # (B, T)
    old = logps + spread * torch.randn(B, T, generator=g, dtype=DT)  # (B, T)
    ref = -(logps + spread * torch.randn(B, T, generator=g, dtype=DT)).abs()  # (B, T) <= 0
    adv = torch.randn(B, generator=g, dtype=DT)  # (B,)
    lengths = torch.randint(1, T + 1, (B,), generator=g)  # (B,)
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    logps, old, ref = (torch.where(mask, x, 0.0) for x in (logps, old, ref))
    return logps, old, ref, adv, mask


# ---------------------------------------------------------------- advantages (C7) -----------

def test_advantages_closed_form_one_correct_of_four():
    # mean 1/4; unbiased std = sqrt((3/4)^2 + 3 (1/4)^2) / 3) = 1/2
    adv = group_advantages(torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=DT), 4)
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25], dtype=DT) / (0.5 + 1e-4)
    torch.testing.assert_close(adv, expected, rtol=0, atol=1e-12)


def test_advantages_biased_std_and_no_scaling():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=DT)
    biased = math.sqrt(3) / 4  # population std: sqrt(3/16)
    torch.testing.assert_close(group_advantages(r, 4, unbiased=False),
                               (r - 0.25) / (biased + 1e-4), rtol=0, atol=1e-12)
    torch.testing.assert_close(group_advantages(r, 4, scale="none"), r - 0.25, rtol=0, atol=0)


def test_advantages_batch_scale_uses_batch_std_and_group_mean():
    r = torch.tensor([1.0, 0.0, 3.0, 5.0, 2.0, 2.0], dtype=DT)
    grouped = r.view(3, 2)
    expected = (grouped - grouped.mean(1, keepdim=True)).reshape(-1) / (r.std() + 1e-4)
    torch.testing.assert_close(group_advantages(r, 2, scale="batch"), expected)


def test_advantages_sum_to_zero_per_group_and_accept_2d():
    g = torch.Generator().manual_seed(1)
    r = torch.rand(5, 8, generator=g, dtype=DT)  # (B, G)
    adv = group_advantages(r, 8)  # (B*G,)
    torch.testing.assert_close(adv.view(5, 8).sum(1), torch.zeros(5, dtype=DT), rtol=0, atol=1e-12)
    torch.testing.assert_close(adv, group_advantages(r.reshape(-1), 8))


def test_best_of_bad_positive_worst_of_good_negative():
    hard = torch.tensor([0.0, 0.0, 0.3, 0.0], dtype=DT)  # all wrong, one partial credit
    easy = torch.tensor([1.0, 1.0, 0.7, 1.0], dtype=DT)  # all right, one weaker (mirror image)
    adv = group_advantages(torch.cat([hard, easy]), 4)
    assert adv[2] > 0 and (adv[[0, 1, 3]] < 0).all()
    assert adv[6] < 0 and (adv[[4, 5, 7]] > 0).all()
    # mirror-image groups: the best-of-bad is pushed up as hard as the worst-of-good is pushed down
    torch.testing.assert_close(adv[2], -adv[6])


def test_uniform_groups_give_exactly_zero_advantages():
    # in float32 the mean of eight 0.1s is not exactly 0.1: the zeros must be set explicitly
    G = 8
    r = torch.tensor([0.1] * G + [1.0] * G + [0.0] * G + [0.3] * (G - 1) + [0.7])
    assert (r[:G] - r[:G].view(1, G).mean(1) != 0).any()
    for scale in ("group", "none", "batch"):
        adv = group_advantages(r, G, scale=scale)
        assert (adv[: 3 * G] == 0).all(), scale
        assert (adv[3 * G:] != 0).all(), scale
    assert (group_advantages(r[: 3 * G], G, eps=0.0) == 0).all()  # no 0/0 even without eps


def test_small_std_enlarges_advantages_c11():
    # C11: dividing by a small group std makes advantages larger, not smaller
    for delta in (0.5, 0.1, 0.01):
        r = torch.tensor([1.0, 1.0, 1.0, 1.0 - delta], dtype=DT)
        scaled = group_advantages(r, 4).abs().max()
        unscaled = group_advantages(r, 4, scale="none").abs().max()
        assert scaled > unscaled
        # 3-vs-1 group: centred max 0.75 delta, unbiased std delta / 2, so the scaled size
        # 1.5 delta / (delta + 2 eps) hardly depends on delta while the raw one shrinks with it
        torch.testing.assert_close(scaled, torch.tensor(1.5 * delta / (delta + 2e-4), dtype=DT))
        torch.testing.assert_close(unscaled, torch.tensor(0.75 * delta, dtype=DT))


def test_frac_reward_zero_std():
    r = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1])
    assert frac_reward_zero_std(r, 4) == pytest.approx(2 / 3)
    assert frac_reward_zero_std(r, 2) == pytest.approx(5 / 6)


def test_prob_uniform_group_matches_enumeration():
    for p, G in [(0.0, 2), (1.0, 3), (0.5, 2), (0.3, 4), (0.9, 5)]:
        exact = sum(p ** sum(o) * (1 - p) ** (G - sum(o))
                    for o in itertools.product((0, 1), repeat=G) if len(set(o)) == 1)
        assert prob_uniform_group(p, G) == pytest.approx(exact, abs=1e-12)
    p = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=DT)
    torch.testing.assert_close(prob_uniform_group(p, 2), torch.tensor([1.0, 0.625, 0.5, 1.0], dtype=DT))


# ---------------------------------------------------------------- the loss ------------------

@pytest.mark.parametrize("loss_agg", ["grpo", "dapo", "dr_grpo"])
@pytest.mark.parametrize("eps_high", [None, 0.28])
def test_loss_matches_slow_loop(loss_agg, eps_high):
    logps, old, ref, adv, mask = random_batch()
    for beta, max_tokens in [(0.0, None), (0.04, None), (0.1, 11)]:
        if loss_agg != "dr_grpo" and max_tokens is not None:
            continue
        loss, _ = grpo_loss(logps, old, adv, mask, clip_eps=0.2, clip_eps_high=eps_high,
                            ref_logps=ref, beta=beta, loss_agg=loss_agg, max_tokens=max_tokens)
        slow = slow_grpo_loss(logps.tolist(), old.tolist(), adv.tolist(), mask.tolist(), 0.2,
                              0.2 if eps_high is None else eps_high, ref.tolist(), beta,
                              loss_agg, max_tokens)
        assert loss.item() == pytest.approx(slow, rel=1e-10, abs=1e-12)


def test_aggregations_weight_lengths_as_documented():
    # one long and one short completion, same advantage: "grpo" gives the long one's tokens a
    # smaller gradient, "dapo" and "dr_grpo" give every token the same one
    T = 8
    logps = torch.zeros(2, T, dtype=DT, requires_grad=True)
    mask = torch.zeros(2, T, dtype=torch.bool)
    mask[0, :8], mask[1, :2] = True, True
    adv = torch.tensor([-1.0, -1.0], dtype=DT)
    grads = {}
    for agg in ("grpo", "dapo", "dr_grpo"):
        (g,) = torch.autograd.grad(grpo_loss(logps, logps.detach(), adv, mask, loss_agg=agg)[0], logps)
        grads[agg] = (g[0, 0].item(), g[1, 0].item())
    assert grads["grpo"] == pytest.approx((1 / (2 * 8), 1 / (2 * 2)))
    assert grads["dapo"] == pytest.approx((1 / 10, 1 / 10))
    assert grads["dr_grpo"] == pytest.approx((1 / (2 * T), 1 / (2 * T)))


def test_ratio_one_gives_advantage_times_grad_logp():
    # first inner step: old = logps, ratio = 1, d loss / d logp_bt = -A_b * weight_bt
    logps, _, _, adv, mask = random_batch(seed=3)
    logps = logps.clone().requires_grad_(True)
    for agg in ("grpo", "dapo", "dr_grpo"):
        loss, metrics = grpo_loss(logps, logps.detach(), adv, mask, loss_agg=agg)
        (g,) = torch.autograd.grad(loss, logps)
        n = mask.sum(1, keepdim=True).to(DT)  # (B, 1)
        weight = {"grpo": 1 / (n * len(adv)), "dapo": 1 / mask.sum().to(DT),
                  "dr_grpo": torch.tensor(1 / (mask.numel()), dtype=DT)}[agg]
        expected = torch.where(mask, -adv[:, None] * weight, 0.0)  # (B, T)
        torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-15)
        assert metrics["ratio_mean"] == pytest.approx(1.0) and metrics["clip_ratio"] == 0.0


def test_old_logps_and_advantages_are_constants():
    # pi_old is the sampling policy: passing the live logps as old_logps must still give the
    # surrogate gradient A * grad logp, not the zero gradient of exp(logps - logps)
    logps, _, _, adv, mask = random_batch(seed=4)
    logps = logps.clone().requires_grad_(True)
    adv_live = adv.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(grpo_loss(logps, logps, adv_live, mask, loss_agg="dapo")[0], logps)
    expected = torch.where(mask, -adv[:, None] / mask.sum(), 0.0)  # (B, T)
    torch.testing.assert_close(g, expected)


@pytest.mark.parametrize("clip_eps_high", [None, 0.28])
def test_clipping_stops_gradient_only_on_the_right_side(clip_eps_high):
    eps_low, eps_high = 0.2, (0.2 if clip_eps_high is None else clip_eps_high)
    # log-ratios: far above, just inside above, far below, just inside below
    up, inside_up, down, inside_down = (math.log(1 + eps_high + 0.05), math.log(1 + eps_high - 0.05),
                                        math.log(1 - eps_low - 0.05), math.log(1 - eps_low + 0.05))
    logratio = torch.tensor([up, inside_up, down, inside_down], dtype=DT)
    logps = torch.zeros(2, 4, dtype=DT, requires_grad=True)
    old = -logratio.repeat(2, 1)  # (2, 4): ratio = exp(logratio)
    mask = torch.ones(2, 4, dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0], dtype=DT)  # row 0 positive, row 1 negative
    loss, metrics = grpo_loss(logps, old, adv, mask, clip_eps=eps_low, clip_eps_high=clip_eps_high)
    (g,) = torch.autograd.grad(loss, logps)
    ratio = logratio.exp()
    # positive A: clipped (zero gradient) only when ratio > 1 + eps_high
    assert g[0, 0] == 0
    torch.testing.assert_close(g[0, 1:], -ratio[1:] / 8)
    # negative A: clipped only when ratio < 1 - eps_low
    assert g[1, 2] == 0
    torch.testing.assert_close(g[1, [0, 1, 3]], ratio[[0, 1, 3]] / 8)
    assert metrics["clip_ratio"] == pytest.approx(2 / 8)
    assert metrics["clip_ratio/high_mean"] == pytest.approx(1 / 8)
    assert metrics["clip_ratio/low_mean"] == pytest.approx(1 / 8)


def test_clip_higher_lets_a_ratio_pass_that_symmetric_clipping_stops():
    logps = torch.zeros(1, 1, dtype=DT, requires_grad=True)
    old = torch.full((1, 1), -math.log(1.25), dtype=DT)  # ratio 1.25
    mask, adv = torch.ones(1, 1, dtype=torch.bool), torch.ones(1, dtype=DT)
    (g_sym,) = torch.autograd.grad(grpo_loss(logps, old, adv, mask)[0], logps)
    (g_dapo,) = torch.autograd.grad(grpo_loss(logps, old, adv, mask, clip_eps_high=0.28)[0], logps)
    assert g_sym.item() == 0 and g_dapo.item() == pytest.approx(-1.25)


# ---------------------------------------------------------------- GSPO, CISPO, weighted KL -

VARIANTS = [(level, surrogate, kl_weight) for level in ("token", "sequence")
            for surrogate in ("clip", "cispo") for kl_weight in (False, True)]


@pytest.mark.parametrize("level, surrogate, kl_weight", VARIANTS)
@pytest.mark.parametrize("loss_agg", ["grpo", "dapo", "dr_grpo"])
def test_variants_match_slow_loop_value_and_gradient(level, surrogate, kl_weight, loss_agg):
    logps, old, ref, adv, mask = random_batch(seed=11, spread=0.4)
    eps_high = 1.1 if surrogate == "cispo" else 0.28  # both caps act on this batch
    kw = dict(clip_eps=0.2, clip_eps_high=eps_high, ref_logps=ref, beta=0.1, loss_agg=loss_agg,
              max_tokens=9 if loss_agg == "dr_grpo" else None)
    fast_in = logps.clone().requires_grad_(True)
    loss, metrics = grpo_loss(fast_in, old, adv, mask, surrogate=surrogate,
                              importance_sampling_level=level, kl_importance_weight=kl_weight, **kw)
    (g_fast,) = torch.autograd.grad(loss, fast_in)
    slow_in = logps.clone().requires_grad_(True)
    slow = slow_variant_loss(slow_in, old, adv, mask, 0.2, eps_high, ref, 0.1, loss_agg,
                             kw["max_tokens"], level, surrogate, kl_weight)
    (g_slow,) = torch.autograd.grad(slow, slow_in)
    assert loss.item() == pytest.approx(slow.item(), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-12)
    assert metrics["clip_ratio"] > 0, "the batch must exercise the clip or the CISPO cap"


def test_token_level_defaults_are_the_plain_grpo_loss():
    logps, old, ref, adv, mask = random_batch(seed=12)
    kw = dict(clip_eps_high=0.28, ref_logps=ref, beta=0.04, loss_agg="dapo")
    plain = grpo_loss(logps, old, adv, mask, **kw)
    explicit = grpo_loss(logps, old, adv, mask, surrogate="clip", importance_sampling_level="token",
                         kl_importance_weight=False, **kw)
    assert plain[0].item() == explicit[0].item() and plain[1] == explicit[1]


def test_gspo_clips_whole_sequences_and_counts_them():
    # row 0: token ratios 2.0 and 0.6 (the token clip would stop the first), geometric mean
    # sqrt(1.2) ~ 1.095 inside [0.8, 1.28]; row 1: ratios 1.5 and 1.2, mean sqrt(1.8) ~ 1.34 > 1.28
    logps = torch.zeros(2, 2, dtype=DT, requires_grad=True)
    old = -torch.tensor([[2.0, 0.6], [1.5, 1.2]], dtype=DT).log()  # (2, 2): ratio = 1 / exp(old)
    mask, adv = torch.ones(2, 2, dtype=torch.bool), torch.ones(2, dtype=DT)
    loss, metrics = grpo_loss(logps, old, adv, mask, clip_eps_high=0.28,
                              importance_sampling_level="sequence")
    (g,) = torch.autograd.grad(loss, logps)
    s0 = math.sqrt(1.2)
    # d s / d logp_t = s / |o|, then the mean over 2 sequences
    torch.testing.assert_close(g[0], torch.full((2,), -s0 / 2 / 2, dtype=DT))
    assert (g[1] == 0).all(), "the whole sequence is clipped, all its tokens lose their gradient"
    assert metrics["clip_ratio"] == pytest.approx(1 / 2)  # one of two sequences
    assert metrics["ratio_mean"] == pytest.approx((s0 + math.sqrt(1.8)) / 2)
    (g_tok,) = torch.autograd.grad(grpo_loss(logps, old, adv, mask, clip_eps_high=0.28)[0], logps)
    assert g_tok[0, 0] == 0 and g_tok[0, 1] != 0  # token level: only the 2.0 token is clipped


def test_cispo_keeps_the_gradient_of_tokens_the_clip_drops():
    # ratios 2.0 (PPO clip: zero gradient for A > 0), 1.1 (inside) and 8.0 (capped at eps_max 5)
    logps = torch.zeros(1, 3, dtype=DT, requires_grad=True)
    old = -torch.tensor([[2.0, 1.1, 8.0]], dtype=DT).log()
    mask, adv = torch.ones(1, 3, dtype=torch.bool), torch.full((1,), 0.5, dtype=DT)
    loss, metrics = grpo_loss(logps, old, adv, mask, clip_eps_high=5.0, surrogate="cispo",
                              loss_agg="dapo")
    (g,) = torch.autograd.grad(loss, logps)
    torch.testing.assert_close(g, -0.5 * torch.tensor([[2.0, 1.1, 5.0]], dtype=DT) / 3)
    assert loss.item() == 0.0  # the value is -w * A * log pi with log pi = 0 here
    assert metrics["clip_ratio"] == pytest.approx(1 / 3) and metrics["clip_ratio/low_mean"] == 0
    (g_clip,) = torch.autograd.grad(grpo_loss(logps, old, adv, mask, clip_eps_high=0.28,
                                              loss_agg="dapo")[0], logps)
    assert g_clip[0, 0] == 0 and g_clip[0, 2] == 0


def test_weighted_kl_same_value_on_policy_extra_gradient_k3_times_grad_logp():
    logps, _, ref, adv, mask = random_batch(seed=13)
    logps = logps.clone().requires_grad_(True)
    out = {}
    for weighted in (False, True):
        loss, metrics = grpo_loss(logps, logps.detach(), adv * 0, mask, ref_logps=ref, beta=1.0,
                                  loss_agg="dapo", kl_importance_weight=weighted)
        out[weighted] = (loss.item(), metrics["kl"], torch.autograd.grad(loss, logps)[0])
    assert out[True][:2] == pytest.approx(out[False][:2], rel=1e-12)
    lr = ref - logps.detach()
    k3 = torch.where(mask, lr.exp() - 1 - lr, 0.0)  # (B, T)
    torch.testing.assert_close(out[True][2] - out[False][2], k3 / mask.sum(), rtol=1e-10,
                               atol=1e-14)


# ---------------------------------------------------------------- zero gradient (C8) --------

def test_uniform_groups_give_exactly_zero_policy_gradient():
    G = 8
    rewards = torch.tensor([1.0] * G + [0.0] * G + [0.1] * G + [1.0, 0.0, 0.0, 1.0] * 2)
    adv = group_advantages(rewards, G).to(DT)  # (B,)
    B, T = len(rewards), 5
    g = torch.Generator().manual_seed(0)
    logps = (-torch.rand(B, T, generator=g, dtype=DT)).requires_grad_(True)
    old = logps.detach() + 0.3 * torch.randn(B, T, generator=g, dtype=DT)  # ratios != 1
    mask = torch.ones(B, T, dtype=torch.bool)
    for agg in ("grpo", "dapo", "dr_grpo"):
        (grad,) = torch.autograd.grad(grpo_loss(logps, old, adv, mask, loss_agg=agg)[0], logps)
        assert (grad[: 3 * G] == 0).all(), "uniform groups must give exactly zero gradient"
        assert (grad[3 * G:].abs().sum(1) > 0).all(), "a mixed group must give a gradient"


def test_uniform_groups_with_kl_keep_only_the_kl_gradient():
    G, beta = 4, 0.05
    rewards = torch.tensor([1.0] * G + [0.0] * G)
    adv = group_advantages(rewards, G).to(DT)
    logps, old, ref, _, mask = random_batch(B=2 * G, T=6, seed=5)
    logps = logps.clone().requires_grad_(True)
    for agg in ("grpo", "dapo", "dr_grpo"):
        loss, _ = grpo_loss(logps, old, adv, mask, ref_logps=ref, beta=beta, loss_agg=agg)
        (grad,) = torch.autograd.grad(loss, logps)
        # the KL term alone, written out: beta * aggregate(k3)
        logratio = ref - logps
        k3 = torch.where(mask, logratio.exp() - 1 - logratio, 0.0)
        n = mask.sum(1).to(DT)
        kl_only = {"grpo": (k3.sum(1) / n).mean(), "dapo": k3.sum() / mask.sum(),
                   "dr_grpo": k3.sum() / mask.numel()}[agg] * beta
        (grad_kl,) = torch.autograd.grad(kl_only, logps)
        torch.testing.assert_close(grad, grad_kl, rtol=1e-12, atol=1e-15)
        assert grad_kl.abs().sum() > 0


# ---------------------------------------------------------------- metrics and errors --------

def test_kl_metric_is_mean_k3_over_completion_tokens():
    logps, old, ref, adv, mask = random_batch(seed=7)
    _, metrics = grpo_loss(logps, old, adv, mask, ref_logps=ref)
    lr = (ref - logps)[mask]
    assert metrics["kl"] == pytest.approx((lr.exp() - 1 - lr).mean().item())
    _, metrics = grpo_loss(logps, old, adv, mask)
    assert "kl" not in metrics


def test_masked_positions_do_not_matter():
    logps, old, ref, adv, mask = random_batch(seed=9)
    loss, _ = grpo_loss(logps, old, adv, mask, ref_logps=ref, beta=0.1)
    junk = torch.where(mask, 0.0, -40.0)  # large finite values off-mask
    loss2, _ = grpo_loss(logps + junk, old - junk, adv, mask, ref_logps=ref + junk, beta=0.1)
    assert loss.item() == pytest.approx(loss2.item(), rel=1e-12)


def _ok():
    logps, old, ref, adv, mask = random_batch(B=4, T=3)
    return dict(logps=logps, old_logps=old, advantages=adv, mask=mask, ref_logps=ref)


@pytest.mark.parametrize("change, match", [
    (dict(old_logps=torch.zeros(4, 2)), "old_logps"),
    (dict(ref_logps=torch.zeros(3, 3)), "ref_logps"),
    (dict(logps=torch.zeros(4)), "logps must be 2-D"),
    (dict(advantages=torch.zeros(4, 1)), "advantages"),
    (dict(mask=torch.ones(4, 3)), "torch.bool"),
    (dict(mask=torch.ones(4, 2, dtype=torch.bool)), "mask"),
    (dict(mask=torch.zeros(4, 3, dtype=torch.bool)), "mask selects no"),
    (dict(logps=torch.full((4, 3), float("nan"))), "NaN"),
    (dict(old_logps=torch.full((4, 3), float("-inf"))), "NaN or inf"),
    (dict(advantages=torch.tensor([0.0, float("nan"), 0.0, 0.0])), "advantages"),
    (dict(loss_agg="mean"), "loss_agg"),
    (dict(kl_estimator="k4"), "kl_estimator"),
    (dict(clip_eps=0.0), "clip_eps"),
    (dict(clip_eps=1.0), "clip_eps"),
    (dict(clip_eps_high=0.0), "clip_eps_high"),
    (dict(beta=-0.1), "beta"),
    (dict(beta=0.1, ref_logps=None), "ref_logps"),
    (dict(loss_agg="dr_grpo", max_tokens=0), "max_tokens"),
    (dict(surrogate="ppo"), "surrogate"),
    (dict(importance_sampling_level="seq"), "importance_sampling_level"),
    (dict(kl_importance_weight="yes"), "kl_importance_weight"),
    (dict(surrogate="cispo"), "eps_max"),
    (dict(surrogate="cispo", clip_eps_high=0.28), "eps_max"),
    (dict(surrogate="cispo", clip_eps=5.0, clip_eps_high=5.0), "clip_eps"),
])
def test_loss_errors(change, match):
    kwargs = {**_ok(), **change}
    with pytest.raises((ValueError, TypeError), match=match):
        grpo_loss(**kwargs)


@pytest.mark.parametrize("args, kwargs, match", [
    ((torch.zeros(8), 1), {}, "group_size"),
    ((torch.zeros(8), 2.0), {}, "group_size"),
    ((torch.zeros(7), 2), {}, "multiple"),
    ((torch.zeros(2, 4), 3), {}, "disagree"),
    ((torch.zeros(0), 2), {}, "rewards is empty"),
    ((torch.tensor([0.0, float("nan")]), 2), {}, "NaN"),
    ((torch.zeros(4), 2), {"scale": "std"}, "scale"),
    ((torch.zeros(4), 2), {"eps": -1e-4}, "eps"),
])
def test_advantage_errors(args, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        group_advantages(*args, **kwargs)


@pytest.mark.parametrize("p, G", [(-0.1, 4), (1.5, 4), (0.5, 1), (torch.tensor([0.5, 1.2]), 4),
                                  (torch.tensor([float("nan")]), 2)])
def test_prob_uniform_group_errors(p, G):
    with pytest.raises(ValueError):
        prob_uniform_group(p, G)


def test_frac_reward_zero_std_errors():
    with pytest.raises(ValueError, match="multiple"):
        frac_reward_zero_std(torch.zeros(5), 2)
