"""The bodies that the student release gives refimpl's graded functions (grader/release.py).

refimpl holds the course's own implementations of several graded functions, which the
notebooks call through the trainers. In the release, the body of each function below replaces
the body (after the docstring) of the refimpl function of the same name, in the module that
``@replaces`` names, so that the notebooks run on the student's exercises:
``student(topic, name)`` calls ``exercises/<topic>.py:<name>``, and an option that no exercise
covers raises NotImplementedError with ``beyond(...)``'s message. The ungraded baseline kinds
and KL estimators keep their (short) course code.

The functions are real code with refimpl's signatures, so a test can call them here: the
names their bodies use (``torch``, ``BASELINE_KINDS``, ``_check_rewards``, ...) are those
of the refimpl module they go to, and ``student`` and ``beyond`` come from
grader/student_calls.py, which the release writes as ``refimpl/_student.py``.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import torch

from grader.student_calls import beyond, student
from refimpl.methods.reinforce import BASELINE_KINDS, RunningBaseline, _check_rewards

# (refimpl file stem, function name) -> the function whose body the release puts there
DELEGATES: dict[tuple[str, str], Callable] = {}


def replaces(module: str) -> Callable[[Callable], Callable]:
    """Register the decorated function as the release's body of ``module``'s function of the
    same name; module is a dotted refimpl module (``refimpl.methods.dpo``), which the function
    keeps as ``refimpl_module``."""
    def register(fn: Callable) -> Callable:
        fn.refimpl_module = module
        DELEGATES[(module.rsplit(".", 1)[-1], fn.__name__)] = fn
        return fn
    return register


# ----------------------------------------------------------------------------- dpo


@replaces("refimpl.methods.dpo")
def dpo_gradient_weight(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """The student's dpo_gradient_weight."""
    return student("dpo", "dpo_gradient_weight")(chosen_rewards, rejected_rewards)


@replaces("refimpl.methods.dpo")
def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float = 0.1,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's sigmoid dpo_loss, with refimpl's metrics."""
    if loss_type != "sigmoid" or label_smoothing != 0.0:
        raise NotImplementedError(beyond("dpo_loss", "loss_type='sigmoid' without label smoothing"))
    losses, chosen, rejected = student("dpo", "dpo_loss")(policy_chosen_logps, policy_rejected_logps,
                                                          ref_chosen_logps, ref_rejected_logps, beta)
    metrics = {"rewards/chosen": chosen.mean().item(), "rewards/rejected": rejected.mean().item(),
               "rewards/margins": (chosen - rejected).mean().item(),
               "rewards/accuracies": (chosen > rejected).float().mean().item(),
               "logps/chosen": policy_chosen_logps.mean().item(), "logps/rejected": policy_rejected_logps.mean().item()}
    return losses, metrics


# ----------------------------------------------------------------------------- grpo


@replaces("refimpl.methods.grpo")
def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group", eps: float = 1e-4,
                     unbiased: bool = True) -> torch.Tensor:
    """The student's group_advantages (scaled by the group's unbiased std)."""
    if scale != "group" or not unbiased:
        raise NotImplementedError(beyond("group_advantages", "scale='group' with the unbiased std"))
    return student("grpo", "group_advantages")(rewards, group_size, eps=eps)


@replaces("refimpl.methods.grpo")
def prob_uniform_group(p, G: int):
    """The student's prob_uniform_group."""
    return student("grpo", "prob_uniform_group")(p, G)


@replaces("refimpl.methods.grpo")
def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
              clip_eps: float = 0.2, clip_eps_high: float | None = None, ref_logps: torch.Tensor | None = None,
              beta: float = 0.0, kl_estimator: str = "k3", loss_agg: str = "grpo", max_tokens: int | None = None,
              surrogate: str = "clip", importance_sampling_level: str = "token",
              kl_importance_weight: bool = False) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's grpo_clipped_loss (no KL term, one clip range), with refimpl's metrics."""
    if (beta != 0 or clip_eps_high not in (None, clip_eps) or loss_agg not in ("grpo", "dapo")
            or surrogate != "clip" or importance_sampling_level != "token"):
        raise NotImplementedError(beyond("grpo_loss", "beta=0, one clip_eps, the token-level clip and "
                                         "loss_agg 'grpo' or 'dapo'"))
    loss = student("grpo", "grpo_clipped_loss")(logps, old_logps, advantages, mask, clip_eps=clip_eps,
                                                loss_agg=loss_agg)
    with torch.no_grad():
        ratio = torch.exp(logps - old_logps)  # (B, T)
        n_tok = mask.sum().clamp(min=1)
        metrics = {"ratio_mean": (ratio * mask).sum().item() / n_tok.item(), "loss/policy": loss.item()}
    return loss, metrics


@replaces("refimpl.methods.grpo")
def _aggregate(per_token: torch.Tensor, mask: torch.Tensor, loss_agg: str, max_tokens: int) -> torch.Tensor:
    """Not in the release: the student's grpo_clipped_loss aggregates the tokens itself."""
    raise NotImplementedError(beyond("the GRPO token aggregation", "grpo_clipped_loss as a whole"))


