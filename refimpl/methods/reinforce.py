"""REINFORCE with a baseline, for binary verifier rewards.

The objective is the expected verifier score J(theta) = E_{x, y ~ pi_theta(.|x)}[V(x, y)].
The score-function identity (Williams 1992) gives its gradient, and subtracting any
baseline b that does not depend on the sampled y leaves it unchanged, because
E_y[grad log pi(y|x)] = 0:

    grad J = E[(V(x, y) - b(x)) * grad log pi_theta(y | x)]            (1)

The baseline only changes the variance. Choices implemented here, for rewards laid out
in groups of G samples per prompt (row b*G + g is sample g of prompt b):

- "none":        b = 0, plain REINFORCE.
- "rloo":        b_i = mean of the OTHER G-1 rewards of the same prompt (REINFORCE
                 leave-one-out, Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics").
                 Independent of sample i, so (1) stays unbiased.
- "group_mean":  b_i = mean of the whole group, sample i included (GRPO without the std
                 division). Since b_i = r_i / G + (G-1)/G * b_i^rloo, the advantage is
                 exactly (G-1)/G times the RLOO advantage: the estimate is biased, shrunk
                 by (G-1)/G, with (G-1)^2/G^2 times the RLOO variance.
- "running":     b(x) = a running average of the rewards previously seen for prompt x
                 (`RunningBaseline`), read BEFORE the current rewards are added.

`reinforce_loss` is the surrogate whose autograd gradient is the sample estimate of (1):
loss = -mean_i (r_i - b_i) * log pi(y_i | x_i), with (r - b) detached.
`exact_reward_bandit_gradient` enumerates every group of samples on the reward bandit (a small
softmax policy over N actions of M prompts, with a table of verifier rewards) to get the exact
mean and variance of that estimator for each baseline; `gradient_variance` (the trace of a
covariance) and `per_sample_grads` measure the same on a real model.

A baseline lowers the variance only when it is close to the right value. For one sample
and a constant b, Var(b) = Var(0) - 2b E[r |s|^2] + b^2 E[|s|^2] with s = grad log pi(y|x),
so the best constant is b* = E[r |s|^2] / E[|s|^2]: the pass rate weighted by squared
score norms. It equals the pass rate when every |s| is the same (a uniform policy), but a
confident policy, whose likely (correct) answers have small |s|, can have b* far below the
pass rate; the tests show b = pass rate multiplying the variance on such a case.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Hashable, Sequence

import torch

from refimpl.core import checks
from refimpl.methods.kl import ESTIMATORS as KL_ESTIMATORS
from refimpl.methods.kl import kl_estimate

BASELINE_KINDS = ("none", "rloo", "group_mean", "running")


def _check_rewards(rewards: torch.Tensor, group_size: int, min_group: int = 1) -> None:
    checks.tensor("rewards", rewards, dims=(1,), floating=False)
    checks.count("group_size", group_size, min_group)
    if rewards.numel() % group_size != 0:
        raise ValueError(
            f"got {rewards.numel()} rewards, not a positive multiple of the group size "
            f"{group_size}; lay out G samples per prompt"
        )
    checks.finite("rewards", rewards.double(), hint="check the verifier output")


class RunningBaseline:
    """Per-prompt running average of past rewards: the b(x) of equation (1).

    momentum=None keeps a count average: b(x) = mean of every reward seen so far for x.
    momentum=m in [0, 1) keeps an exponential moving average of the per-batch group mean:
    b(x) <- m * b(x) + (1 - m) * mean(current rewards of x); the first visit sets b(x) to
    that mean. A prompt never seen has b(x) = init. The value only helps when prompts
    recur (a small training pool revisited over epochs); otherwise it stays at init.
    """

    def __init__(self, momentum: float | None = None, init: float = 0.0):
        if momentum is not None:
            checks.interval("momentum", momentum, 0.0, 1.0, "[)", "None keeps a count average")
        self.momentum = momentum
        self.init = checks.number("init", init)
        self.value: dict[Hashable, float] = {}
        self.count: dict[Hashable, int] = {}

    def get(self, keys: Sequence[Hashable]) -> torch.Tensor:
        """Current b(x) for each prompt key; returns (B,) float64."""
        return torch.tensor([self.value.get(k, self.init) for k in keys], dtype=torch.float64)

    def update(self, keys: Sequence[Hashable], rewards: torch.Tensor) -> None:
        """Fold rewards (B*G,), G consecutive per key, into the averages."""
        if not len(keys) or rewards.dim() != 1 or rewards.numel() % len(keys):
            raise ValueError(f"update got {len(keys)} keys for rewards of shape "
                             f"{tuple(rewards.shape)}: pass one key per prompt, and (B*G,) "
                             "rewards with G consecutive samples per key")
        checks.finite("rewards", rewards.double())
        grouped = rewards.detach().double().reshape(len(keys), -1)  # (B, G)
        for key, group in zip(keys, grouped):
            n, mean = group.numel(), group.mean().item()
            if key not in self.value:
                self.value[key], self.count[key] = mean, n
                continue
            if self.momentum is None:
                total = self.value[key] * self.count[key] + group.sum().item()
                self.value[key] = total / (self.count[key] + n)
            else:
                self.value[key] = self.momentum * self.value[key] + (1 - self.momentum) * mean
            self.count[key] += n


def baseline(rewards: torch.Tensor, group_size: int, kind: str = "none",
             running: RunningBaseline | None = None,
             keys: Sequence[Hashable] | None = None) -> torch.Tensor:
    """Baseline b_i for every sample; returns (B*G,) floats (the dtype of float `rewards`).

    rewards: (B*G,) verifier scores, G consecutive samples per prompt.
    group_size: G; "rloo" and "group_mean" need G >= 2, "none" and "running" accept G = 1.
    kind: one of "none", "rloo", "group_mean", "running".
    running, keys: for kind="running", the RunningBaseline and one hashable key per prompt
        (B keys). The baseline is read first, then `running` is updated with these rewards,
        so b_i never depends on the current batch.
    """
    if kind not in BASELINE_KINDS:
        raise ValueError(f"unknown baseline kind {kind!r}; choose one of {BASELINE_KINDS}")
    _check_rewards(rewards, group_size, min_group=2 if kind in ("rloo", "group_mean") else 1)
    if not rewards.is_floating_point():
        rewards = rewards.to(torch.get_default_dtype())  # (B*G,)
    G = group_size
    grouped = rewards.reshape(-1, G)  # (B, G)
    if kind == "none":
        return torch.zeros_like(rewards)  # (B*G,)
    if kind == "group_mean":
        return grouped.mean(dim=1, keepdim=True).expand(-1, G).reshape(-1)  # (B*G,)
    if kind == "rloo":
        total = grouped.sum(dim=1, keepdim=True)  # (B, 1)
        return ((total - grouped) / (G - 1)).reshape(-1)  # (B*G,)
    if running is None or keys is None or len(keys) != grouped.shape[0]:
        raise ValueError("kind='running' needs running=RunningBaseline(...) and one key per prompt (B keys)")
    b = running.get(keys).to(rewards.dtype)  # (B,)
    running.update(keys, rewards)
    return b.repeat_interleave(G)  # (B*G,)


def _check_loss_inputs(logps, rewards, baselines, ref_logps, seq_kl_coef, group_size, mask,
                       kl_estimator) -> torch.Tensor:
    """Validate reinforce_loss's arguments; return the bool tensor of the entries that count."""
    checks.tensor("logps", logps, dims=(1, 2))
    if logps.dim() == 2 and mask is None:
        raise ValueError("per-token logps (B*G, T) need a bool mask of the same shape")
    if logps.dim() == 1 and mask is not None:
        raise ValueError("mask is only for per-token logps (B*G, T); sequence logps take none")
    keep = (checks.bool_mask("mask", mask, logps.shape, like="logps") if mask is not None
            else torch.ones_like(logps, dtype=torch.bool))  # like logps
    checks.logprobs("logps", logps, mask=keep)
    for name, t in (("rewards", rewards), ("baselines", baselines)):
        checks.finite(name, checks.tensor(name, t, shape=logps.shape[:1], floating=False,
                                          like="logps' rows").double())
    _check_rewards(rewards, group_size)
    checks.positive("seq_kl_coef", seq_kl_coef, "0 disables the KL penalty", allow_zero=True)
    checks.one_of("kl_estimator", kl_estimator, KL_ESTIMATORS)
    if seq_kl_coef > 0 and ref_logps is None:
        raise ValueError("seq_kl_coef > 0 needs ref_logps from the reference policy")
    if ref_logps is not None:
        checks.logprobs("ref_logps", ref_logps, shape=logps.shape, mask=keep, like="logps")
    return keep


