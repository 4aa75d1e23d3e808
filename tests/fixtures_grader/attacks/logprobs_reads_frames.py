"""Attack: read the expected value from the checker's stack frames and return it."""
import sys

import torch


def sequence_logprobs_from_logits(logits, completion_ids, completion_mask):
    frame = sys._getframe(1)
    while frame is not None:
        for name in ("expected", "want", "reference"):
            if name in frame.f_locals:
                return frame.f_locals[name]
        frame = frame.f_back
    return torch.zeros(logits.shape[0])