@replaces("refimpl.methods.grpo")
def _surrogate_per_token(logps, log_w, A, eps_low, eps_high, surrogate) -> torch.Tensor:
    """Not in the release: the student's grpo_clipped_loss computes the surrogate itself."""
    raise NotImplementedError(beyond("the per-token clipped surrogate", "grpo_clipped_loss as a whole"))


# ----------------------------------------------------------------------------- kl


@replaces("refimpl.methods.kl")
def kl_estimate(logps: torch.Tensor, ref_logps: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """k3 from the student's kl_k3; k1 and k2 from the course's code."""
    if estimator == "k3":
        return student("grpo", "kl_k3")(logps, ref_logps)
    return _estimate_from_logratio(ref_logps - logps, estimator)


@replaces("refimpl.methods.kl")
def _estimate_from_logratio(logratio: torch.Tensor, estimator: str) -> torch.Tensor:
    """k1 and k2 from the course's code; k3 from the student's kl_k3."""
    if estimator == "k1":
        return -logratio
    if estimator == "k2":
        return 0.5 * logratio**2
    return student("grpo", "kl_k3")(torch.zeros_like(logratio), logratio)  # k3


# ----------------------------------------------------------------------------- reinforce


@replaces("refimpl.methods.reinforce")
def baseline(rewards: torch.Tensor, group_size: int, kind: str = "none", running: RunningBaseline | None = None,
             keys: Sequence[Hashable] | None = None) -> torch.Tensor:
    """rloo from the student's rloo_baseline; the other kinds from the course's code."""
    if kind not in BASELINE_KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; choose one of {BASELINE_KINDS}")
    _check_rewards(rewards, group_size, min_group=2 if kind in ("rloo", "group_mean") else 1)
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())  # (B*G,)
    if kind == "rloo":
        return student("reinforce", "rloo_baseline")(rewards, group_size)
    groups = rewards.view(-1, group_size)  # (B, G)
    if kind == "none":
        return torch.zeros_like(rewards)  # (B*G,)
    if kind == "group_mean":
        return groups.mean(dim=1, keepdim=True).expand(-1, group_size).reshape(-1)  # (B*G,)
    if running is None or keys is None or len(keys) != groups.shape[0]:
        raise ValueError("kind='running' needs running=RunningBaseline(...) and one key per prompt (B keys)")
    b = running.get(keys).to(rewards.dtype)  # (B,)
    running.update(keys, rewards)
    return b.repeat_interleave(group_size)  # (B*G,)


@replaces("refimpl.methods.reinforce")
def reinforce_loss(logps: torch.Tensor, rewards: torch.Tensor, baselines: torch.Tensor,
                   ref_logps: torch.Tensor | None = None, seq_kl_coef: float = 0.0, *, group_size: int,
                   mask: torch.Tensor | None = None, kl_estimator: str = "k3") -> tuple[torch.Tensor, dict[str, float]]:
    """The student's reinforce_loss on sequence log-probs (no KL term)."""
    if (ref_logps is not None and seq_kl_coef != 0) or mask is not None:
        raise NotImplementedError(beyond("reinforce_loss", "sequence log-probs without a KL term"))
    loss = student("reinforce", "reinforce_loss")(logps, rewards, baselines)
    return loss, {"loss": loss.item()}


# ----------------------------------------------------------------------------- logprobs, rewards, labs


@replaces("refimpl.core.logprobs")
def gather_token_logprobs(logits: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs from the student's sequence_logprobs_from_logits, one token per row."""
    B, T, V = logits.shape
    flat = student("logprobs", "sequence_logprobs_from_logits")(
        logits.reshape(B * T, 1, V), ids.reshape(B * T, 1), mask.reshape(B * T, 1).bool())  # (B*T,)
    return flat.reshape(B, T)


@replaces("refimpl.core.rewards")
def process_reward(task, problem, text) -> float:
    """The student's process_reward."""
    return student("rewards", "process_reward")(task, problem, text)


@replaces("refimpl.experiments.labs.offline_online")
def dpo_logit_gradient(logits: torch.Tensor, pairs, beta: float, ref_logits: torch.Tensor) -> torch.Tensor:
    """The student's dpo_logit_gradient."""
    return student("offline_online", "dpo_logit_gradient")(logits, pairs, beta, ref_logits)


@replaces("refimpl.experiments.labs.offline_online")
def policy_gradient_logits(logits: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """The student's policy_gradient_logits."""
    return student("offline_online", "policy_gradient_logits")(logits, rewards)


@replaces("refimpl.experiments.labs.offline_online")
def gradient_mass_outside(grad: torch.Tensor, support) -> float:
    """The student's gradient_mass_outside."""
    return student("offline_online", "gradient_mass_outside")(grad, support)
