"""refimpl.methods.grpo_analysis against closed forms and slow references: the unbiased uniform-group
estimator, the expected advantage mass (Dr. GRPO's difficulty bias, C11), per-sample score
gradients (autograd, one sequence at a time) and the Gram-matrix gradient noise (explicit
resampled gradients)."""
import math

import pytest
import torch

from refimpl.methods import grpo_analysis as ga
from refimpl.core.logprobs import sequence_logprobs, token_logprobs
from refimpl.core.model import GPT, GPTConfig
from refimpl.methods.grpo import group_advantages, grpo_loss


def test_uniform_shares_are_exact_hypergeometric_counts():
    sh = ga.uniform_shares_from_counts(torch.tensor([4, 0, 2]), n=4, G=2)
    assert sh["all_correct"] == pytest.approx((1 + 0 + 1 / 6) / 3)      # C(c,2)/C(4,2)
    assert sh["all_wrong"] == pytest.approx((0 + 1 + 1 / 6) / 3)
    assert ga.uniform_share_from_counts(torch.tensor([4, 0, 2]), 4, 2) == pytest.approx(sh["uniform"])
    with pytest.raises(ValueError, match="n >= G"):
        ga.uniform_shares_from_counts(torch.tensor([1]), n=2, G=3)


@pytest.mark.parametrize("G", [2, 4, 8])
@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9])
def test_expected_advantage_mass_without_scaling_is_2_g_minus_1_p_q(G, p):
    # sum_i |r_i - mean| = 2 c (G - c) / G for c right of G, and E[c (G - c)] = G (G - 1) p (1 - p)
    assert ga.expected_abs_advantage(p, G, "none") == pytest.approx(2 * (G - 1) * p * (1 - p))


def test_std_scaling_up_weights_a_one_of_eight_group_1_51_times():
    one = torch.tensor([1.0] + [0.0] * 7)
    half = torch.tensor([1.0] * 4 + [0.0] * 4)
    mass = {s: [group_advantages(r, 8, scale=s).abs().sum().item() for r in (one, half)]
            for s in ("group", "none")}
    boost = (mass["group"][0] / mass["group"][1]) / (mass["none"][0] / mass["none"][1])
    assert boost == pytest.approx((half.std().item() + 1e-4) / (one.std().item() + 1e-4))
    assert round(boost, 2) == 1.51
    for p in (0.05, 0.2, 0.8):       # the notebook's relative weights, scaled vs not
        rel = {s: ga.expected_abs_advantage(p, 8, s) / ga.expected_abs_advantage(0.5, 8, s)
               for s in ("group", "none")}
        assert rel["group"] > rel["none"]


def test_sequence_score_grads_match_autograd_one_sequence_at_a_time():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8)).double()
    p_ids, c_ids = torch.randint(1, 11, (3, 4)), torch.randint(1, 11, (3, 5))
    p_mask = torch.ones(3, 4, dtype=torch.bool)
    c_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    S = ga.sequence_score_grads(model, p_ids, p_mask, c_ids, c_mask)         # (3, D)
    for i in range(3):
        model.zero_grad()
        sequence_logprobs(model, p_ids[i:i + 1], p_mask[i:i + 1], c_ids[i:i + 1],
                          c_mask[i:i + 1]).sum().backward()
        ref = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.allclose(S[i], ref, atol=1e-10)


def test_gradient_noise_matches_explicit_resampled_gradients():
    gen = torch.Generator().manual_seed(3)
    M, D, R = 12, 5, 200
    scores = torch.randn(M, D, generator=gen, dtype=torch.float64)
    rewards = torch.tensor([1, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 1], dtype=torch.float64)
    lengths = torch.tensor([3, 4, 5, 3, 4, 5, 3, 4, 5, 3, 4, 5], dtype=torch.float64)
    pools = [torch.arange(0, 4), torch.arange(4, 8), torch.arange(8, 12)]
    rows = ga.gradient_noise_vs_g(scores, rewards, lengths, pools, [2, 4], n_resamples=R,
                                  generator=torch.Generator().manual_seed(7))
    regen = torch.Generator().manual_seed(7)
    for row, G in zip(rows, [2, 4]):
        g = torch.zeros(R, D, dtype=torch.float64)
        for pool in pools:
            idx = pool[torch.randint(len(pool), (R, G), generator=regen)]       # (R, G)
            adv = group_advantages(rewards[idx].reshape(-1), G).view(R, G)
            g += ((-adv / (len(pools) * G * lengths[idx]))[..., None] * scores[idx]).sum(1)
        mean = g.mean(0)
        assert row["mean_norm"] == pytest.approx(mean.norm().item(), rel=1e-9)
        assert row["var"] == pytest.approx(((g - mean) ** 2).sum(1).mean().item(), rel=1e-9)
        assert row["rel_noise"] == pytest.approx(math.sqrt(row["var"]) / row["mean_norm"])


