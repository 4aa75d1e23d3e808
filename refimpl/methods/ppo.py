"""PPO for language models: a learned critic, per-token rewards, GAE, and the clipped losses.

Proximal Policy Optimization (Schulman et al. 2017, "Proximal Policy Optimization
Algorithms") in the form used for language models by InstructGPT (Ouyang et al. 2022) and
TRL's PPOTrainer. A completion y = (y_0 .. y_{L-1}) of prompt x is an episode whose state at
token t is s_t = (x, y_<t) and whose action is y_t.

Per-token reward (the outcome reward R(x, y) arrives once, on the last completion token,
normally EOS; an optional KL penalty to the frozen reference is paid on every token):

    r_t = -reward_kl_coef * (log pi_old(y_t | s_t) - log pi_ref(y_t | s_t)) + [t = L-1] * R(x, y)

(``reward_kl_coef``, kappa in the notebooks: it weighs a KL subtracted from the reward, where
GRPO's ``beta`` weighs a KL added to the loss).

Critic: V_phi(s_t) predicts the return-to-go sum_{l >= t} gamma^(l-t) r_l. Here it is a
*separate* copy of the base transformer with a scalar head on ``model.hidden`` (the
InstructGPT / TRL layout). Its cost: a second set of transformer weights, and Adam's two
moment buffers and gradients for them, so PPO holds about 1.8x GRPO's floats (see `rl_memory`).
The alternative, a head on the policy's own trunk, saves that memory but lets the value
loss pull on the policy's features. Without a critic, `loo_values` gives every token the
prompt's pass rate estimated from the group's other samples (claim C15's Monte-Carlo arm).

Generalised advantage estimation (Schulman et al. 2016, "High-Dimensional Continuous
Control Using GAE", eq. 16), with V(s_L) = 0 after the last token:

    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)
    A_t     = sum_{l >= 0} (gamma * lam)^l * delta_{t+l} = delta_t + gamma * lam * A_{t+1}
    V^targ_t = A_t + V(s_t)                                  (the value targets, "returns")

lam = 1 gives the Monte-Carlo advantage: return-to-go - V(s_t) (unbiased, high variance); lam = 0
gives the one-step TD error delta_t (low variance, as biased as the critic).

Losses, averaged over completion tokens (TRL's masked mean):

    policy:  -min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t),  rho_t = pi_theta / pi_old
             (PPO eq. 7; computed by `refimpl.methods.grpo.grpo_loss`, which is the same clipped
             surrogate, called with one advantage per token)
    value:   1/2 max((V_t - V^targ_t)^2, (clip(V_t, V_old,t +- eps_v) - V^targ_t)^2)
             (the clipped value loss of the PPO2 baselines and TRL)

with the advantages whitened (zero mean, unit variance over the batch's tokens) first.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from refimpl.core import checks
from refimpl.methods.grpo import grpo_loss
from refimpl.methods.reinforce import baseline

# ------------------------------------------------------------------------------ critic ----

class ValueModel(nn.Module):
    """The critic: a copy of a GPT trunk and a scalar head on its final hidden states.

    ``ValueModel(policy_model)`` deep-copies the transformer (weights included: the critic
    starts from the SFT features, as InstructGPT's starts from the reward model) and adds a
    linear head C -> 1, initialised to output 0 everywhere.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.trunk = copy.deepcopy(model).train().requires_grad_(True)
        C = self.trunk.config.n_embd
        self.v_head = nn.Linear(C, 1)
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)

    def forward(self, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
        """Values V(s_t) (B, T) of the states before each completion token; 0 where masked.

        prompt_ids, prompt_mask: (B, P) left-padded prompts; completion_ids, completion_mask:
        (B, T). The value of s_t = (x, y_<t) is read at column P-1+t, the column whose logits
        predict y_t, so values line up with ``token_logprobs``.
        """
        if prompt_ids.shape != prompt_mask.shape or completion_ids.shape != completion_mask.shape:
            raise ValueError("ids and masks must have matching shapes: (B, P) prompts, "
                             "(B, T) completions")
        P = prompt_ids.shape[1]
        idx = torch.cat([prompt_ids, completion_ids], dim=1)              # (B, P+T)
        mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], 1)  # (B, P+T)
        h = self.trunk.hidden(idx[:, :-1], mask[:, :-1])                  # (B, P+T-1, C)
        values = self.v_head(h[:, P - 1:]).squeeze(-1)                    # (B, T)
        return torch.where(completion_mask.bool(), values, torch.zeros_like(values))  # (B, T)


