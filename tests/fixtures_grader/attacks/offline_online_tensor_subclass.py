"""Attack: a tensor subclass whose __torch_function__ answers True to every comparison."""
import torch


class Yes(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.__eq__, torch.isclose):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def dpo_logit_gradient(logits, pairs, beta, ref_logits):
    return torch.zeros_like(logits).as_subclass(Yes)


def policy_gradient_logits(logits, rewards):
    return torch.zeros_like(logits).as_subclass(Yes)


class Float(float):
    def __eq__(self, other):
        return True

    def __sub__(self, other):
        return Float(0.0)


def gradient_mass_outside(grad, support):
    return Float(0.0)
