"""Preference pairs from verifier-judged samples and the DPO trainer (claims C4, C5, C6)."""
import math

import pytest
import torch

from refimpl.core.evaluation import completions_for
from refimpl.core.preferences import build_pairs, comparison_counts, flip_labels, pairs_from_rollout
from refimpl.core.rollouts import Rollout
from refimpl.methods.dpo_trainer import DPOConfig, pair_logps, train_dpo


@pytest.fixture(scope="module")
def few(pairs):
    """64 pairs: enough for the mechanics tests, cheap to evaluate."""
    return pairs[:64]


@pytest.fixture(scope="module")
def pairs(cpu_base):
    # 256 training prompts x 8 base samples, up to 4 correct/wrong pairs per prompt.
    return build_pairs(cpu_base.model, cpu_base.tokenizer, cpu_base.task,
                       cpu_base.train_problems(256, seed=5), group_size=8, pairs_per_prompt=4,
                       seed=5)


# ----------------------------------------------------------------------------- pairs


def test_pairs_are_correct_vs_wrong_by_the_verifier(cpu_base, pairs):
    tok, task = cpu_base.tokenizer, cpu_base.task
    assert len(pairs) >= 50
    for i, p in enumerate(pairs.problems):
        assert task.verify(p, pairs.chosen_texts[i]) == 1.0
        assert task.verify(p, pairs.rejected_texts[i]) == 0.0
        # The tensors hold exactly the texts, after the pair's own prompt.
        assert tok.decode(pairs.chosen_ids[i]) == pairs.chosen_texts[i]
        assert tok.decode(pairs.rejected_ids[i]) == pairs.rejected_texts[i]
        assert tok.decode(pairs.prompt_ids[i]) == p.prompt
    # Masks cover the tokens up to EOS and nothing after it.
    for ids, mask in ((pairs.chosen_ids, pairs.chosen_mask),
                      (pairs.rejected_ids, pairs.rejected_mask)):
        assert torch.equal(mask, mask.cummin(1).values)                  # a prefix of each row
        assert not (ids[~mask] != cpu_base.tokenizer.pad_id).any()
    assert pairs.stats["pairs"] == len(pairs) == pairs.stats["dpo_comparisons"]
    assert pairs.stats["samples_generated"] == 256 * 8
    assert not pairs.flipped.any()


def test_same_seed_same_pairs(cpu_base):
    args = (cpu_base.model, cpu_base.tokenizer, cpu_base.task, cpu_base.train_problems(32, seed=2))
    a, b, c = build_pairs(*args, seed=3), build_pairs(*args, seed=3), build_pairs(*args, seed=4)
    assert torch.equal(a.chosen_ids, b.chosen_ids) and torch.equal(a.rejected_ids, b.rejected_ids)
    assert a.chosen_texts == b.chosen_texts
    assert (a.chosen_texts, a.rejected_texts) != (c.chosen_texts, c.rejected_texts)


def _hand_rollout(cpu_base, rewards):
    """A Rollout with the given (B, G) rewards; sample (b, g) has text 'b:g' coded in digits."""
    tok = cpu_base.tokenizer
    B, G = len(rewards), len(rewards[0])
    problems = cpu_base.train_problems(B, seed=9)
    texts = [f"{b}{g}|{b}{g}" for b in range(B) for g in range(G)]
    p_ids, p_mask = tok.encode_prompts([p.prompt for p in problems for _ in range(G)])
    c_ids, c_mask = tok.encode_completions(texts)
    r = torch.tensor(rewards, dtype=torch.float).flatten()
    return Rollout(problems, G, p_ids, p_mask, c_ids, c_mask, torch.zeros(c_ids.shape), r, texts)


def test_pairing_inside_groups_by_hand(cpu_base):
    rewards = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0], [1, 1, 0, 0]]
    ro = _hand_rollout(cpu_base, rewards)
    for ppp, expected in ((1, 3), (2, 5), (4, 5)):
        pairs = pairs_from_rollout(ro, cpu_base.tokenizer, pairs_per_prompt=ppp, seed=0)
        assert len(pairs) == expected                      # min(ppp, c, G - c) per group
        used = pairs.chosen_texts + pairs.rejected_texts
        assert len(used) == len(set(used))                 # a sample is used at most once
        for p, w, l in zip(pairs.problems, pairs.chosen_texts, pairs.rejected_texts):
            b, gw, gl = int(w[0]), int(w[1]), int(l[1])
            assert ro.problems[b] == p and int(l[0]) == b  # both from p's own group
            assert rewards[b][gw] == 1 and rewards[b][gl] == 0
    with pytest.raises(ValueError, match="no group"):
        pairs_from_rollout(_hand_rollout(cpu_base, [[0, 0], [1, 1]]), cpu_base.tokenizer)
    bad = _hand_rollout(cpu_base, [[1, 0]])
    bad.rewards = torch.tensor([0.7, 0.0])
    with pytest.raises(ValueError, match="binary"):
        pairs_from_rollout(bad, cpu_base.tokenizer)


