"""The shared optimiser: fused AdamW takes the same steps as PyTorch's reference AdamW."""
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