def reinforce_loss(logps: torch.Tensor, rewards: torch.Tensor, baselines: torch.Tensor,
                   ref_logps: torch.Tensor | None = None, seq_kl_coef: float = 0.0, *,
                   group_size: int, mask: torch.Tensor | None = None,
                   kl_estimator: str = "k3") -> tuple[torch.Tensor, dict[str, float]]:
    """REINFORCE surrogate loss with a baseline and an optional KL penalty.

    logps: (B*G,) sequence log-probs log pi(y|x), or (B*G, T) per-token log-probs with `mask`.
    rewards, baselines: (B*G,); the advantage (rewards - baselines) is detached, so no
        gradient reaches a reward model or a learned baseline.
    ref_logps: same shape as logps, from the frozen reference policy (needed if seq_kl_coef > 0).
    seq_kl_coef: the weight (>= 0) of the SEQUENCE KL in the loss (beta in the notebooks). The
        penalty is seq_kl_coef * mean over sequences of the sequence KL estimate, so that it
        sits on the same per-sequence scale as the policy term and the loss is the surrogate of
        E[r] - seq_kl_coef * KL(pi(.|x) || pi_ref(.|x)). With per-token inputs the sequence KL
        is the masked SUM of per-token estimates (refimpl.methods.kl; the KL of sequences is
        the sum of per-token KLs, by the chain rule), so this weight counts about T times more
        than GRPO's ``beta`` on the per-token-averaged KL. With sequence inputs the
        estimator is applied to the sequence log-ratio: unbiased for k1/k3 but noisy for
        long sequences; prefer per-token inputs when you have them.
    group_size: G, the layout of the rows, used for the group metrics only.
    mask: (B*G, T) bool, True on completion tokens; required with per-token logps.

    Returns (loss, metrics) with reward, reward_std (mean within-group std, correction=1;
    the batch std when G = 1), advantage_mean, frac_reward_zero_std (share of groups whose
    rewards are all equal; 1.0 when G = 1), completions/mean_length (when mask is given) and,
    when ref_logps is given, kl (mean per completion token as in TRL, or per sequence for
    sequence inputs) and kl/sequence (the mean sequence KL that the penalty uses).
    """
    keep = _check_loss_inputs(logps, rewards, baselines, ref_logps, seq_kl_coef, group_size,
                              mask, kl_estimator)  # like logps: where the log-probs count
    if logps.dim() == 2:
        seq_logps = torch.where(mask, logps, 0.0).sum(dim=1)  # (B*G,)
    else:
        seq_logps = logps  # (B*G,)
    advantages = (rewards - baselines).detach()  # (B*G,)
    loss = -(advantages * seq_logps).mean()  # ()

    grouped = rewards.detach().reshape(-1, group_size)  # (B, G)
    if group_size >= 2:
        reward_std = grouped.std(dim=1, correction=1).mean().item()
    else:
        reward_std = rewards.std(correction=1 if rewards.numel() > 1 else 0).item()
    metrics = {
        "reward": rewards.mean().item(),
        "reward_std": reward_std,
        "advantage_mean": advantages.mean().item(),
        "frac_reward_zero_std": (grouped.amax(dim=1) == grouped.amin(dim=1)).float().mean().item(),
    }
    if ref_logps is not None:
        kl_elem = kl_estimate(torch.where(keep, logps, 0.0), torch.where(keep, ref_logps, 0.0),
                              kl_estimator)  # like logps, 0 off the mask
        kl_seq = kl_elem.sum(dim=1) if logps.dim() == 2 else kl_elem  # (B*G,)
        loss = loss + seq_kl_coef * kl_seq.mean()
        metrics["kl/sequence"] = kl_seq.mean().item()
        n_tok = keep.sum().clamp(min=1)
        metrics["kl"] = (kl_elem.sum() / n_tok).item() if logps.dim() == 2 else metrics["kl/sequence"]
    if mask is not None:
        metrics["completions/mean_length"] = mask.sum(dim=1).float().mean().item()
    return loss, metrics


