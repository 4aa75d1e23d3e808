"""The Bradley-Terry reward model: loss, reading the reward at EOS, learning, determinism."""
import math

import pytest
import torch

from refimpl.core.preferences import PreferencePairs, build_pairs
from refimpl.methods.reward_model import (RewardModel, RMConfig, bradley_terry_loss,
                                          train_reward_model)


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x > 0 else x - math.log1p(math.exp(x))


@pytest.fixture(scope="module")
def small_pairs(cpu_base):
    return build_pairs(cpu_base.model, cpu_base.tokenizer, cpu_base.task,
                       cpu_base.train_problems(48, seed=21), 8, 2, seed=21)


def _random_head_rm(base, seed=0):
    rm = RewardModel(base.reference())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rm.head.weight.copy_(torch.randn(rm.head.weight.shape, generator=gen))
        rm.head.bias.fill_(0.3)
    return rm.eval()


def test_bradley_terry_loss_closed_form():
    r_w = torch.tensor([2.0, -1.0, 0.5, 0.0], dtype=torch.float64)
    r_l = torch.tensor([1.0, 1.0, 0.5, -30.0], dtype=torch.float64)
    losses, m = bradley_terry_loss(r_w, r_l)
    expected = [-_log_sigmoid(w - l) for w, l in zip(r_w.tolist(), r_l.tolist())]
    assert losses.tolist() == pytest.approx(expected, rel=1e-12)
    assert losses[2].item() == pytest.approx(math.log(2))             # a tie costs log 2
    assert m["rewards/accuracies"] == 0.5
    assert m["rewards/margins"] == pytest.approx((1 - 2 + 0 + 30) / 4)


def test_reward_is_read_at_eos_and_ignores_padding(cpu_base, small_pairs):
    rm = _random_head_rm(cpu_base)
    p = small_pairs[:8]
    with torch.no_grad():
        r = rm(p.prompt_ids, p.prompt_mask, p.chosen_ids, p.chosen_mask)           # (8,)
        # Slow reference: each pair alone, without any padding, head on the last position.
        for i in range(len(p)):
            seq = torch.cat([p.prompt_ids[i][p.prompt_mask[i]], p.chosen_ids[i][p.chosen_mask[i]]])
            assert seq[-1].item() == cpu_base.tokenizer.eos_id
            h = rm.body.hidden(seq[None])[0, -1]                                      # (C,)
            assert r[i].item() == pytest.approx(rm.head(h).item(), abs=1e-4)
        # Junk after EOS (masked out) changes nothing; a token before EOS does.
        ids = p.chosen_ids.clone()
        ids[~p.chosen_mask] = 5
        torch.testing.assert_close(rm(p.prompt_ids, p.prompt_mask, ids, p.chosen_mask), r)
        ids = p.chosen_ids.clone()
        ids[:, 0] = (ids[:, 0] - 3 + 1) % 10 + 3                                    # another digit
        assert not torch.allclose(rm(p.prompt_ids, p.prompt_mask, ids, p.chosen_mask), r)


def test_loss_on_a_hand_built_case(cpu_base, small_pairs):
    rm = _random_head_rm(cpu_base, seed=1)
    p = small_pairs[:6]
    with torch.no_grad():
        r_w, r_l = rm.pair_rewards(p)                                                # (6,) each
        losses, m = bradley_terry_loss(r_w, r_l)
        one = lambda q, y: rm.score(cpu_base.tokenizer, [q], [y]).item()   # noqa: E731
        singles = [(one(q, w), one(q, l))
                   for q, w, l in zip(p.problems, p.chosen_texts, p.rejected_texts)]
    expected = [-_log_sigmoid(w - l) for w, l in singles]
    assert losses.tolist() == pytest.approx(expected, abs=1e-4)
    # A fresh model has a zero head: every reward is 0 and every pair costs exactly log 2.
    fresh = RewardModel(cpu_base.reference())
    with torch.no_grad():
        losses0, _ = bradley_terry_loss(*fresh.pair_rewards(p))
    assert torch.allclose(losses0, torch.full_like(losses0, math.log(2)))


