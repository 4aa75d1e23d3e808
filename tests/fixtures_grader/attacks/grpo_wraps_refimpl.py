"""Attack: wrap refimpl's own implementation of the graded functions."""
from refimpl.methods.grpo import group_advantages as _adv
from refimpl.methods.grpo import grpo_loss as _loss
from refimpl.methods.kl import kl_estimate


def group_advantages(rewards, group_size, eps=1e-4):
    return _adv(rewards, group_size, eps=eps)


def grpo_clipped_loss(logps, old_logps, advantages, mask, clip_eps=0.2, loss_agg="grpo"):
    return _loss(logps, old_logps, advantages, mask, clip_eps=clip_eps, loss_agg=loss_agg)[0]


def kl_k3(logps, ref_logps):
    return kl_estimate(logps, ref_logps, "k3")