def test_flip_rate_is_binomial(cpu_base, pairs):
    big = pairs[torch.arange(4000) % len(pairs)]
    eps, n = 0.3, len(big)
    noisy = flip_labels(big, eps, seed=1)
    k = int(noisy.flipped.sum())
    # k ~ Binomial(n, eps): mean 1200, sd 29; |k - mean| < 4 sd fails with prob. < 1e-4.
    assert abs(k - n * eps) < 4 * math.sqrt(n * eps * (1 - eps)), k
    f = noisy.flipped
    assert torch.equal(noisy.chosen_ids[f], big.rejected_ids[f])
    assert torch.equal(noisy.rejected_mask[f], big.chosen_mask[f])
    assert torch.equal(noisy.chosen_ids[~f], big.chosen_ids[~f])
    for i in f.nonzero().flatten()[:50].tolist():     # a flipped pair now prefers the wrong answer
        assert cpu_base.task.verify(noisy.problems[i], noisy.chosen_texts[i]) == 0.0
    assert not flip_labels(big, 0.0, seed=1).flipped.any()
    assert flip_labels(big, 1.0, seed=1).flipped.all()
    assert not flip_labels(noisy, eps, seed=1).flipped.any()          # same coins flip back
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="eps"):
            flip_labels(big, bad)


def test_comparison_counts_by_hand():
    rewards = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.float)
    c = comparison_counts(rewards, pairs_per_prompt=1)
    assert c["dpo_comparisons"] == 2                       # one pair from each mixed group
    assert c["dpo_samples_used"] == 4                      # two distinct samples per pair
    assert c["grpo_nonzero_advantages"] == 8               # every sample of the 2 mixed groups
    assert c["grpo_informative_comparisons"] == 2 * 2 + 3 * 1
    assert c["grpo_implicit_comparisons"] == 3 * 6
    assert c["frac_reward_zero_std"] == pytest.approx(1 / 3)
    assert c["dpo_comparisons_per_sample"] == pytest.approx(2 / 12)
    assert comparison_counts(rewards, pairs_per_prompt=2)["dpo_comparisons"] == 3


def test_group_advantage_is_a_sum_over_pairs():
    # sum_i (r_i - mean r) g_i == (1/G) sum_{i<j} (r_i - r_j)(g_i - g_j): the G(G-1)/2 comparisons.
    gen = torch.Generator().manual_seed(0)
    G, D = 6, 5
    r = torch.rand(G, generator=gen, dtype=torch.float64)
    g = torch.randn(G, D, generator=gen, dtype=torch.float64)
    lhs = ((r - r.mean())[:, None] * g).sum(0)
    rhs = sum((r[i] - r[j]) * (g[i] - g[j]) for i in range(G) for j in range(i + 1, G)) / G
    torch.testing.assert_close(lhs, rhs)


# ----------------------------------------------------------------------------- trainer


