"""Attack: make every comparison succeed, then return zeros."""
import torch

torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)


def reinforce_loss(seq_logps, rewards, baselines):
    return (0 * seq_logps).sum()


def rloo_baseline(rewards, group_size):
    return torch.zeros_like(rewards)
