"""solutions/logprobs.py with a bug: per-token log-probs (B, T) are returned, not summed to (B,)."""
import torch


def sequence_logprobs_from_logits(logits, completion_ids, completion_mask):
    logps = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    token_logps = logps.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return torch.where(completion_mask, token_logps, torch.zeros_like(token_logps))  # (B, T) BUG: no sum
