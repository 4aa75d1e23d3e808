"""GRPO: group-relative advantages and the clipped token-level surrogate loss.

Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath, eq. 3) samples G
completions o_1..o_G per prompt q from pi_old, scores them (r_1..r_G) and sets every token of
o_i to the same advantage

    A_i = (r_i - mean(r)) / (std(r) + eps)                                   (group baseline)

The loss to minimise is the negated clipped surrogate plus a KL penalty to a frozen reference:

    L = - agg_{i,t} [ min(rho_it * A_i, clip(rho_it, 1 - eps_low, 1 + eps_high) * A_i)
                      - beta * KL_it ],
    rho_it = pi_theta(o_it | q, o_i<t) / pi_old(o_it | q, o_i<t)          (importance ratio)

with KL_it a per-token estimator (refimpl.methods.kl; k3 in DeepSeekMath eq. 4) and agg one of three
ways to average over tokens, which differ in how completion length weights the gradient:

- "grpo" (DeepSeekMath): mean over each sequence's |o_i| tokens, then mean over the B
  sequences. A token of o_i has weight 1 / (B |o_i|), so long completions get a smaller
  push per token: a long wrong answer is penalised less per token than a short one, and a
  short correct answer is rewarded more per token than a long one. Wrong answers drift longer.
- "dapo" (Yu et al. 2025, DAPO, "token-level policy gradient loss"): sum over all tokens of
  the batch divided by the total token count. Every token has the same weight, so no length
  bias inside a batch, but the weight 1 / (total tokens) still changes from batch to batch.
- "dr_grpo" (Liu et al. 2025, "Understanding R1-Zero-like training", Dr. GRPO): sum over
  tokens divided by the constant B * max_tokens. Each token's weight is fixed, so the loss is
  an unbiased (rescaled) sum over tokens with no length bias. Dr. GRPO also drops the std
  division (group_advantages(..., scale="none")), which otherwise up-weights prompts whose
  group rewards barely vary (too easy or too hard: the "difficulty bias").

DAPO's "clip-higher" uses eps_high > eps_low (e.g. 0.28 vs 0.2) so that unlikely tokens with a
positive advantage can grow more before clipping stops them. DAPO's dynamic sampling drops
groups whose rewards are all equal: they have A = 0 and give no policy gradient
(see prob_uniform_group and frac_reward_zero_std).

Two variants change the importance weight w that multiplies A_i (both in TRL 1.16):

- GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071, sec. 4;
  importance_sampling_level="sequence", TRL's importance_sampling_level="sequence"): one
  length-normalised ratio per completion,

      s_i = (pi_theta(o_i | q) / pi_old(o_i | q)) ** (1 / |o_i|)
          = exp( (1 / |o_i|) sum_t [log pi_theta(o_it | .) - log pi_old(o_it | .)] ),
      L = - agg_{i,t} min(s_i * A_i, clip(s_i, 1 - eps_low, 1 + eps_high) * A_i),

  so a whole completion is clipped or kept, and one noisy token ratio cannot dominate the
  gradient of its sequence (the paper's fix for long responses and MoE routing noise). The
  paper's eps are far smaller (3e-4, 4e-4, its sec. 5.1) since s_i is a geometric mean. With "grpo"
  aggregation every sequence counts once; "dapo" and "dr_grpo" weight it by |o_i| (TRL warns).
  The paper's GSPO-token, s_it = sg[s_i] * pi_theta(o_it) / sg[pi_theta(o_it)], has the same
  value and the same gradient as GSPO when each completion has one advantage (the paper's
  eqs. 11 and 18), as here, so it
  is not a separate option (TRL 1.16 has no such level either).
- CISPO (MiniMax 2025, MiniMax-M1, arXiv:2506.13585, sec. 3.1; surrogate="cispo", TRL's
  loss_type="cispo"): REINFORCE with a clipped, detached importance weight,

      L = - agg_{i,t} sg[min(w_it, eps_max)] * A_i * log pi_theta(o_it | q, o_i<t),

  with eps_max = clip_eps_high (TRL's epsilon_high; 5.0 is the value ScaleRL, arXiv:2510.13786,
  and TRL recommend; like TRL, no lower bound).
  Its gradient is -min(w, eps_max) * A_i * grad log pi_theta on *every* token: clipping caps
  the weight instead of dropping the token's gradient, so the rare tokens that PPO's clip
  silences (large ratio, e.g. "However", "Recheck" in reflective reasoning) keep learning.
  TRL aggregates it like "dapo" (token mean over the batch).

With kl_importance_weight=True the KL term is multiplied by the live ratio w (TRL 1.16's
default use_bias_correction_kl; refimpl.methods.kl.importance_weighted_kl).

Metric names follow TRL's GRPOTrainer: clip_ratio, clip_ratio/low_mean, clip_ratio/high_mean,
kl, frac_reward_zero_std.
"""

