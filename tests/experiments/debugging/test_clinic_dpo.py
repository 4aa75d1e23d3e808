"""Run-clinic cases of DPO (refimpl.experiments.debugging.clinic_dpo) and of the reward
(refimpl.experiments.debugging.clinic_rewards): the helpers that build the broken data and the dashboards
do what they say, and the predicates reject dashboards without the symptom. (tests/experiments/debugging/test_clinic.py
runs every case broken and fixed.)"""
import math

import pytest
import torch

from refimpl.experiments.debugging import clinic_dpo, clinic_rewards
from refimpl.methods.dpo_trainer import DPOConfig, dpo_update

CASES = clinic_dpo.CASES + clinic_rewards.CASES


def test_names_are_unique_across_both_modules():
    assert len({c.name for c in CASES}) == len(CASES)


def test_bad_variant_is_named():
    with pytest.raises(ValueError, match="variant"):
        clinic_dpo.run_displacement("repaired", 0)


# --- helpers of clinic_dpo -------------------------------------------------------------------

def test_truncate_pairs_keeps_the_room_left_after_the_prompt(cpu_base):
    pairs = clinic_dpo.arena_pairs(0)[:8]
    original = pairs.chosen_mask.clone()
    P = int(pairs.prompt_mask.sum(1)[0])                     # 9: BOS + "abc+def="
    cut = clinic_dpo.truncate_pairs(pairs, P + 3)
    assert (cut.chosen_mask.sum(1) == torch.clamp(pairs.chosen_mask.sum(1), max=3)).all()
    assert (cut.rejected_mask.sum(1) == torch.clamp(pairs.rejected_mask.sum(1), max=3)).all()
    assert (cut.chosen_mask <= pairs.chosen_mask).all()     # only ever removes tokens
    assert not clinic_dpo.truncate_pairs(pairs, P - 1).chosen_mask.any()
    assert torch.equal(clinic_dpo.truncate_pairs(pairs, 1000).chosen_mask, pairs.chosen_mask)
    assert torch.equal(pairs.chosen_mask, original)         # the input is left as it was
    with pytest.raises(ValueError, match="max_length"):
        clinic_dpo.truncate_pairs(pairs, 0)


def test_dpo_update_on_fully_masked_pairs_is_ln2_with_zero_gradient(cpu_base):
    pairs = clinic_dpo.truncate_pairs(clinic_dpo.arena_pairs(0)[:8], 8)
    policy = cpu_base.policy()
    before = [p.detach().clone() for p in policy.parameters()]
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=0.0)
    zero = torch.zeros(len(pairs))
    m = dpo_update(policy, opt, pairs, zero, zero, DPOConfig(nll_coef=1.0))
    assert m["loss"] == pytest.approx(math.log(2), abs=1e-6) and m["nll"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters()))


def test_early_late_means_the_ends_of_a_curve():
    assert clinic_dpo.early_late([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.5, 5.5)
    assert clinic_dpo.early_late([1.0, 2.0], 1 / 4) == (1.0, 2.0)
    with pytest.raises(ValueError):
        clinic_dpo.early_late([float("nan"), 2.0, 3.0])


def _dpo_dash(chosen, margins, logps, loss):
    return {"step": list(range(len(loss))), "rewards/chosen": chosen,
            "rewards/margins": margins, "logps/chosen": logps, "loss": loss}


def test_dpo_predicates_need_every_part_of_the_symptom():
    n = 12
    flat = [0.0] * n
    rising = [i / 20 for i in range(n)]
    falling = [-i / 20 for i in range(n)]
    logps_down = [-3.0 - i / 5 for i in range(n)]
    displaced = _dpo_dash(falling, rising, logps_down, [0.6] * n)
    assert clinic_dpo.shows_displacement(displaced)
    assert not clinic_dpo.shows_displacement({**displaced, "rewards/chosen": flat})
    assert not clinic_dpo.shows_displacement({**displaced, "rewards/margins": flat})
    assert not clinic_dpo.shows_displacement({**displaced, "logps/chosen": logps_down[::-1]})
    stuck = _dpo_dash(flat, flat, logps_down, [math.log(2)] * n)
    assert clinic_dpo.shows_stuck(stuck)
    assert not clinic_dpo.shows_stuck({**stuck, "loss": [math.log(2)] * (n - 1) + [0.6]})
    assert not clinic_dpo.shows_stuck({**stuck, "rewards/margins": rising})


# --- helpers of clinic_rewards ---------------------------------------------------------------

def test_graded_reward_trains_on_one_grader_and_records_the_others(cpu_base):
    task = cpu_base.task
    p = task.problems("train", 1, seed=3)[0]
    right = task.target(p)
    empty = right.split("|")[0] + "|"
    fn, scores = clinic_rewards.graded_reward(task, "prefix")
    assert [fn(p, right), fn(p, empty), fn(p, "junk")] == [1.0, 1.0, 0.0]
    assert scores == {"outcome": [1.0, 0.0, 0.0], "prefix": [1.0, 1.0, 0.0]}
    assert fn.__name__ == "prefix_reward"
    assert clinic_rewards.metric_name("prefix") == "rewards/prefix_reward/mean"


def test_per_step_averages_consecutive_chunks():
    assert clinic_rewards.per_step([1.0, 0.0, 1.0, 1.0], 2) == [0.5, 1.0]
    for values, n in (([1.0, 0.0, 1.0], 2), ([], 2), ([1.0], 0)):
        with pytest.raises(ValueError, match="multiple"):
            clinic_rewards.per_step(values, n)


def test_coin_flip_reward_ignores_the_answer_and_repeats_per_seed(cpu_base):
    p = cpu_base.task.problems("train", 1, seed=0)[0]
    a, b = clinic_rewards.coin_flip_reward(5), clinic_rewards.coin_flip_reward(5)
    draws = [a(p, cpu_base.task.target(p)) for _ in range(400)]
    assert draws == [b(p, "junk") for _ in range(400)]        # the text plays no part
    assert set(draws) == {0.0, 1.0} and 0.4 < sum(draws) / len(draws) < 0.6
    assert draws != [clinic_rewards.coin_flip_reward(6)(p, "") for _ in range(400)]


def test_reward_predicates_need_every_part_of_the_symptom():
    n = 8
    out, pre = clinic_rewards.metric_name("outcome"), clinic_rewards.metric_name("prefix")
    climbing = [i / n for i in range(n)]
    gamed = {"step": list(range(n)), "reward": climbing, pre: climbing, out: [0.02] * n}
    assert clinic_rewards.shows_gamed(gamed)
    assert not clinic_rewards.shows_gamed({**gamed, out: climbing})      # honest reward
    assert not clinic_rewards.shows_gamed({**gamed, "reward": [0.9] * n})  # never climbed
    flat = {"step": [0, 4, 8], "control/heldout_acc": [0.4, 0.4, 0.41]}
    assert clinic_rewards.shows_no_control(flat)
    assert not clinic_rewards.shows_no_control({**flat, "control/heldout_acc": [0.4, 0.3, 0.2]})