@pytest.mark.parametrize("loss_agg", ["grpo", "dapo", "dr_grpo"])
def test_sequence_weights_match_autograd_of_grpo_loss(loss_agg):
    """At ratio 1, beta = 0, the gradient of grpo_loss on every token of o_i is -A_i w_i."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([5, 14, 5, 9, 14, 1])
    N, T = len(lengths), 16
    mask = torch.arange(T)[None, :] < lengths[:, None]                    # (N, T)
    old = torch.where(mask, -torch.rand(N, T, generator=g, dtype=torch.float64), 0.0)
    logps = old.clone().requires_grad_(True)
    adv = torch.randn(N, generator=g, dtype=torch.float64)
    loss, _ = grpo_loss(logps, old, adv, mask, beta=0.0, loss_agg=loss_agg)
    loss.backward()
    w = ga.sequence_weights(mask, loss_agg)
    expected = torch.where(mask, -(adv * w)[:, None], 0.0)
    assert torch.allclose(logps.grad, expected, atol=1e-15, rtol=1e-12)


def test_sequence_weights_only_grpo_is_biased_by_length():
    mask = torch.arange(14)[None, :] < torch.tensor([5, 14])[:, None]
    w = {a: ga.sequence_weights(mask, a) for a in ("grpo", "dapo", "dr_grpo")}
    assert w["grpo"][0] / w["grpo"][1] == pytest.approx(14 / 5)
    assert w["dapo"][0] == w["dapo"][1] and w["dr_grpo"][0] == w["dr_grpo"][1]
    assert w["dr_grpo"][0] == pytest.approx(1 / (2 * 14))
    with pytest.raises(ValueError, match="loss_agg"):
        ga.sequence_weights(mask, "mean")


# ---------------------------------------------------------------- the clip (notebook 03a)

def test_worked_group_matches_the_clipped_surrogate_by_hand():
    rows, summary = ga.worked_group([1.0, 0.0, 0.0, 0.0], [1.3, 0.9, 0.7, 1.3], clip_eps=0.2)
    a_pos, a_neg = 0.75 / (0.5 + 1e-4), -0.25 / (0.5 + 1e-4)     # mean 0.25, unbiased std 0.5
    assert [r["A"] for r in rows] == pytest.approx([a_pos, a_neg, a_neg, a_neg], rel=1e-12)
    # 1: A > 0, rho above 1.2: capped at 1.2 A, no gradient; 2: inside the band;
    # 3: A < 0, rho below 0.8: capped at 0.8 A, no gradient; 4: A < 0, rho above 1.2: the
    # min keeps rho A (the pessimistic side), so the gradient flows and pulls rho back
    terms = [1.2 * a_pos, 0.9 * a_neg, 0.8 * a_neg, 1.3 * a_neg]
    assert [r["term"] for r in rows] == pytest.approx(terms, rel=1e-12)
    assert [r["flat"] for r in rows] == [True, False, True, False]
    # d loss / d log pi = -(1/G) rho A off the clip (d rho / d log rho = rho), 0 on it
    grads = [0.0, -0.9 * a_neg / 4, 0.0, -1.3 * a_neg / 4]
    assert [r["grad"] for r in rows] == pytest.approx(grads, rel=1e-12, abs=1e-15)
    assert summary["loss"] == pytest.approx(-sum(terms) / 4, rel=1e-12)
    assert summary["clip_ratio"] == 0.5


@pytest.mark.parametrize("A", [1.0, -0.5])
def test_surrogate_slope_is_a_off_the_clip_and_zero_on_it(A):
    eps = 0.2
    rho = torch.tensor([0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.9], dtype=torch.float64)
    objective, slope = ga.surrogate_and_slope(rho, A, eps)
    clipped = rho.clamp(1 - eps, 1 + eps)
    assert torch.allclose(objective, torch.minimum(rho * A, clipped * A))
    flat = (rho > 1 + eps) if A > 0 else (rho < 1 - eps)
    assert (slope[flat] == 0).all()
    assert torch.allclose(slope[~flat], torch.full_like(slope[~flat], A), rtol=1e-12)


def _shifted_batch(model, shifts):
    """A batch whose pi_old log-probs are the model's minus ``shifts`` (one per row), so that
    log rho = shift on every completion token of that row."""
    from types import SimpleNamespace
    g = torch.Generator().manual_seed(0)
    p_ids, c_ids = torch.randint(1, 11, (2, 3), generator=g), torch.randint(1, 11, (2, 4), generator=g)
    p_mask = torch.ones(2, 3, dtype=torch.bool)
    c_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    with torch.no_grad():
        new = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)                 # (2, 4)
    old = torch.where(c_mask, new - torch.tensor(shifts)[:, None], torch.zeros_like(new))
    return SimpleNamespace(prompt_ids=p_ids, prompt_mask=p_mask, completion_ids=c_ids,
                           completion_mask=c_mask, old_logps=old, group_size=1)


def test_kl_to_old_is_k3_of_the_log_ratio():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=16, n_layer=1, n_head=2, n_embd=8)).double()
    batch = _shifted_batch(model, [0.1, 0.3])           # rho = e^0.1 (inside 1 +- 0.2), e^0.3
    out = ga.kl_to_old(model, batch, band=0.2)
    k3 = lambda d: math.expm1(d) - d                     # noqa: E731
    assert out["kl_old"] == pytest.approx((4 * k3(0.1) + 2 * k3(0.3)) / 6, rel=1e-5)
    assert out["outside"] == pytest.approx(2 / 6)
    assert ga.kl_to_old(model, _shifted_batch(model, [0.0, 0.0]))["kl_old"] == pytest.approx(0, abs=1e-12)


def test_clip_experiment_on_policy_never_clips_and_larger_steps_move_further(cpu_base):
    common = dict(steps=2, prompts_per_step=4, group_size=8, eval_every=0, seed=0)
    arms = {"mu 1": ga.GRPOConfig(**common, inner_updates=1, lr=1e-4),
            "mu 4, no clip": ga.GRPOConfig(**common, inner_updates=4, lr=5e-4, **ga.NO_CLIP)}
    rows = ga.clip_experiment(cpu_base, arms, heldout=cpu_base.heldout(16))
    assert [r["arm"] for r in rows] == list(arms)
    assert rows[0]["clip_ratio"] == 0                   # ratio 1 at the only inner update
    assert rows[1]["clip_ratio"] == 0                   # no ratio reaches [0.001, 1e9]
    assert rows[1]["kl_old"] > rows[0]["kl_old"] > 0
    assert rows[1]["mu"] == 4 and 0 <= rows[1]["heldout_acc"] <= 1
    table = ga.clip_table(rows, start_acc=0.4).splitlines()
    assert len(table) == 2 + len(rows) and "no training" in table[1]


# ------------------------------------------------------------------ C11, the signal reading

@pytest.mark.parametrize("p, sigma", [(0.5, 0.1), (0.2, 0.05), (0.5, 0.3)])
def test_unscaled_signal_share_matches_its_closed_form(p, sigma):
    """Without scaling A = u + sigma (z - z_bar), so the share tends to
    p(1-p) / (p(1-p) + sigma^2) (both variances carry the same (G-1)/G)."""
    share = ga.advantage_signal_share(torch.tensor([p]), 8, sigma, scale="none",
                                      groups_per_prompt=40_000)
    assert share == pytest.approx(p * (1 - p) / (p * (1 - p) + sigma ** 2), abs=0.01)


def test_without_noise_the_share_is_one_and_uniform_groups_give_nothing():
    mixed = torch.tensor([0.0, 0.3, 0.5, 1.0])
    assert ga.advantage_signal_share(mixed, 8, 0.0, scale="none") == pytest.approx(1.0)
    # G = 2: every mixed group has the same std, so scaling is one common factor
    assert ga.advantage_signal_share(torch.tensor([0.5]), 2, 0.0) == pytest.approx(1.0)
    assert ga.advantage_signal_share(torch.tensor([0.0, 1.0]), 8, 0.1) == 0.0


def test_std_scaling_turns_a_uniform_groups_noise_into_unit_size_advantages():
    """A little noise halves the signal share of scaled advantages when half the groups are
    uniform, and leaves the unscaled share near 1."""
    rates = torch.tensor([0.0, 0.0, 0.5, 0.5])
    scaled = ga.advantage_signal_share(rates, 8, 0.01)
    unscaled = ga.advantage_signal_share(rates, 8, 0.01, scale="none")
    assert unscaled > 0.99 and scaled < 0.6


@pytest.mark.parametrize("kw, match", [(dict(pass_rates=torch.tensor([float("nan")])), "probabilities"),
                                       (dict(pass_rates=torch.tensor([1.2])), "probabilities"),
                                       (dict(sigma=-0.1), "sigma"), (dict(group_size=1), "group_size")])
def test_bad_signal_share_inputs_are_named(kw, match):
    args = dict(pass_rates=torch.tensor([0.5]), group_size=8, sigma=0.1)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        ga.advantage_signal_share(**args)
