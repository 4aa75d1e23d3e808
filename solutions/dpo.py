"""Exercise: the DPO loss and the weight of its gradient.

Rafailov et al. 2023, "Direct Preference Optimization", eq. 7. Notebook 01 derives the loss
from the KL-regularised RLHF objective; here you write it. Check your work with
``python -m grader --only dpo_loss`` (and ``dpo_gradient_weight``, ``dpo_gradient_autograd``).
"""
import torch
import torch.nn.functional as F


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO loss and the implicit rewards of both completions.

    For a prompt x with a chosen completion y_w and a rejected one y_l, the implicit reward
    of a completion is

        r(y) = beta * (log pi_theta(y | x) - log pi_ref(y | x))

    and the DPO loss of the pair is the Bradley-Terry negative log-likelihood

        loss = -log sigmoid(r(y_w) - r(y_l)).

    Compute it with ``torch.nn.functional.logsigmoid``: ``torch.log(torch.sigmoid(z))``
    returns -inf once z is very negative (a pair the policy orders badly by a wide margin),
    while ``logsigmoid`` stays exact.

    Args:
        policy_chosen_logps: (B,) log pi_theta(y_w | x), the sum of the completion's token
            log-probs under the policy being trained.
        policy_rejected_logps: (B,) log pi_theta(y_l | x).
        ref_chosen_logps: (B,) log pi_ref(y_w | x) under the frozen reference policy.
        ref_rejected_logps: (B,) log pi_ref(y_l | x).
        beta: KL strength (> 0); it scales the implicit reward.

    Returns:
        losses: (B,) one loss per pair, differentiable w.r.t. the policy log-probs.
        chosen_rewards: (B,) r(y_w), detached (for logging).
        rejected_rewards: (B,) r(y_l), detached.

    Example: with all four log-probs equal, every loss is log 2 and both rewards are 0.
    """
    # BEGIN SOLUTION
    chosen_logratio = policy_chosen_logps - ref_chosen_logps        # (B,)
    rejected_logratio = policy_rejected_logps - ref_rejected_logps  # (B,)
    losses = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio))  # (B,)
    chosen_rewards = (beta * chosen_logratio).detach()              # (B,)
    rejected_rewards = (beta * rejected_logratio).detach()          # (B,)
    return losses, chosen_rewards, rejected_rewards
    # END SOLUTION


def dpo_gradient_weight(chosen_rewards: torch.Tensor,
                        rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Per-pair weight of the DPO gradient: sigmoid(r_l - r_w).

    Differentiating the loss gives d loss / d log pi_theta(y_w) = -beta * w and
    d loss / d log pi_theta(y_l) = +beta * w with w = sigmoid(r(y_l) - r(y_w)): the
    probability that the implicit reward orders the pair the wrong way round (article
    exercise 1; see solutions/exercise1_dpo_gradient.md).

    Args:
        chosen_rewards: (B,) implicit rewards r(y_w).
        rejected_rewards: (B,) implicit rewards r(y_l).

    Returns:
        (B,) weights in (0, 1): 1/2 for a tie, near 1 when y_l is scored far above y_w,
        near 0 when y_w already wins by a wide margin.
    """
    # BEGIN SOLUTION
    return torch.sigmoid(rejected_rewards - chosen_rewards)  # (B,)
    # END SOLUTION
