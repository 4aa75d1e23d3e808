"""Group selection on a rollout: against a row-by-row loop on a hand-built batch."""
import torch

from refimpl.core.rollouts import Rollout, completion_stats, mixed_groups, select_groups


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


def test_completion_stats_are_the_masked_means():
    ro = _rollout([[0, 1], [1, 1]])                            # 4 rows x 3 tokens
    ro.completion_mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]]).bool()
    stats = completion_stats(ro)
    lengths, kept = [3, 1, 2, 3], [-v for row, m in zip(ro.old_logps.tolist(), ro.completion_mask.tolist())
                                   for v, k in zip(row, m) if k]
    assert stats["completions/mean_length"] == sum(lengths) / 4
    assert abs(stats["entropy"] - sum(kept) / len(kept)) < 1e-6        # float32


def test_entropy_estimate_matches_the_exact_entropy_of_the_sampler():
    """-log pi of sampled tokens averages to the exact entropy: a tiny model, many samples."""
    from refimpl.core.model import GPT, GPTConfig
    from refimpl.core.sampling import generate

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8)).eval()
    prompt = torch.ones(1, 2, dtype=torch.long)                              # (1, P)
    out = generate(model, prompt, torch.ones(1, 2, dtype=torch.bool), 1, eos_id=0, pad_id=4,
                   generator=torch.Generator().manual_seed(1), num_samples=20000)
    probs = torch.softmax(model(prompt)[0, -1], -1)                          # (V,) first token
    exact = -(probs * probs.log()).sum().item()
    estimate = -out.logps[:, 0].mean().item()                                # (N,) first tokens
    se = out.logps[:, 0].std().item() / 20000 ** 0.5
    assert abs(estimate - exact) < 4 * se