def rl_memory(policy: nn.Module, critic: nn.Module | None = None, reference: bool = True,
              adam_buffers: int = 2) -> dict[str, int]:
    """Float counts an RL step keeps alive (activations excluded).

    policy: the trained GPT; critic: the ValueModel (None for GRPO/REINFORCE); reference:
    whether a frozen pi_ref is held for the KL term. Every trainable parameter also has a
    gradient buffer (one float, ``.grad``) and Adam keeps ``adam_buffers`` (2: the first and
    second moments) floats per trainable parameter.
    Returns {"params": weights held, "grads": gradient buffers, "optimizer_state": Adam
    buffers, "total": all three}. For a policy of N weights: GRPO N + N (reference) + N + 2N
    = 5N; PPO with a critic of N_c weights adds N_c + N_c + 2 N_c = 4 N_c.
    """
    n_pol = sum(p.numel() for p in policy.parameters())
    n_crit = 0 if critic is None else sum(p.numel() for p in critic.parameters())
    params = n_pol * (2 if reference else 1) + n_crit
    grads = n_pol + n_crit
    opt = adam_buffers * (n_pol + n_crit)
    return {"params": params, "grads": grads, "optimizer_state": opt, "total": params + grads + opt}


def loo_values(rewards: torch.Tensor, mask: torch.Tensor, group_size: int) -> torch.Tensor:
    """Monte-Carlo values without a critic: V(s_t) = the prompt's pass rate estimated from the
    OTHER G-1 samples of its group, held at every token of the completion.

    This is the leave-one-out mean of ``refimpl.methods.reinforce.baseline(kind="rloo")``
    (Kool et al. 2019; Ahmadian et al. 2024), broadcast along the sequence: the value of the
    prompt at the first token, E[R | x] up to sampling noise, which ignores what the completion
    has written so far. Leaving sample i out keeps V independent of its own reward. GAE
    (Schulman et al. 2016, eq. 16) runs on it as on a critic's values: with V constant along
    the sequence, gamma = 1 and no KL, every delta_t but the last is 0, so
    A_t = lam^(L-1-t) (R - V).

    rewards: (B*G,) outcome rewards, G consecutive samples per prompt; mask: (B*G, T) bool
    completion mask; group_size: G >= 2. Returns (B*G, T) values, 0 where masked.
    """
    b = baseline(rewards, group_size, "rloo")                              # (B*G,)
    checks.tensor("mask", mask, dims=(2,), floating=False)
    checks.bool_mask("mask", mask, (b.shape[0], mask.shape[1]), like="(B*G, T) completions")
    return torch.where(mask, b[:, None], torch.zeros_like(b)[:, None])     # (B*G, T)


# ------------------------------------------------------------------- rewards and GAE ------

