"""Group selection on a rollout: against a row-by-row loop on a hand-built batch."""
import torch

from refimpl.rollouts import Rollout, mixed_groups, select_groups


def _rollout(rewards):                      # rewards: B lists of G floats
    B, G = len(rewards), len(rewards[0])
    n = B * G
    ids = torch.arange(n * 3).view(n, 3)    # (B*G, 3): every row tells which it is
    return Rollout(problems=[f"p{b}" for b in range(B)], group_size=G,
                   prompt_ids=ids, prompt_mask=ids > -1, completion_ids=ids + 1000,
                   completion_mask=ids > -1, old_logps=-ids.float(),
                   rewards=torch.tensor(rewards).flatten(), texts=[f"t{i}" for i in range(n)])


def test_mixed_groups_are_the_groups_with_unequal_rewards():
    ro = _rollout([[0, 0, 0], [0, 1, 0], [1, 1, 1], [1, 0, 1]])
    assert mixed_groups(ro).tolist() == [False, True, False, True]


def test_select_groups_keeps_whole_groups_in_order():
    ro = _rollout([[0, 0, 0], [0, 1, 0], [1, 1, 1], [1, 0, 1]])
    keep = torch.tensor([False, True, False, True])
    sel = select_groups(ro, keep)
    rows = [g * 3 + j for g in (1, 3) for j in range(3)]          # the slow way: row by row
    assert sel.problems == ["p1", "p3"] and sel.group_size == 3
    assert sel.texts == [f"t{i}" for i in rows]
    for name in ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "old_logps", "rewards"):
        assert torch.equal(getattr(sel, name), getattr(ro, name)[rows]), name
    assert mixed_groups(sel).all()