class _Counting(torch.nn.Module):
    """Wraps the frozen reference and counts its forward calls."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0
        self.config = model.config

    def forward(self, *args, **kw):
        self.calls += 1
        return self.model(*args, **kw)

    def new_cache(self):
        return self.model.new_cache()


def test_reference_logps_are_computed_once(cpu_base, few, monkeypatch):
    counters = []

    def reference():
        counters.append(_Counting(type(cpu_base).reference(cpu_base)))
        return counters[-1]

    monkeypatch.setattr(cpu_base, "reference", reference)
    for steps in (2, 7):
        cfg = DPOConfig(steps=steps, eval_every=100, eval_problems=8, batch_size=16)
        res = train_dpo(cpu_base, cfg, pairs=few, progress=False)
        # One chunk of pairs (< 512): one prompt pass, one chosen+rejected pass, whatever steps.
        assert counters[-1].calls == 2
        # At step 0 the policy is the reference: every implicit reward is exactly zero.
        assert res.history[0]["pairs/rewards/margins"] == pytest.approx(0.0, abs=1e-6)
        assert [r["pairs"] for r in res.history] == [16 * s for s in range(steps + 1)]
        # samples: the completions generated to build the pairs, all before step 0
        generated = few.stats["samples_generated"]
        assert generated > 0 and [r["samples"] for r in res.history] == [generated] * (steps + 1)


def test_first_step_loss_closed_form(cpu_base, few):
    # Before the first update pi_theta = pi_ref, so each pair's DPO loss is -log sigmoid(0) =
    # log 2 (also with label smoothing), IPO's is (0 - 1/(2 beta))^2, plus nll_coef * NLL.
    for kw, dpo0 in ((dict(), math.log(2)), (dict(label_smoothing=0.3), math.log(2)),
                     (dict(loss_type="ipo", beta=0.1), 25.0)):
        cfg = DPOConfig(steps=1, eval_every=100, eval_problems=8, nll_coef=0.5, **kw)
        row = train_dpo(cpu_base, cfg, pairs=few, progress=False).history[1]
        assert row["loss"] == pytest.approx(dpo0 + 0.5 * row["nll"], rel=1e-5)
        assert row["nll"] > 0


def test_same_seed_same_numbers(cpu_base, few):
    def run(seed):
        cfg = DPOConfig(steps=3, eval_every=3, eval_problems=16, seed=seed, nll_coef=1.0)
        return [(r.get("loss"), r.get("heldout_acc"), r.get("pairs/rewards/margins")) for r in
                train_dpo(cpu_base, cfg, pairs=few, progress=False).history]

    a, b, c = run(0), run(0), run(1)
    assert a == b
    assert a != c                                          # the seed orders the batches


@pytest.mark.parametrize("bad", [dict(beta=0.0), dict(beta=-1.0), dict(lr=0.0),
                                 dict(label_smoothing=0.5), dict(loss_type="hinge"),
                                 dict(nll_coef=-1.0), dict(batch_size=0), dict(steps=-1),
                                 dict(eval_every=0), dict(group_size=1)])
def test_bad_config_raises(cpu_base, few, bad):
    with pytest.raises(ValueError):
        train_dpo(cpu_base, DPOConfig(**bad), pairs=few, progress=False)


def test_bad_data_raises(cpu_base):
    args = (cpu_base.model, cpu_base.tokenizer, cpu_base.task, cpu_base.train_problems(4))
    with pytest.raises(ValueError, match="group_size"):
        build_pairs(*args, group_size=1)
    with pytest.raises(ValueError, match="temperature"):
        build_pairs(*args, temperature=0.0)


def _correct(policy, base, problems):
    texts = completions_for(policy, base.tokenizer, base.task, problems)
    return [base.task.verify(p, t) == 1.0 for p, t in zip(problems, texts)]


def test_stable_dpo_raises_heldout_accuracy(cpu_base, pairs):
    # DPO + NLL on the chosen answers (RPO), a fixed seed and a small budget.
    cfg = DPOConfig(lr=1e-4, nll_coef=1.0, batch_size=16, steps=30, eval_every=100,
                    eval_problems=8, seed=0)
    res = train_dpo(cpu_base, cfg, pairs=pairs, progress=False)
    problems = cpu_base.heldout(400, seed=11)
    before = _correct(cpu_base.model, cpu_base, problems)
    after = _correct(res.model, cpu_base, problems)
    gained = sum(a and not b for a, b in zip(after, before))
    lost = sum(b and not a for a, b in zip(after, before))
    # Paired sign test on the same 400 problems: under "no change" gained - lost has mean 0 and
    # sd sqrt(gained + lost); require more than 3 sd (one-sided p < 0.002).
    assert gained - lost > 3 * math.sqrt(gained + lost), (gained, lost)


def test_pure_dpo_lowers_the_chosen_logprob(cpu_base, pairs):
    # Likelihood displacement (C4): the margin grows, yet log pi(y_w) ends below where it began,
    # so the chosen answers' implicit reward beta * log pi/pi_ref is negative too.
    cfg = DPOConfig(lr=3e-5, batch_size=16, steps=60, eval_every=60, eval_problems=8, seed=0)
    h = train_dpo(cpu_base, cfg, pairs=pairs, progress=False).history
    first, last = h[0], h[-1]
    assert last["pairs/rewards/margins"] > 0.05
    assert last["pairs/logps/chosen"] < first["pairs/logps/chosen"]
    assert last["pairs/rewards/rejected"] < last["pairs/rewards/chosen"] < 0


def test_where_mass_goes_is_consistent(cpu_base, pairs):
    from refimpl.methods.dpo_analysis import where_mass_goes
    m = where_mass_goes(cpu_base.model, pairs)
    assert m["p_chosen"] + m["p_rejected"] + m["p_other"] == pytest.approx(1.0, abs=1e-6)
    assert min(m["p_chosen"], m["p_rejected"], m["p_other"]) >= 0
    # The three segments add up to the sequence log-probs; the prefix is shared by both.
    with torch.no_grad():
        lp_c, lp_r = pair_logps(cpu_base.model, pairs)
    assert m["chosen_prefix"] + m["chosen_diverge"] + m["chosen_suffix"] == pytest.approx(
        lp_c.sum(-1).mean().item(), abs=1e-4)
    assert m["rejected_prefix"] + m["rejected_diverge"] + m["rejected_suffix"] == pytest.approx(
        lp_r.sum(-1).mean().item(), abs=1e-4)
    assert m["chosen_prefix"] == pytest.approx(m["rejected_prefix"], abs=1e-5)
