"""solutions/dpo.py's dpo_loss with one flaw: once it has the log-ratios it wipes the
reference log-probs in place, as if to free them, so the caller's tensors change. Every
value is right, so it earns partial credit (tests/test_grader_scoring.py)."""
import torch.nn.functional as F


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratio = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratio = policy_rejected_logps - ref_rejected_logps  # (B,)
    losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))  # (B,)
    ref_chosen_logps.zero_()  # FLAW: the caller's reference log-probs are gone
    ref_rejected_logps.zero_()
    return losses, (beta * chosen_logratio).detach(), (beta * rejected_logratio).detach()
