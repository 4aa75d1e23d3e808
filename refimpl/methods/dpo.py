"""The DPO loss as a pure function of sequence log-probabilities.

Rafailov et al. 2023, "Direct Preference Optimization: Your Language Model is Secretly a
Reward Model". The KL-regularised optimum pi* = pi_ref exp(r/beta) / Z (their eq. 4) can be
solved for the reward, r(x, y) = beta log pi*(y|x)/pi_ref(y|x) + beta log Z(x) (eq. 5). Put
into the Bradley-Terry likelihood, the beta log Z(x) term is the same for both completions
of a pair and cancels, which leaves a loss on the policy alone (eq. 7):

    L_DPO = -log sigmoid(r_w - r_l),   r = beta * (log pi_theta(y|x) - log pi_ref(y|x))

where y_w is the chosen (preferred) completion, y_l the rejected one, and r the *implicit
reward* (eq. 5 without the log Z term). Notebook 01 derives each step.

Variants, named as in TRL:

* ``label_smoothing = eps`` gives conservative DPO (cDPO; E. Mitchell 2023, "A note on DPO
  with noisy preferences and relationship to IPO", eq. 3): each label is taken to be flipped
  with probability eps, so the target of the Bradley-Terry likelihood is 1 - eps instead
  of 1:  L = -(1 - eps) log sigmoid(z) - eps log sigmoid(-z),  z = r_w - r_l.
* ``loss_type = "ipo"``: Identity Preference Optimisation (Azar et al. 2023, "A General
  Theoretical Paradigm to Understand Learning from Human Preferences", eq. 17). It regresses
  the log-ratio margin h = (log pi_w - log ref_w) - (log pi_l - log ref_l) onto 1/(2 beta),
  L = (h - 1/(2 beta))^2, so the margin stays finite even when a label is never contradicted
  (beta plays the role of the paper's tau).

The gradient (article exercise 1, notebook 01): with z = r_w - r_l,
d L / d log pi(y_w) = -beta sigmoid(-z) = -beta sigmoid(r_l - r_w) and
d L / d log pi(y_l) = +beta sigmoid(r_l - r_w): the chosen completion is pushed up, the
rejected one down, each by beta times the probability the implicit reward puts on the
wrong ordering.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from refimpl.core import checks

LOSS_TYPES = ("sigmoid", "ipo")


def _validate(logps: dict[str, torch.Tensor], beta: float, loss_type: str,
              label_smoothing: float, log_probs: bool = True) -> None:
    """Raise TypeError or ValueError naming the first bad argument; ``log_probs=False`` checks
    the tensors as finite (B,) reals only, without the sign of a log-probability."""
    checks.positive("beta", beta, "it is the strength of the KL penalty (typical values "
                    "0.01-0.5)")
    checks.one_of("loss_type", loss_type, LOSS_TYPES)
    checks.interval("label_smoothing", label_smoothing, 0.0, 0.5, "[)",
                    "it is the assumed probability that a preference label is flipped")
    if loss_type == "ipo" and label_smoothing != 0.0:
        raise ValueError("label_smoothing applies to loss_type='sigmoid' (cDPO) only; "
                         "set it to 0 for loss_type='ipo'")
    for name, t in logps.items():
        if log_probs:
            checks.logprobs(name, t, dims=(1,))
        else:
            checks.finite(name, checks.tensor(name, t, dims=(1,)))
    checks.same_shape(**logps)


def implicit_reward(policy_logps: torch.Tensor, ref_logps: torch.Tensor,
                    beta: float) -> torch.Tensor:
    """DPO's implicit reward beta * (log pi_theta(y|x) - log pi_ref(y|x)), shape (B,).

    It equals the reward of the KL-regularised problem whose optimum is pi_theta, up to the
    per-prompt constant beta log Z(x) (Rafailov et al. 2023, eq. 5). Both log-prob tensors
    have one shape (any; -inf, a zero probability, is allowed); beta > 0.
    """
    checks.positive("beta", beta, "it is the strength of the KL penalty")
    checks.logprobs("policy_logps", policy_logps, allow_zero_prob=True)
    checks.logprobs("ref_logps", ref_logps, allow_zero_prob=True)
    checks.same_shape(policy_logps=policy_logps, ref_logps=ref_logps)
    return _implicit_reward(policy_logps, ref_logps, beta)  # (B,)


def _implicit_reward(policy_logps, ref_logps, beta):
    return beta * (policy_logps - ref_logps)  # (B,)


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1, loss_type: str = "sigmoid", label_smoothing: float = 0.0,
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-pair DPO loss (Rafailov et al. 2023, eq. 7) and TRL-named metrics.

    Args:
        policy_chosen_logps: (B,) log pi_theta(y_w | x), summed over completion tokens.
        policy_rejected_logps: (B,) log pi_theta(y_l | x).
        ref_chosen_logps: (B,) log pi_ref(y_w | x) (no gradient needed).
        ref_rejected_logps: (B,) log pi_ref(y_l | x).
        beta: KL strength, > 0. Small beta lets the policy move far from the reference.
        loss_type: "sigmoid" (DPO / cDPO) or "ipo" (Azar et al. 2023, eq. 17).
        label_smoothing: eps in [0, 0.5), cDPO's assumed label-flip rate (sigmoid only).

    Returns:
        losses: (B,) one loss per pair; take ``.mean()`` for the batch loss.
        metrics: batch means as python floats: ``rewards/chosen``, ``rewards/rejected``
            (implicit rewards beta * log-ratio), ``rewards/margins`` (chosen - rejected),
            ``rewards/accuracies`` (share of pairs with chosen reward > rejected),
            ``logps/chosen``, ``logps/rejected`` (policy log-probs). The per-pair implicit
            rewards themselves come from :func:`implicit_reward`.

    Raises:
        ValueError: beta <= 0, unknown loss_type, label_smoothing outside [0, 0.5),
            tensors of different or non-(B,) shapes, NaN or +/-inf log-probs.
    """
    _validate({"policy_chosen_logps": policy_chosen_logps,
               "policy_rejected_logps": policy_rejected_logps,
               "ref_chosen_logps": ref_chosen_logps,
               "ref_rejected_logps": ref_rejected_logps}, beta, loss_type, label_smoothing)
    chosen_logratio = policy_chosen_logps - ref_chosen_logps        # (B,)
    rejected_logratio = policy_rejected_logps - ref_rejected_logps  # (B,)
    h = chosen_logratio - rejected_logratio                         # (B,) log-ratio margin
    if loss_type == "sigmoid":
        logits = beta * h                                           # (B,) r_w - r_l
        losses = (-(1.0 - label_smoothing) * F.logsigmoid(logits)
                  - label_smoothing * F.logsigmoid(-logits))        # (B,)
    else:  # "ipo"
        losses = (h - 1.0 / (2.0 * beta)) ** 2                      # (B,)

    with torch.no_grad():
        chosen_rewards = implicit_reward(policy_chosen_logps, ref_chosen_logps, beta)        # (B,)
        rejected_rewards = implicit_reward(policy_rejected_logps, ref_rejected_logps, beta)  # (B,)
        metrics = {
            "rewards/chosen": chosen_rewards.mean().item(),
            "rewards/rejected": rejected_rewards.mean().item(),
            "rewards/margins": (chosen_rewards - rejected_rewards).mean().item(),
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float().mean().item(),
            "logps/chosen": policy_chosen_logps.mean().item(),
            "logps/rejected": policy_rejected_logps.mean().item(),
        }
    return losses, metrics


