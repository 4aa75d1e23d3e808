"""A dpo_loss that returns zeros of the right shape: detached "rewards", the right dtype and
untouched inputs, but none of the values. It must score 0 (tests/test_grader_scoring.py)."""
import torch


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    zeros = torch.zeros_like(policy_chosen_logps)  # (B,)
    return zeros, zeros.clone(), zeros.clone()