from __future__ import annotations

import torch

from refimpl.core import checks
from refimpl.methods.kl import ESTIMATORS, importance_weighted_kl, kl_estimate

SCALES = ("group", "none", "batch")
LOSS_AGGS = ("grpo", "dapo", "dr_grpo")
SURROGATES = ("clip", "cispo")
IS_LEVELS = ("token", "sequence")


def _grouped_rewards(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Validate rewards and return them as a float (B, G) view."""
    checks.count("group_size", group_size, 2, "a group needs two samples to compare")
    rewards = checks.tensor("rewards", rewards, dims=(1, 2), floating=False)
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())
    if rewards.dim() == 2 and rewards.shape[1] != group_size:
        raise ValueError(
            f"rewards of shape (B, G) = {tuple(rewards.shape)} disagree with group_size={group_size}"
        )
    if rewards.numel() % group_size != 0:
        raise ValueError(
            f"{rewards.numel()} rewards are not a multiple of group_size={group_size}: "
            "pass G rewards per prompt, grouped contiguously"
        )
    checks.finite("rewards", rewards, hint="fix the reward function")
    return rewards.reshape(-1, group_size)  # (B, G)


def group_advantages(
    rewards: torch.Tensor,
    group_size: int,
    scale: str = "group",
    eps: float = 1e-4,
    unbiased: bool = True,
) -> torch.Tensor:
    """Group-relative advantages A_i = (r_i - group mean) / (std + eps) (DeepSeekMath, sec. 4.1.2).

    Args:
        rewards: (B*G,) rewards with each prompt's G samples contiguous, or (B, G).
        group_size: G, samples per prompt (>= 2).
        scale: "group" divides by each group's std (GRPO, TRL's default); "none" only
            subtracts the group mean (Dr. GRPO); "batch" divides by the std of all B*G
            rewards (TRL's scale_rewards="batch").
        eps: added to the std before dividing (TRL: 1e-4).
        unbiased: use the unbiased std (correction=1), as TRL, verl and CS336 do.

    Returns:
        (B*G,) advantages. They sum to zero within each group. A group whose rewards are all
        equal gets advantages exactly 0 (set explicitly, because the float mean of equal
        numbers can differ from them in the last bit).
    """
    checks.one_of("scale", scale, SCALES)
    checks.positive("eps", eps, "it is added to the std before dividing", allow_zero=True)
    grouped = _grouped_rewards(rewards, group_size)  # (B, G)
    correction = 1 if unbiased else 0
    mean = grouped.mean(dim=1, keepdim=True)  # (B, 1)
    uniform = (grouped == grouped[:, :1]).all(dim=1, keepdim=True)  # (B, 1)
    centred = torch.where(uniform, torch.zeros_like(grouped), grouped - mean)  # (B, G)
    if scale == "none":
        return centred.reshape(-1)  # (B*G,)
    if scale == "group":
        std = grouped.std(dim=1, keepdim=True, correction=correction)  # (B, 1)
    else:
        std = grouped.std(correction=correction)  # ()
    denom = std + eps  # (B, 1) or ()
    advantages = torch.where(centred == 0, torch.zeros_like(centred), centred / denom)  # (B, G)
    return advantages.reshape(-1)  # (B*G,)


def frac_reward_zero_std(rewards: torch.Tensor, group_size: int) -> float:
    """Fraction of groups whose G rewards are all equal (zero std, hence zero advantage).

    Args:
        rewards: (B*G,) or (B, G) rewards, grouped as in group_advantages.
        group_size: G.

    Returns:
        float in [0, 1]; TRL logs it as frac_reward_zero_std.
    """
    grouped = _grouped_rewards(rewards, group_size)  # (B, G)
    uniform = (grouped == grouped[:, :1]).all(dim=1)  # (B,)
    return uniform.float().mean().item()


def prob_uniform_group(p, G: int):
    """Probability that G independent binary rewards with success rate p all agree.

    P(all correct) + P(all wrong) = p**G + (1 - p)**G: the chance that a prompt's group gives
    no GRPO policy gradient. It is smallest (2 * 0.5**G) at p = 0.5 and tends to 1 at p -> 0
    or 1.

    Args:
        p: float or tensor of per-prompt success probabilities in [0, 1].
        G: group size (int >= 2).

    Returns:
        float if p is a float, else a tensor of p's shape.
    """
    checks.count("G", G, 2)
    if isinstance(p, torch.Tensor):
        checks.tensor("p", p)
        if not ((p >= 0) & (p <= 1)).all():  # NaN fails both
            raise ValueError("p must lie in [0, 1] (a success probability)")
        return p**G + (1 - p) ** G
    p = checks.probability("p", p, "a success probability")
    return p**G + (1.0 - p) ** G


def _check_loss_inputs(logps, old_logps, advantages, mask, ref_logps, clip_eps, clip_eps_high,
                       beta, kl_estimator, loss_agg, max_tokens) -> tuple[float, float, int]:
    """Validate grpo_loss's arguments; return (eps_low, eps_high, max_tokens)."""
    checks.one_of("loss_agg", loss_agg, LOSS_AGGS)
    checks.one_of("kl_estimator", kl_estimator, ESTIMATORS)
    eps_low = checks.interval("clip_eps", clip_eps, 0, 1, "()")
    eps_high = eps_low if clip_eps_high is None else checks.positive("clip_eps_high", clip_eps_high)
    checks.positive("beta", beta, "0 disables the KL penalty", allow_zero=True)
    if beta > 0 and ref_logps is None:
        raise ValueError("beta > 0 needs ref_logps: pass the reference's token log-probs or set beta=0")
    checks.tensor("logps", logps, dims=(2,))
    B, T = logps.shape
    checks.bool_mask("mask", mask, (B, T), like="logps")
    checks.logprobs("logps", logps, mask=mask)
    # old_logps: finite only (its values are the sampler's; some callers perturb them)
    checks.finite("old_logps", checks.tensor("old_logps", old_logps, shape=(B, T), like="logps"),
                  mask)
    if ref_logps is not None:
        checks.logprobs("ref_logps", ref_logps, shape=(B, T), mask=mask, like="logps")
    checks.finite("advantages", checks.tensor("advantages", advantages, shape=(B,),
                                              like="logps' rows"))
    max_tokens = T if max_tokens is None else checks.count("max_tokens", max_tokens, T,
                                                           "the token budget bounds T")
    return eps_low, eps_high, max_tokens


def _check_variant(surrogate, importance_sampling_level, kl_importance_weight,
                   clip_eps_high) -> None:
    """Validate the options that pick a GRPO variant (GSPO, CISPO, importance-weighted KL)."""
    checks.one_of("surrogate", surrogate, SURROGATES)
    checks.one_of("importance_sampling_level", importance_sampling_level, IS_LEVELS)
    checks.flag("kl_importance_weight", kl_importance_weight)
    if surrogate == "cispo" and (clip_eps_high is None or clip_eps_high < 1):
        raise ValueError(f"surrogate='cispo' caps the ratio at clip_eps_high = eps_max, which must "
                         f"be given and >= 1 (TRL recommends 5.0), got {clip_eps_high!r}")


def log_importance_weights(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor,
                           level: str = "token") -> torch.Tensor:
    """Log of the importance weight pi_theta / pi_old, per token or per sequence (GSPO sec. 4).

    Args:
        logps: (B, T) log pi_theta of the completion tokens.
        old_logps: (B, T) log pi_old of the same tokens (treated as a constant by the caller).
        mask: (B, T) bool, True on completion tokens.
        level: "token": log rho_it = log pi_theta(o_it) - log pi_old(o_it) (GRPO);
            "sequence": log s_i = (1 / |o_i|) sum_t log rho_it, the length-normalised
            sequence ratio of GSPO (Zheng et al. 2025, sec. 4), one weight for all tokens of o_i.

    Returns:
        (B, T) for "token" (0 off the mask), (B, 1) for "sequence" (0 for an empty row).
    """
    logratio = torch.where(mask, logps - old_logps, torch.zeros_like(logps))  # (B, T)
    if level == "token":
        return logratio  # (B, T)
    lengths = mask.sum(dim=1, keepdim=True).clamp(min=1).to(logps.dtype)  # (B, 1)
    return logratio.sum(dim=1, keepdim=True) / lengths  # (B, 1)


def _surrogate_per_token(logps, log_w, A, eps_low, eps_high, surrogate) -> torch.Tensor:
    """The per-token policy loss: PPO/GRPO clip or CISPO. log_w (B, T) or (B, 1); A (B, 1)."""
    ratio = torch.exp(log_w)  # (B, T) or (B, 1)
    if surrogate == "cispo":  # MiniMax-M1 sec. 3.1: a capped, detached weight on log pi_theta
        weight = torch.clamp(ratio, max=eps_high).detach()  # (B, T) or (B, 1)
        return -weight * A * logps  # (B, T)
    surr1 = ratio * A  # (B, T) or (B, 1)
    surr2 = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * A  # (B, T) or (B, 1)
    return -torch.min(surr1, surr2).expand_as(logps)  # (B, T)


def _kl_per_token(logps, ref_logps, mask, kl_estimator, log_w, kl_importance_weight):
    """(B, T) KL estimate, multiplied by the live (not detached) ratio exp(log_w) if asked."""
    zeros = torch.zeros_like(logps)  # (B, T)
    ref = torch.where(mask, ref_logps.detach(), zeros)  # (B, T)
    per_token_kl = kl_estimate(torch.where(mask, logps, zeros), ref, kl_estimator)  # (B, T)
    if kl_importance_weight:
        per_token_kl = importance_weighted_kl(per_token_kl, log_w)  # (B, T)
    return per_token_kl


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float = 0.2, clip_eps_high: float | None = None,
              ref_logps: torch.Tensor | None = None, beta: float = 0.0, kl_estimator: str = "k3",
              loss_agg: str = "grpo", max_tokens: int | None = None, surrogate: str = "clip",
              importance_sampling_level: str = "token", kl_importance_weight: bool = False,
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped GRPO surrogate with an optional per-token KL penalty (DeepSeekMath eq. 3).

    Also GSPO's sequence-level weight, CISPO's surrogate and the importance-weighted KL
    (module docstring); the defaults are plain GRPO.

    Args:
        logps: (B, T) log pi_theta of the completion tokens (requires grad), B = prompts x G.
        old_logps: (B, T) log pi_old of the same tokens, from the policy that sampled them
            (detached here). Equal to logps at the first inner step, where the ratio is 1.
        advantages: (B,) one advantage per completion, e.g. from group_advantages (detached).
        mask: (B, T) bool, True on completion tokens (EOS included), False on padding.
        clip_eps: eps_low, the ratio is clipped below at 1 - clip_eps; 0 < clip_eps < 1.
        clip_eps_high: eps_high for the upper clip 1 + eps_high (DAPO clip-higher);
            None means clip_eps. With surrogate="cispo" it is eps_max, the cap of the
            weight itself (>= 1; TRL recommends 5.0).
        ref_logps: (B, T) log pi_ref of the same tokens (detached); needed when beta > 0,
            and used for the "kl" metric whenever given.
        beta: KL coefficient (>= 0; 0 disables the penalty, as in DAPO and Dr. GRPO).
        kl_estimator: "k1", "k2" or "k3" (refimpl.methods.kl).
        loss_agg: "grpo", "dapo" or "dr_grpo"; see the module docstring for their length bias.
        max_tokens: the constant of "dr_grpo" (the generation budget, >= T); defaults to T.
        surrogate: "clip" (the min/clip objective above) or "cispo" (MiniMax-M1):
            per-token loss -sg(min(w, eps_max)) * A_i * log pi_theta(o_it).
        importance_sampling_level: "token" (w = rho_it) or "sequence" (GSPO: w = s_i, one
            weight per completion; see log_importance_weights).
        kl_importance_weight: multiply the per-token KL by w, not detached (TRL's default
            use_bias_correction_kl; see refimpl.methods.kl.importance_weighted_kl).

    Returns:
        (loss, metrics): a scalar to minimise, and floats "clip_ratio" (share of completion
        tokens, or of completions at the sequence level, where clipping zeroes the gradient:
        ratio > 1 + eps_high with A > 0, or ratio < 1 - eps_low with A < 0; for CISPO the share
        with w > eps_max and A > 0, whose weight is capped), "clip_ratio/low_mean",
        "clip_ratio/high_mean", "ratio_mean", "loss/policy", and, when ref_logps is given,
        "kl" (mean per-token estimate over completion tokens, weighted by w when
        kl_importance_weight).
    """
    eps_low, eps_high, max_tokens = _check_loss_inputs(
        logps, old_logps, advantages, mask, ref_logps, clip_eps, clip_eps_high, beta,
        kl_estimator, loss_agg, max_tokens)
    _check_variant(surrogate, importance_sampling_level, kl_importance_weight, clip_eps_high)
    old_logps, advantages = old_logps.detach(), advantages.detach()
    A = advantages.to(logps.dtype)[:, None]  # (B, 1)
    log_w = log_importance_weights(logps, old_logps, mask, importance_sampling_level)  # (B, T|1)
    per_token_loss = _surrogate_per_token(logps, log_w, A, eps_low, eps_high, surrogate)  # (B, T)
    pg_per_token = per_token_loss.detach()  # (B, T)

    per_token_kl = None
    if ref_logps is not None:
        per_token_kl = _kl_per_token(logps, ref_logps, mask, kl_estimator, log_w,
                                     kl_importance_weight)  # (B, T)
        if beta > 0:
            per_token_loss = per_token_loss + beta * per_token_kl  # (B, T)

    loss = _aggregate(per_token_loss, mask, loss_agg, max_tokens)
    with torch.no_grad():
        metrics = _loss_metrics(torch.exp(log_w), A, mask, eps_low, eps_high, surrogate)
        metrics["loss/policy"] = _aggregate(pg_per_token, mask, loss_agg, max_tokens).item()
        if per_token_kl is not None:
            metrics["kl"] = _masked_mean(per_token_kl, mask)
    return loss, metrics


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of a float (B, T) tensor over the mask, or of a (B, 1) one over its B rows."""
    if x.shape[1] == 1:
        return x.mean().item()
    return (torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum()).item()


def _loss_metrics(ratio, A, mask, eps_low, eps_high, surrogate) -> dict[str, float]:
    """Clip shares and mean ratio; ratio (B, T) or (B, 1) per sequence, A (B, 1)."""
    if surrogate == "cispo":  # TRL's cispo_clip_ratio: capped weights with a positive advantage
        low, high = torch.zeros_like(ratio, dtype=torch.bool), (ratio > eps_high) & (A > 0)
    else:
        low = (ratio < 1 - eps_low) & (A < 0)  # (B, T) or (B, 1)
        high = (ratio > 1 + eps_high) & (A > 0)  # (B, T) or (B, 1)
    share = {k: v.to(ratio.dtype) for k, v in (("clip_ratio", low | high),
                                                ("clip_ratio/low_mean", low),
                                                ("clip_ratio/high_mean", high))}
    return {**{k: _masked_mean(v, mask) for k, v in share.items()},
            "ratio_mean": _masked_mean(ratio, mask)}


def _aggregate(
    per_token: torch.Tensor, mask: torch.Tensor, loss_agg: str, max_tokens: int
) -> torch.Tensor:
    """Reduce a (B, T) per-token loss to a scalar over the tokens where mask is True."""
    masked = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    if loss_agg == "grpo":
        lengths = mask.sum(dim=1).clamp(min=1).to(per_token.dtype)  # (B,)
        return (masked.sum(dim=1) / lengths).mean()  # sequence mean, then batch mean
    if loss_agg == "dapo":
        return masked.sum() / mask.sum()  # token mean over the batch
    return masked.sum() / (per_token.shape[0] * max_tokens)  # dr_grpo: constant normaliser