def per_sample_grads(losses: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> torch.Tensor:
    """Flattened gradient of each scalar loss w.r.t. params; returns (Z, W), W = number of trainable weights."""
    params = list(params)
    rows = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params)]))  # (W,)
    return torch.stack(rows)  # (Z, W)


def gradient_variance(grads: torch.Tensor, weights: torch.Tensor | None = None) -> float:
    """Trace of the covariance of a gradient estimator: E||g - E g||^2.

    grads: (Z, W) realisations of the estimator (one row per sampled batch).
    weights: (Z,) probabilities of the rows, summing to 1, for exact enumeration; None
        means the rows are i.i.d. draws and the unbiased (Z - 1) estimate is returned.
    """
    if grads.dim() != 2:
        raise ValueError(f"grads must be (Z, W), got shape {tuple(grads.shape)}")
    if not torch.isfinite(grads).all():
        raise ValueError("grads contain NaN or inf")
    if weights is None:
        if grads.shape[0] < 2:
            raise ValueError("need at least 2 gradient samples to estimate a variance")
        centred = grads - grads.mean(dim=0)  # (Z, W)
        return (centred.pow(2).sum() / (grads.shape[0] - 1)).item()
    if weights.shape != grads.shape[:1] or (weights < 0).any() or abs(weights.sum().item() - 1) > 1e-6:
        raise ValueError("weights must be (Z,) non-negative probabilities summing to 1")
    mean = (weights[:, None] * grads).sum(dim=0)  # (W,)
    return (weights * (grads - mean).pow(2).sum(dim=1)).sum().item()


