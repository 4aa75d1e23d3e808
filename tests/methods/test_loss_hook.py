"""The GRPO trainer's hook for a learner's own surrogate (``policy_loss`` of train_grpo).

The reference solution of exercises/grpo.py plugged in must give the same training as
refimpl's own loss (the KL term stays refimpl's), and a broken surrogate must change it.
"""
import torch

from refimpl.core.sft import load_base
from refimpl.methods.grpo_trainer import GRPOConfig, collect_batch, grpo_update
from solutions.grpo import grpo_clipped_loss


def parity_reward(problem, text):
    return float(len(text) % 2)


def run(policy_loss):
    tiny = load_base("tiny", progress=False)
    cfg = GRPOConfig(steps=1, prompts_per_step=4, group_size=4, eval_every=0, train_pool=64,
                     inner_updates=2)
    torch.manual_seed(0)
    policy, ref = tiny.policy(), tiny.reference()
    pool = tiny.train_problems(16)
    batch, _ = collect_batch(policy, tiny, cfg, lambda n: pool[:n], parity_reward,
                             torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    inner = grpo_update(policy, ref, opt, batch, cfg, policy_loss=policy_loss)
    return inner, [p.detach().clone() for p in policy.parameters()]


def test_reference_solution_trains_like_refimpl():
    (ref_inner, ref_params), (own_inner, own_params) = run(None), run(grpo_clipped_loss)
    for a, b in zip(ref_inner, own_inner):
        assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["kl"] - b["kl"]) < 1e-6
    assert all(torch.allclose(p, q, atol=1e-5) for p, q in zip(ref_params, own_params))


def test_a_wrong_surrogate_changes_training():
    def sign_flipped(logps, old_logps, advantages, mask, clip_eps, loss_agg):
        return -grpo_clipped_loss(logps, old_logps, advantages, mask, clip_eps, loss_agg)
    (_, ref_params), (_, bad_params) = run(None), run(sign_flipped)
    assert not all(torch.allclose(p, q, atol=1e-5) for p, q in zip(ref_params, bad_params))