def test_reward_fn_matches_batch_scores(cpu_base, small_pairs):
    rm = _random_head_rm(cpu_base, seed=2)
    fn = rm.as_reward_fn(cpu_base.tokenizer)
    probs, texts = small_pairs.problems[:5], small_pairs.rejected_texts[:5]
    batch = fn.score(probs, texts)                                                    # (5,)
    singles = [fn(p, t) for p, t in zip(probs, texts)]
    assert all(isinstance(s, float) for s in singles)
    assert singles == pytest.approx(batch.tolist(), abs=1e-4)
    assert fn(probs[0], texts[0]) == singles[0]                                       # cached
    with pytest.raises(ValueError):
        fn.score(probs, texts[:2])


def _rule_pairs(base, problems):
    """chosen: the correct demonstration; rejected: the same text with the answer's last digit
    changed (same length, wrong sum). Learnable: the answer's last digit must equal the last
    digit of the first column sum, written at the start of the working."""
    tok, task = base.tokenizer, base.task
    good = [task.target(p) for p in problems]
    bad = [g[:-1] + str((int(g[-1]) + 1 + i % 9) % 10) for i, g in enumerate(good)]
    p_ids, p_mask = tok.encode_prompts([p.prompt for p in problems])
    ids, mask = tok.encode_completions(good + bad)
    n = len(problems)
    return PreferencePairs(list(problems), p_ids, p_mask, ids[:n], mask[:n], ids[n:], mask[n:],
                           good, bad, torch.zeros(n, dtype=torch.bool))


def test_reward_model_learns_and_generalises(cpu_base):
    train = _rule_pairs(cpu_base, cpu_base.train_problems(512, seed=0))
    heldout = _rule_pairs(cpu_base, cpu_base.heldout(256, seed=0))
    assert all(cpu_base.task.verify(p, w) == 1.0 and cpu_base.task.verify(p, l) == 0.0
               for p, w, l in zip(heldout.problems, heldout.chosen_texts, heldout.rejected_texts))
    cfg = RMConfig(steps=60, eval_every=60, seed=0)
    res = train_reward_model(cpu_base, cfg, pairs=train, heldout_pairs=heldout, progress=False)
    rm, history = res.model, res.history
    first, last = history[0], history[-1]
    assert [r["pairs"] for r in history] == [min(32, len(train)) * s for s in range(61)]
    assert all(r["samples"] == 0 for r in history)         # hand-built pairs: no generation counted
    assert first["heldout_pairwise_acc"] == 0.0            # a zero head ties every pair
    assert last["loss"] < math.log(2)
    # Held-out prompts never seen in training: chance is 1/2 with sd 0.5 / sqrt(256) = 0.031;
    # require more than 4 sd above it.
    assert last["heldout_pairwise_acc"] > 0.5 + 4 * 0.5 / math.sqrt(len(heldout)), last
    assert not any(p.requires_grad for p in rm.parameters())


def test_same_seed_same_numbers(cpu_base, small_pairs):
    def run(seed):
        cfg = RMConfig(steps=3, eval_every=3, seed=seed)
        h = train_reward_model(cpu_base, cfg, pairs=small_pairs, heldout_pairs=small_pairs,
                               progress=False).history
        return [(r.get("loss"), r["heldout_pairwise_acc"] if "heldout_pairwise_acc" in r else None)
                for r in h]

    a, b, c = run(0), run(0), run(1)
    assert a == b and a != c


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(batch_size=0), dict(steps=-1),
                                 dict(eval_every=0), dict(group_size=1), dict(n_prompts=0)])
def test_bad_config_raises(cpu_base, small_pairs, bad):
    with pytest.raises(ValueError):
        train_reward_model(cpu_base, RMConfig(**bad), pairs=small_pairs,
                           heldout_pairs=small_pairs, progress=False)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="shape"):
        bradley_terry_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        bradley_terry_loss(torch.tensor([float("nan")]), torch.zeros(1))