@dataclass
class RewardBanditGradients:
    """The REINFORCE estimator on the reward bandit (``exact_reward_bandit_gradient``):
    true_grad (M, N): grad of E[r]; mean[kind] (M, N) and variance[kind] of the estimator."""

    true_grad: torch.Tensor
    mean: dict[str, torch.Tensor] = field(default_factory=dict)
    variance: dict[str, float] = field(default_factory=dict)
    exact: bool = True


def _check_reward_bandit(logits, reward_table, group_size, running_values) -> None:
    """exact_reward_bandit_gradient's inputs: finite (M, N) logits and rewards, G >= 1, and (M,)
    running values when given."""
    if logits.dim() != 2 or reward_table.shape != logits.shape:
        raise ValueError("logits and reward_table must both be (M, N)")
    if not (torch.isfinite(logits).all() and torch.isfinite(reward_table).all()):
        raise ValueError("logits and reward_table must be finite")
    checks.count("group_size", group_size, 1)
    M = logits.shape[0]
    if running_values is not None and running_values.shape != (M,):
        raise ValueError(f"running_values must be (M,) = ({M},), one baseline per prompt")


def prompt_estimates(pi: torch.Tensor, R: torch.Tensor, actions: torch.Tensor, kind: str,
                     running_value: float, M: int) -> torch.Tensor:
    """One prompt's share of the REINFORCE estimate g (Z, N) for each of Z groups of actions.

    pi (N,): the policy on this prompt; R (N,): its rewards; actions (Z, G): the groups;
    kind: the baseline (``running`` uses running_value); M: prompts in the batch (g is
    averaged over M G samples). score = onehot(a) - pi is grad log pi(a) w.r.t. the logits."""
    N, G = pi.shape[0], actions.shape[1]
    r = R[actions]  # (Z, G)
    if kind == "running":
        b = torch.full_like(r, running_value)  # (Z, G)
    else:
        b = baseline(r.reshape(-1), G, kind).reshape(r.shape)  # (Z, G)
    score = torch.nn.functional.one_hot(actions, N).double() - pi  # (Z, G, N)
    return ((r - b)[..., None] * score).sum(dim=1) / (M * G)  # (Z, N)