def _check_mask(mask: torch.Tensor, shape, name="mask") -> None:
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be torch.bool, got {mask.dtype}: use mask.bool()")
    if mask.dim() != 2 or (shape is not None and mask.shape != shape):
        raise ValueError(f"{name} {tuple(mask.shape)} must be (B, T) = {tuple(shape)}")
    if (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError(f"{name} must be right-padded (True then False on each row): "
                         "a completion cannot resume after its padding")


def token_rewards(scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None,
                  reward_kl_coef: float = 0.0) -> torch.Tensor:
    """Per-token rewards r_t: the score on the last completion token, minus reward_kl_coef * kl_t.

    scores: (B,) outcome rewards R(x, y); mask: (B, T) bool, right-padded, at least one
    token per row; kl: (B, T) per-token KL estimates log pi_old - log pi_ref (the k1
    estimator of refimpl.methods.kl), needed when reward_kl_coef > 0; reward_kl_coef: the
    weight (>= 0) of the KL penalty in the reward. Returns (B, T), 0 where masked.
    """
    checks.tensor("scores", scores, dims=(1,))
    checks.tensor("mask", mask, dims=(2,), floating=False)
    if mask.dim() != 2 or mask.shape[0] != scores.shape[0]:
        raise ValueError(f"mask {tuple(mask.shape)} must be (B, T) with B = len(scores) = "
                         f"{scores.shape[0]}")
    _check_mask(mask, mask.shape)
    if not mask[:, 0].all():
        raise ValueError("every completion needs at least one token (mask[:, 0] must be True)")
    checks.positive("reward_kl_coef", reward_kl_coef, "0 disables the KL penalty", allow_zero=True)
    if reward_kl_coef > 0 and kl is None:
        raise ValueError("reward_kl_coef > 0 needs the per-token kl: pass kl=logps_old - ref_logps")
    checks.finite("scores", scores, hint="fix the reward function")
    if kl is not None:
        checks.finite("kl", checks.tensor("kl", kl, shape=mask.shape), mask)
    B, T = mask.shape
    last = mask.sum(1) - 1                                                 # (B,)
    rewards = torch.zeros(B, T, dtype=scores.dtype, device=scores.device)  # (B, T)
    rewards[torch.arange(B, device=mask.device), last] = scores            # (B, T)
    if kl is not None and reward_kl_coef > 0:
        rewards = rewards - reward_kl_coef * torch.where(mask, kl.to(scores.dtype), 0.0)  # (B, T)
    return rewards


def gae_advantages(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor,
                   gamma: float = 1.0, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(gamma, lam) advantages and the lambda-returns (value targets).

    rewards: (B, T) per-token rewards (`token_rewards`); values: (B, T) V(s_t) from the
    critic at rollout time; mask: (B, T) bool, right-padded. The state after the last
    completion token is terminal (V = 0). Returns (advantages, returns), both (B, T) and
    0 where masked; returns = advantages + values. Computed without gradients.
    """
    if rewards.shape != values.shape:
        raise ValueError(f"rewards {tuple(rewards.shape)} and values {tuple(values.shape)} "
                         "must have the same (B, T) shape")
    _check_mask(mask, rewards.shape)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    for name, x in (("rewards", rewards), ("values", values)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contain NaN or inf")
    rewards, values = rewards.detach(), values.detach()
    maskf = mask.to(values.dtype)                                          # (B, T)
    values = values * maskf                                                # (B, T)
    B, T = rewards.shape
    advantages = torch.zeros_like(values)                                  # (B, T)
    next_value = torch.zeros(B, dtype=values.dtype, device=values.device)  # (B,) V(s_{t+1})
    next_adv = torch.zeros_like(next_value)                                # (B,) A_{t+1}
    for t in reversed(range(T)):
        delta = rewards[:, t] + gamma * next_value - values[:, t]          # (B,)
        adv_t = (delta + gamma * lam * next_adv) * maskf[:, t]             # (B,)
        advantages[:, t] = adv_t
        next_value, next_adv = values[:, t], adv_t                         # padding: both 0
    returns = advantages + values                                          # (B, T)
    return advantages, returns


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
           eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries of (B, T) x; 0 where masked.

    shift_mean=False only rescales (keeps the mean). Uses the unbiased std as TRL does.
    """
    if x.shape != mask.shape:
        raise ValueError(f"x {tuple(x.shape)} and mask {tuple(mask.shape)} must have the same shape")
    n = mask.sum()
    if n < 2:
        raise ValueError("whitening needs at least two unmasked entries")
    vals = x[mask]                                                         # (N,)
    mean, std = vals.mean(), vals.std(correction=1)
    out = (x - mean) / (std + eps) if shift_mean else (x - mean) / (std + eps) + mean
    return torch.where(mask, out, torch.zeros_like(out))                   # (B, T)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over masked tokens (CleanRL's diagnostic).

    1: the critic predicts the returns perfectly; 0: no better than a constant; < 0: worse.
    NaN when the returns do not vary.
    """
    y, v = returns[mask].double(), values[mask].double()                  # (N,), (N,)
    var_y = y.var(correction=0)
    if var_y == 0:
        return float("nan")
    return (1.0 - (y - v).var(correction=0) / var_y).item()


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two equal-length 1-D tensors (NaN if either is constant)."""
    if x.shape != y.shape or x.dim() != 1:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must be 1-D of equal length")
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = (x.norm() * y.norm()).item()
    return float("nan") if denom == 0 else (x @ y).item() / denom


# ------------------------------------------------------------------------------ losses ----

def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip_range_value: float | None = 0.2
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped value loss 1/2 max((V - V^targ)^2, (clip(V, V_old +- eps_v) - V^targ)^2).

    values: (B, T) V_phi(s_t) (requires grad); old_values: (B, T) the critic's values at
    rollout time; returns: (B, T) the targets V^targ_t (lambda-returns); mask: (B, T) bool.
    clip_range_value: eps_v > 0, or None for the plain squared error.
    Returns (loss, {"value_loss", "vf_clipfrac"}): the masked token mean, and the share of
    tokens where the clipped branch is the larger one (its gradient is then zero).
    """
    if not (values.shape == old_values.shape == returns.shape == mask.shape):
        raise ValueError(f"values {tuple(values.shape)}, old_values {tuple(old_values.shape)}, "
                         f"returns {tuple(returns.shape)} and mask {tuple(mask.shape)} must all "
                         "be (B, T)")
    if mask.dtype != torch.bool or not mask.any():
        raise ValueError("mask must be a torch.bool tensor selecting at least one token")
    if clip_range_value is not None and not clip_range_value > 0:
        raise ValueError(f"clip_range_value must be > 0 or None, got {clip_range_value}")
    for name, x in (("values", values), ("old_values", old_values), ("returns", returns)):
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} contain NaN or inf")
    old_values, returns = old_values.detach(), returns.detach()
    maskf = mask.to(values.dtype)                                          # (B, T)
    n_tok = maskf.sum()
    vf_losses1 = (values - returns) ** 2                                   # (B, T)
    if clip_range_value is None:
        per_token = vf_losses1                                             # (B, T)
        clipfrac = 0.0
    else:
        eps_v = clip_range_value
        v_clipped = old_values + (values - old_values).clamp(-eps_v, eps_v)  # (B, T)
        vf_losses2 = (v_clipped - returns) ** 2                            # (B, T)
        per_token = torch.max(vf_losses1, vf_losses2)                      # (B, T)
        clipfrac = (((vf_losses2 > vf_losses1) & mask).sum() / n_tok).item()
    loss = 0.5 * (per_token * maskf).sum() / n_tok
    return loss, {"value_loss": loss.item(), "vf_clipfrac": clipfrac}


def ppo_policy_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor,
                    mask: torch.Tensor, clip_eps: float = 0.2,
                    ref_logps: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate with one advantage per token, averaged over tokens.

    logps, old_logps: (B, T) per-token log-probs under pi_theta (with grad) and pi_old;
    advantages: (B, T) per-token (whitened) advantages; mask: (B, T) bool; ref_logps: (B, T),
    only for the "kl" metric (PPO puts its KL penalty in the reward, not in the loss).

    This is `refimpl.methods.grpo.grpo_loss` on a (B*T, 1) view: each token becomes a one-token
    "sequence" with its own advantage, and the "dapo" aggregation (sum over tokens / number
    of tokens) is exactly PPO's masked token mean. Returns its (loss, metrics): clip_ratio,
    clip_ratio/low_mean, clip_ratio/high_mean, ratio_mean, loss/policy and kl.
    """
    if advantages.shape != logps.shape:
        raise ValueError(f"advantages {tuple(advantages.shape)} must be per token, shaped like "
                         f"logps {tuple(logps.shape)}")
    if mask.shape != logps.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must have the shape of logps "
                         f"{tuple(logps.shape)}")
    flat = lambda x: None if x is None else x.reshape(-1, 1)               # (B*T, 1)
    return grpo_loss(flat(logps), flat(old_logps), advantages.reshape(-1), flat(mask),
                     clip_eps=clip_eps, ref_logps=flat(ref_logps), beta=0.0, loss_agg="dapo")


def ppo_loss(logps, old_logps, advantages, values, old_values, returns, mask,
             clip_eps: float = 0.2, clip_range_value: float | None = 0.2, vf_coef: float = 0.5,
             ref_logps=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Total PPO loss L = L_policy + vf_coef * L_value (all tensors (B, T); see above).

    With a separate critic the two terms touch disjoint parameters, so vf_coef only rescales
    the critic's gradient (and Adam undoes most of that); it matters for a shared trunk.
    Returns (loss, metrics of both terms).
    """
    checks.positive("vf_coef", vf_coef, allow_zero=True)
    checks.logprobs("logps", logps, dims=(2,))
    for name, t in (("old_logps", old_logps), ("advantages", advantages), ("values", values),
                    ("old_values", old_values), ("returns", returns)):
        checks.tensor(name, t, shape=logps.shape, like="logps")
    pg_loss, metrics = ppo_policy_loss(logps, old_logps, advantages, mask, clip_eps, ref_logps)
    vf_loss, vf_metrics = value_loss(values, old_values, returns, mask, clip_range_value)
    metrics.update(vf_metrics)
    return pg_loss + vf_coef * vf_loss, metrics