def dpo_gradient_weight(chosen_rewards: torch.Tensor,
                        rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Per-pair weight sigmoid(r_l - r_w) of the DPO gradient, shape (B,).

    It is the probability the current implicit reward assigns to the *wrong* ordering:
    close to 1 when the rejected completion is scored far above the chosen one, 1/2 at a
    tie, close to 0 once the pair is ordered correctly by a wide margin.

    Args:
        chosen_rewards: (B,) implicit rewards r_w = beta * log pi(y_w)/pi_ref(y_w).
        rejected_rewards: (B,) implicit rewards r_l.
    """
    for name, t in (("chosen_rewards", chosen_rewards), ("rejected_rewards", rejected_rewards)):
        checks.finite(name, checks.tensor(name, t))
    checks.same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    return torch.sigmoid(rejected_rewards - chosen_rewards)  # (B,)


def dpo_loss_grad(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                  ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
                  beta: float = 0.1, label_smoothing: float = 0.0,
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form gradient of each pair's sigmoid (c)DPO loss w.r.t. the policy log-probs.

    With z = r_w - r_l and eps = label_smoothing,
    dL/dlog pi(y_w) = beta * (-(1 - eps) sigmoid(-z) + eps sigmoid(z)) and
    dL/dlog pi(y_l) = -dL/dlog pi(y_w). For eps = 0 these are -beta sigmoid(r_l - r_w) and
    +beta sigmoid(r_l - r_w). Chain them with grad log pi(y) to get the parameter gradient.
    The formula holds at any real inputs, so they are checked finite and of one (B,) shape,
    not for the sign of a log-probability.

    Returns:
        grad_chosen: (B,) d losses[i] / d policy_chosen_logps[i].
        grad_rejected: (B,) d losses[i] / d policy_rejected_logps[i].
    """
    _validate({"policy_chosen_logps": policy_chosen_logps,
               "policy_rejected_logps": policy_rejected_logps,
               "ref_chosen_logps": ref_chosen_logps,
               "ref_rejected_logps": ref_rejected_logps}, beta, "sigmoid", label_smoothing,
              log_probs=False)
    chosen_rewards = _implicit_reward(policy_chosen_logps, ref_chosen_logps, beta)        # (B,)
    rejected_rewards = _implicit_reward(policy_rejected_logps, ref_rejected_logps, beta)  # (B,)
    wrong = dpo_gradient_weight(chosen_rewards, rejected_rewards)   # (B,) sigmoid(r_l - r_w)
    right = dpo_gradient_weight(rejected_rewards, chosen_rewards)   # (B,) sigmoid(r_w - r_l)
    grad_chosen = beta * (label_smoothing * right - (1.0 - label_smoothing) * wrong)  # (B,)
    return grad_chosen, -grad_chosen
