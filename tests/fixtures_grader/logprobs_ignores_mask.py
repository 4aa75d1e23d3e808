"""solutions/logprobs.py with a bug: the completion mask is ignored (padding counts)."""
import torch


def sequence_logprobs_from_logits(logits, completion_ids, completion_mask):
    logps = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    token_logps = logps.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return token_logps.sum(dim=-1)  # (B,)  BUG: masked positions are summed too
