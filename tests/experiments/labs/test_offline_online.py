"""Exercise 3 / claim C3: offline DPO leaves an uncovered failure mode alone, online RL does not.

The tabular checks are exact (closed forms against autograd, invariants to float precision);
the transformer helpers are checked against slow obvious references on the tiny base.
"""
import pytest
import torch
import torch.nn.functional as F

from refimpl.core.tasks import Problem, get_task
from refimpl.experiments.labs.offline_online import (MODES, classify, dpo_logit_gradient,
                                                gradient_mass_outside, policy_gradient_logits,
                                                sample_mode_counts, step_error_rates, tabular_run,
                                                two_step_run)


def _autograd_dpo(z, pairs, beta, zref):
    z = z.clone().requires_grad_(True)
    lp, lr = torch.log_softmax(z, 0), torch.log_softmax(zref, 0)
    loss = torch.stack([-F.logsigmoid(beta * ((lp[w] - lr[w]) - (lp[l] - lr[l]))) for w, l in pairs]).mean()
    return torch.autograd.grad(loss, z)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dpo_logit_gradient_matches_autograd_and_is_zero_outside(seed):
    gen = torch.Generator().manual_seed(seed)
    z, zref = torch.randn(7, generator=gen, dtype=torch.float64), torch.randn(7, generator=gen, dtype=torch.float64)
    pairs = [(0, 3), (2, 3), (0, 5)]
    g = dpo_logit_gradient(z, pairs, 0.4, zref)
    torch.testing.assert_close(g, _autograd_dpo(z, pairs, 0.4, zref), atol=1e-10, rtol=1e-8)
    assert gradient_mass_outside(g, {0, 2, 3, 5}) == 0.0          # exactly, not approximately
    assert gradient_mass_outside(g, set()) > 0


def test_policy_gradient_logits_matches_autograd_and_reaches_every_sampled_response():
    z = torch.randn(6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r = torch.tensor([1.0, 0, 0, 1, 0, 0], dtype=torch.float64)
    zz = z.clone().requires_grad_(True)
    expected = torch.autograd.grad(-(torch.softmax(zz, 0) * r).sum(), zz)[0]
    g = policy_gradient_logits(z, r)
    torch.testing.assert_close(g, expected, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(policy_gradient_logits(z, r - 0.37), g)   # baseline-invariant
    assert (g != 0).all()          # every response has pi > 0 and a reward off the mean


def test_bad_inputs_raise_value_error():
    z = torch.zeros(3)
    for args in [(z, [(0, 1)], 0.0, z), (z, [], 0.1, z), (z, [(1, 1)], 0.1, z), (z, [(0, 1)], 0.1, torch.zeros(2)),
                 (torch.tensor([0.0, float("nan"), 0.0]), [(0, 1)], 0.1, z)]:
        with pytest.raises(ValueError):
            dpo_logit_gradient(*args)
    with pytest.raises(ValueError, match="rewards"):
        policy_gradient_logits(z, torch.zeros(4))
    with pytest.raises(ValueError, match="method"):
        tabular_run(method="ppo")


def test_tabular_dpo_freezes_the_odds_outside_the_data():
    dpo, pg = tabular_run(method="dpo", steps=100), tabular_run(method="pg", steps=100)
    first = dpo[0]["logodds_b1_c2"]
    assert all(abs(r["logodds_b1_c2"] - first) < 1e-12 for r in dpo)   # b1 vs c2 never moves
    assert all(r["mass_outside"] == 0.0 for r in dpo)
    assert dpo[-1]["mode_a"] < 0.01                                     # the covered mode is fixed
    # DPO lowers mode B only through the normaliser: the unseen correct answer c2 dies with it.
    assert dpo[-1]["unseen_correct"] < dpo[0]["unseen_correct"] / 10
    assert pg[-1]["logodds_b1_c2"] < first - 1.0                       # online learns b1 < c2
    assert pg[-1]["mode_a"] < 0.01 and pg[-1]["mode_b"] < 0.01


def test_two_step_dpo_cannot_touch_the_uncovered_decision():
    dpo, pg = two_step_run("dpo", steps=150), two_step_run("pg", steps=150)
    assert all(abs(r["units_wrong"] - 0.3) < 1e-12 for r in dpo)       # exactly unchanged
    assert dpo[-1]["carry_wrong"] < 0.01                                # covered: fixed
    assert abs(dpo[-1]["correct"] - 0.7) < 0.01                         # capped by the units mode
    assert pg[-1]["units_wrong"] < 0.01 and pg[-1]["carry_wrong"] < 0.01


def test_classify_hand_built():
    task = get_task("add", digits=3)
    p = Problem(prompt="347+285=", answer=632, level=2, operands=(347, 285))
    assert task.target(p) == "12,13,06|632"
    assert classify(task, p, "12,13,06|632") == "correct"
    assert classify(task, p, "12,13,06|633") == "answer"
    assert classify(task, p, "11,13,06|531") == "units"
    assert classify(task, p, "12,14,06|642") == "carry"
    assert classify(task, p, "12,13") == "carry"                        # missing column


@pytest.fixture(scope="module")
def tiny_base():
    from refimpl.core.sft import load_base
    return load_base("tiny", progress=False)


def test_step_error_rates_match_a_slow_token_by_token_reference(tiny_base):
    b = tiny_base
    problems = b.heldout(5, seed=2)
    rates = step_error_rates(b.model, b.tokenizer, b.task, problems)
    assert set(rates) == set(MODES)
    # Reference: run the model on the growing prefix, one token at a time, no batching.
    n = b.task.digits
    spans = {"units": (0, 3), "carry": (3, 3 * n), "answer": (3 * n, None)}
    ref = {m: 0.0 for m in MODES}
    with torch.no_grad():
        for p in problems:
            ids = [b.tokenizer.bos_id] + b.tokenizer.encode(p.prompt)
            target = b.tokenizer.encode(b.task.target(p)) + [b.tokenizer.eos_id]
            probs = []
            for t in target:
                logits = b.model(torch.tensor([ids]))[0, -1]
                probs.append(torch.softmax(logits, -1)[t].item())
                ids.append(t)
            for m, (a, e) in spans.items():
                ref[m] += (1 - torch.tensor(probs[a:e]).prod().item()) / len(problems)
    for m in MODES:
        assert rates[m] == pytest.approx(ref[m], abs=1e-5)


def test_sample_mode_counts_are_shares_of_the_verdicts(tiny_base):
    b = tiny_base
    problems = b.heldout(6, seed=4)
    shares = sample_mode_counts(b.model, b.tokenizer, b.task, problems, n_samples=3, seed=0)
    assert set(shares) == {"correct", *MODES}
    assert sum(shares.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no problems"):
        step_error_rates(b.model, b.tokenizer, b.task, [])