def exact_reward_bandit_gradient(logits: torch.Tensor, reward_table: torch.Tensor,
                                 group_size: int, kinds: Sequence[str] = BASELINE_KINDS,
                                 running_values: torch.Tensor | None = None,
                                 max_enumerate: int = 20_000, n_samples: int = 20_000,
                                 generator: torch.Generator | None = None
                                 ) -> RewardBanditGradients:
    """Mean and variance of the REINFORCE estimator on the reward bandit, per baseline kind.

    logits: (M, N) policy pi(a|m) = softmax(logits[m]) over N actions for M prompts.
    reward_table: (M, N) reward of action a on prompt m.
    group_size: G samples per prompt; one batch holds all M prompts, so the estimator is
        g = 1/(M G) sum_{m,i} (r_mi - b_mi) grad log pi(a_mi | m), the gradient of -loss.
    running_values: (M,) for kind "running": the per-prompt b(x) a running average holds
        when this batch is drawn (a function of past batches only); default: the true
        pass rate sum_a pi(a|m) r(m, a), the value it settles to while the policy is still.
    If N**G <= max_enumerate every group is enumerated exactly; otherwise `n_samples`
    groups per prompt are drawn (Monte Carlo, exact=False) with `generator`.
    """
    _check_reward_bandit(logits, reward_table, group_size, running_values)
    M, N = logits.shape
    G = group_size
    theta = logits.detach().double().requires_grad_(True)  # (M, N)
    R = reward_table.double()  # (M, N)
    pi = torch.softmax(theta, dim=-1)  # (M, N)
    true_grad = torch.autograd.grad((pi * R).sum(dim=1).mean(), theta)[0]  # (M, N)
    pi = pi.detach()  # (M, N)
    if running_values is None:
        running_values = (pi * R).sum(dim=1)  # (M,)
    exact = N ** G <= max_enumerate
    if exact:
        every_group = torch.tensor(list(itertools.product(range(N), repeat=G)))  # (N**G, G)
    out = RewardBanditGradients(true_grad=true_grad, exact=exact)
    for kind in kinds:
        means, var = [], 0.0
        for m in range(M):
            actions, weights = ((every_group, pi[m][every_group].prod(dim=1)) if exact else
                                (torch.multinomial(pi[m], n_samples * G, replacement=True,
                                                   generator=generator).reshape(n_samples, G),
                                 None))                                  # (Z, G), (Z,) | None
            g = prompt_estimates(pi[m], R[m], actions, kind, float(running_values[m]), M)  # (Z, N)
            means.append((weights[:, None] * g).sum(0) if exact else g.mean(0))  # (N,)
            var += gradient_variance(g, weights)  # prompts own disjoint rows of theta: traces add
        out.mean[kind] = torch.stack(means)  # (M, N)
        out.variance[kind] = var
    return out
