"""The shared optimiser: fused AdamW takes the same steps as PyTorch's reference AdamW; the
evaluation schedule: explicit steps (``eval_at``) at the same shares of runs of other lengths."""
import pytest
import torch

from refimpl.core.training import adamw


def test_fused_adamw_matches_the_plain_loop():
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4)
    b = torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    w0 = a.weight.detach().clone()
    fused, plain = adamw(a.parameters(), 1e-2, 0.1), torch.optim.AdamW(
        b.parameters(), lr=1e-2, weight_decay=0.1, foreach=False)
    x = torch.randn(16, 8)
    for _ in range(5):
        for model, opt in ((a, fused), (b, plain)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    assert fused.defaults["fused"] and (a.weight - w0).abs().max() > 1e-3   # it did move


def test_eval_at_schedules_the_same_shares_of_a_run_of_another_length():
    from refimpl.core.training import eval_due, eval_steps_at
    online = [s / 10 for s in (0, 2, 4, 6, 8, 10)]           # 10 steps, every 2
    assert eval_steps_at(online, 10) == (0, 2, 4, 6, 8, 10)
    assert eval_steps_at(online, 8) == (0, 2, 3, 5, 6, 8)     # nearest steps, half up
    assert eval_steps_at((0, 0.5, 1), 8) == (0, 4, 8)
    assert eval_steps_at(online, 3) == (0, 1, 2, 3)           # repeats merged
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        eval_steps_at((0, 1.5), 8)
    cfg = type("C", (), {"eval_every": 4, "steps": 8, "eval_at": (0, 3, 5, 8)})
    assert [s for s in range(9) if eval_due(s, cfg)] == [0, 3, 5, 8]   # eval_at wins
    cfg.eval_at = ()
    assert [s for s in range(9) if eval_due(s, cfg)] == [0, 4, 8]


def test_dpo_config_checks_its_eval_steps():
    from refimpl.methods.dpo_trainer import DPOConfig
    DPOConfig(steps=8, eval_at=(0, 4, 8)).validate()
    with pytest.raises(ValueError, match="eval_at"):
        DPOConfig(steps=8, eval_at=(0, 9)).validate()
