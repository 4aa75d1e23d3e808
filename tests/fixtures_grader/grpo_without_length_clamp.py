"""solutions/grpo.py's grpo_clipped_loss without the clamp of the completion lengths: a
completion with no tokens (its mask row all False) gives 0 / 0, and the loss is NaN."""
import torch


def grpo_clipped_loss(logps, old_logps, advantages, mask, clip_eps=0.2, loss_agg="grpo"):
    if loss_agg not in ("grpo", "dapo"):
        raise ValueError(f"unknown loss_agg {loss_agg!r}")
    ratio = torch.exp(logps - old_logps.detach())  # (B, T)
    A = advantages.detach()[:, None]  # (B, 1)
    per_token = -torch.min(ratio * A, torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * A)  # (B, T)
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    if loss_agg == "grpo":
        return (masked.sum(dim=1) / mask.sum(dim=1)).mean()  # FLAW: no .clamp(min=1) on the lengths
    return masked.sum() / mask.sum()
