"""refimpl.methods.grpo_analysis against closed forms and slow references: the unbiased uniform-group
estimator, the expected advantage mass (Dr. GRPO's difficulty bias, C11), per-sample score
gradients (autograd, one sequence at a time) and the Gram-matrix gradient noise (explicit
resampled gradients)."""
import math

import pytest
import torch

from refimpl.methods import grpo_analysis as ga
from refimpl.core.logprobs import sequence_logprobs
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
