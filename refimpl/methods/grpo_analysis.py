"""Measurements behind notebooks 03a and 03b (GRPO); ``refimpl.figures.plots_grpo`` draws them.

- the clip (03a): one group's step worked by the library, the clipped surrogate and its slope
  against the ratio rho (PPO, Schulman et al. 2017, eq. 7; DeepSeekMath eq. 3), and the clip
  experiment: several inner updates mu at a larger learning rate, clip on and off, measuring
  the clipped share, the KL from pi_old and held-out accuracy;
- the share of uniform groups, p^G + (1-p)^G (DAPO, Yu et al. 2025, sec. 3.2), predicted from
  per-prompt pass counts with the unbiased estimator C(c, G) / C(n, G) of p^G (claim C8);
- the noise of the GRPO gradient as a function of the group size G (claim C9), from
  per-sample gradients and their Gram matrix;
- the expected advantage mass per prompt with and without std scaling (Liu et al. 2025,
  Dr. GRPO, sec. 3.1: the "question-level difficulty bias", claim C11), and the share of the
  advantages' variance the true reward explains when the reward is slightly noisy (C11's
  signal-to-noise reading);
- the weight each loss aggregation gives a completion of a given length (Dr. GRPO's
  "response-level length bias", claim C11b).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace

import torch
from torch.func import functional_call, grad, vmap

from refimpl.core import checks
from refimpl.core.logprobs import sequence_logprobs, token_logprobs
from refimpl.core.training import adamw, heldout_accuracy, problem_sets, start_policy
from refimpl.methods.grpo import LOSS_AGGS, group_advantages, grpo_loss
from refimpl.methods.grpo_trainer import GRPOConfig, collect_batch, grpo_update
from refimpl.methods.kl import kl_estimate

# ------------------------------------------------------------------ uniform groups (C8)

def uniform_shares_from_counts(correct: torch.Tensor, n: int, G: int) -> dict[str, float]:
    """Unbiased estimates of E_prompts[p^G] (all correct) and E_prompts[(1-p)^G] (all wrong)
    from c correct out of n samples per prompt.

    C(c, G) / C(n, G) is the chance that G of the n samples drawn without replacement are all
    correct; its expectation over the n samples is exactly p^G. Plugging c / n into p^G instead
    would be biased upwards for G >= 2.

    Args:
        correct: (M,) number of correct samples for each of M prompts.
        n: samples per prompt (n >= G).
        G: group size.

    Returns:
        {"all_correct": ..., "all_wrong": ..., "uniform": their sum}.
    """
    if G > n:
        raise ValueError(f"need n >= G to estimate p^G without bias, got n={n}, G={G}")
    total, counts = math.comb(n, G), [int(c) for c in correct.tolist()]
    right = sum(math.comb(c, G) for c in counts) / total / len(counts)
    wrong = sum(math.comb(n - c, G) for c in counts) / total / len(counts)
    return {"all_correct": right, "all_wrong": wrong, "uniform": right + wrong}


def uniform_share_from_counts(correct: torch.Tensor, n: int, G: int) -> float:
    """Unbiased estimate of E_prompts[p^G + (1-p)^G] (see uniform_shares_from_counts)."""
    return uniform_shares_from_counts(correct, n, G)["uniform"]


# ------------------------------------------------------------------ gradient noise (C9)

def sequence_score_grads(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """Gradient of each completion's sequence log-prob w.r.t. all parameters.

    Args: the (N, P) prompt and (N, T) completion tensors of a rollout.
    Returns: (N, W) float tensor, W = number of trainable weights, row i = grad log pi(o_i | q_i).
    """
    params = {k: v.detach() for k, v in model.named_parameters()}

    def logp(p, pi, pm, ci, cm):  # one sequence: (P,), (P,), (T,), (T,)
        fwd = lambda i, m: functional_call(model, p, (i, m))  # noqa: E731
        return sequence_logprobs(fwd, pi[None], pm[None], ci[None], cm[None]).sum()

    with warnings.catch_warnings():  # vmap has no batching rule for CPU flash attention
        warnings.simplefilter("ignore", UserWarning)
        g = vmap(grad(logp), in_dims=(None, 0, 0, 0, 0))(
            params, prompt_ids, prompt_mask, completion_ids, completion_mask)
    return torch.cat([v.flatten(1) for v in g.values()], dim=1)  # (N, W)


def gradient_noise_vs_g(scores, rewards, lengths, pools, Gs, n_resamples=4000, generator=None,
                        scale="group", eps=1e-4) -> list[dict]:
    """Mean and noise of the GRPO policy gradient when each prompt gets G samples.

    At ratio 1 with beta = 0 and the "grpo" aggregation, the gradient of grpo_loss over B
    prompts with G samples each is g = sum_i c_i s_i with c_i = -A_i / (B G |o_i|) and
    s_i = grad log pi(o_i). Groups are redrawn with replacement from each prompt's pool
    of samples (so the pool is the population), and everything is computed from the Gram
    matrix S S^T, so no (resamples x W) tensor is ever formed.

    Args:
        scores: (M, W) per-sample gradients s_i of all pooled samples.
        rewards: (M,) their rewards; lengths: (M,) their completion lengths |o_i|.
        pools: list of B index tensors into 0..M-1, one per prompt.
        Gs: group sizes to try; n_resamples: Z redraws per G.

    Returns: one dict per G with "G", "mean_norm" (||E g||), "var" (E||g - E g||^2, the trace
    of the covariance), "rel_noise" (sqrt(var) / ||E g||), "frac_zero" (share of redrawn
    groups that were uniform) and "var_x_G" (var * G, the noise per sample budget).
    """
    gram = scores.double() @ scores.double().T  # (M, M)
    M, B = scores.shape[0], len(pools)
    out = []
    for G in Gs:
        coef = torch.zeros(n_resamples, M, dtype=torch.float64)  # (Z, M)
        zero = 0.0
        for pool in pools:
            pick = torch.randint(len(pool), (n_resamples, G), generator=generator)  # (Z, G)
            idx = pool[pick]  # (Z, G)
            adv = group_advantages(rewards[idx].reshape(-1).double(), G, scale=scale, eps=eps)
            adv = adv.view(n_resamples, G)  # (Z, G)
            zero += (adv == 0).all(dim=1).double().mean().item() / B
            coef.scatter_add_(1, idx, -adv / (B * G * lengths[idx].double()))  # (Z, M)
        mean_coef = coef.mean(0)  # (M,)
        second = ((coef @ gram) * coef).sum(1).mean()  # E ||g||^2
        mean_sq = mean_coef @ gram @ mean_coef  # ||E g||^2
        var = (second - mean_sq).item()
        norm = math.sqrt(max(mean_sq.item(), 0.0))
        out.append({"G": G, "mean_norm": norm, "var": var, "rel_noise": math.sqrt(max(var, 0)) / norm,
                    "frac_zero": zero, "var_x_G": var * G})
    return out


# ------------------------------------------------------------------ difficulty bias (C11)

def expected_abs_advantage(p: float, G: int, scale: str = "group", eps: float = 1e-4) -> float:
    """E[sum_i |A_i|] over one group of G binary rewards with pass rate p (exact enumeration).

    With scale="none" this is 2 G p (1-p) (1 - 1/G)-like and vanishes at p = 0 or 1 as the
    group variance does; with "group" the division by the std lifts prompts whose groups
    rarely disagree (Dr. GRPO's difficulty bias).
    """
    total = 0.0
    for c in range(G + 1):
        r = torch.tensor([1.0] * c + [0.0] * (G - c), dtype=torch.float64)  # (G,)
        a = group_advantages(r, G, scale=scale, eps=eps).abs().sum().item()
        total += math.comb(G, c) * p**c * (1 - p) ** (G - c) * a
    return total


def _check_signal_args(pass_rates: torch.Tensor, group_size: int, sigma: float, groups: int) -> None:
    """advantage_signal_share's inputs: (P,) pass rates in [0, 1], G >= 2, sigma >= 0, groups >= 1."""
    if pass_rates.dim() != 1 or not pass_rates.numel():
        raise ValueError(f"pass_rates must be a non-empty (P,) tensor, got shape {tuple(pass_rates.shape)}")
    if not (torch.isfinite(pass_rates).all() and (pass_rates >= 0).all() and (pass_rates <= 1).all()):
        raise ValueError("pass_rates must be probabilities in [0, 1] (NaN is not one)")
    checks.count("group_size", group_size, 2)
    checks.positive("sigma", sigma, "the spread of the reward's noise", allow_zero=True)
    checks.count("groups_per_prompt", groups, 1)


def advantage_signal_share(pass_rates: torch.Tensor, group_size: int, sigma: float,
                           scale: str = "group", groups_per_prompt: int = 64,
                           generator: torch.Generator | None = None) -> float:
    """The share of the advantages' variance that the true 0/1 reward explains when the reward
    the advantages see is slightly noisy (claim C11, its signal-to-noise reading).

    For each prompt of ``pass_rates`` (P,), ``groups_per_prompt`` groups of G: v_i ~ Bernoulli(p),
    r_i = v_i + sigma z_i (a verifier plus noise, as a reward model near it), and
    A = group_advantages(r, G, scale). The signal is the group-centred true reward
    u_i = v_i - mean_group(v), and the share is the R^2 of A on u over all samples,

        share = (sum_i A_i u_i)^2 / (sum_i A_i^2 * sum_i u_i^2)            (both centred per group).

    Without scaling A = u + sigma (z - z_bar): the share tends to 1 as sigma -> 0. With std
    scaling a uniform group's advantages are its noise divided by the noise's own spread, about
    unit size whatever sigma: variance without signal. Returns a float in [0, 1] (0 when no
    group holds both a right and a wrong answer).
    """
    _check_signal_args(pass_rates, group_size, sigma, groups_per_prompt)
    gen = generator or torch.Generator().manual_seed(0)
    p = pass_rates.double().repeat_interleave(groups_per_prompt)[:, None]        # (N, 1) N = P * groups
    v = (torch.rand(p.shape[0], group_size, generator=gen, dtype=torch.float64) < p).double()  # (N, G)
    z = torch.randn(v.shape, generator=gen, dtype=torch.float64)                # (N, G)
    A = group_advantages(v + sigma * z, group_size, scale=scale).view_as(v)     # (N, G)
    u = v - v.mean(dim=1, keepdim=True)                                         # (N, G)
    denom = (A.pow(2).sum() * u.pow(2).sum()).item()
    return (A * u).sum().item() ** 2 / denom if denom > 0 else 0.0


def sequence_weights(mask: torch.Tensor, loss_agg: str, max_tokens: int | None = None) -> torch.Tensor:
    """The weight w_i that ``grpo_loss``'s aggregation gives completion i (claim C11b).

    At ratio 1 with beta = 0 every token of o_i gets the same weight, so the loss's gradient
    is -sum_i w_i A_i grad log pi(o_i): w_i scales the push on the whole completion.

        grpo      w_i = 1 / (B G |o_i|)      short completions pushed harder (length bias)
        dapo      w_i = 1 / sum_j |o_j|      the same for every completion of the batch
        dr_grpo   w_i = 1 / (B G T)          a constant (T = max_tokens, default the width)

    mask: (B*G, T) bool completion mask; returns (B*G,) float64 weights.
    """
    checks.one_of("loss_agg", loss_agg, LOSS_AGGS)
    checks.tensor("mask", mask, dims=(2,), floating=False)
    rows, T = mask.shape                                               # rows = B*G
    lengths = mask.sum(1).double()                                     # (B*G,)
    if loss_agg == "grpo":
        return 1.0 / (rows * lengths.clamp(min=1))
    if loss_agg == "dapo":
        return torch.full((rows,), 1.0 / lengths.sum().clamp(min=1).item(), dtype=torch.float64)
    return torch.full((rows,), 1.0 / (rows * (max_tokens or T)), dtype=torch.float64)


# ------------------------------------------------------------------ the clip (notebook 03a)

P_OLD = 0.25   # the hand-made tokens' probability under pi_old: a ratio rho <= 4 keeps pi_theta <= 1


def _one_token_batch(ratios: torch.Tensor):
    """(logps, old_logps, mask) of N one-token completions whose ratios pi_theta / pi_old are
    ``ratios`` (N,): every token had probability P_OLD under pi_old. logps requires grad."""
    old = torch.full((len(ratios), 1), math.log(P_OLD), dtype=torch.float64)   # (N, 1)
    logps = (old + ratios.log()[:, None]).clone().requires_grad_(True)          # (N, 1)
    return logps, old, torch.ones(len(ratios), 1, dtype=torch.bool)             # (N, 1) x 3


def worked_group(rewards, ratios, clip_eps: float = 0.2) -> tuple[list[dict], dict]:
    """One GRPO group, one step, by the library: advantages (``group_advantages``), the clipped
    surrogate and its gradient (``grpo_loss`` and autograd) on a hand-made batch.

    Each of the G completions is one token long, so its token ratio rho_i is its completion's
    (DeepSeekMath eq. 3 with |o_i| = 1, beta = 0).

    Args:
        rewards: G rewards of one prompt's completions; ratios: their G ratios pi_theta / pi_old
            (in (0, 4]), as after some inner updates; clip_eps: epsilon.

    Returns:
        (rows, summary): one dict per completion with "r", "A" (advantage), "rho", "rho_A"
        (rho A), "clip_A" (clip(rho, 1 - eps, 1 + eps) A), "term" (the min of the two, the
        objective's term), "flat" (True where the clip sets the gradient to 0) and "grad"
        (d loss / d log pi_theta of the token); summary: "loss" and grpo_loss's "clip_ratio".
    """
    r = torch.as_tensor(rewards, dtype=torch.float64)                             # (G,)
    rho = torch.as_tensor(ratios, dtype=torch.float64)                            # (G,)
    adv = group_advantages(r, len(r))                                             # (G,)
    logps, old, mask = _one_token_batch(rho)                                      # (G, 1) x 3
    loss, metrics = grpo_loss(logps, old, adv, mask, clip_eps=clip_eps)
    (grad,) = torch.autograd.grad(loss, logps)                                    # (G, 1)
    clipped = rho.clamp(1 - clip_eps, 1 + clip_eps)                               # (G,)
    rows = [{"r": r[i].item(), "A": adv[i].item(), "rho": rho[i].item(),
             "rho_A": (rho[i] * adv[i]).item(), "clip_A": (clipped[i] * adv[i]).item(),
             "term": torch.min(rho[i] * adv[i], clipped[i] * adv[i]).item(),
             "flat": bool(grad[i, 0] == 0), "grad": grad[i, 0].item()} for i in range(len(r))]
    return rows, {"loss": loss.item(), "clip_ratio": metrics["clip_ratio"]}


def surrogate_and_slope(ratios: torch.Tensor, advantage: float, clip_eps: float = 0.2):
    """The clipped surrogate min(rho A, clip(rho, 1 - eps, 1 + eps) A) of one token and its
    slope d/d rho, at each ratio, through ``grpo_loss`` and autograd (one row per ratio).

    ratios: (N,) in (0, 4]; returns (objective (N,), slope (N,)), float64. The slope is A
    inside the band and on the side the clip does not guard, and exactly 0 where it does
    (rho > 1 + eps with A > 0, rho < 1 - eps with A < 0).
    """
    rho = torch.as_tensor(ratios, dtype=torch.float64)                            # (N,)
    logps, old, mask = _one_token_batch(rho)                                      # (N, 1) x 3
    adv = torch.full((len(rho),), float(advantage), dtype=torch.float64)          # (N,)
    # "dr_grpo" with T = 1 divides the sum by N: loss = -(1/N) sum_i term_i
    loss, _ = grpo_loss(logps, old, adv, mask, clip_eps=clip_eps, loss_agg="dr_grpo")
    (grad,) = torch.autograd.grad(loss, logps)                                    # (N, 1)
    clipped = rho.clamp(1 - clip_eps, 1 + clip_eps)                               # (N,)
    objective = torch.min(rho * advantage, clipped * advantage)                   # (N,)
    slope = -len(rho) * grad[:, 0] / rho           # d term / d rho = (d term / d log rho) / rho
    return objective, slope


# ------------------------------------------------- when the clip fires (notebook 03a)

NO_CLIP = {"clip_eps": 0.999, "clip_eps_high": 1e9}   # the band [0.001, 1e9]: no ratio reaches it


def kl_to_old(policy, batch, temperature: float = 1.0, band: float = 0.2) -> dict[str, float]:
    """How far ``policy`` has moved from pi_old, measured on the batch pi_old sampled.

    On tokens drawn from pi_old, with the ratio rho = pi_theta / pi_old of each token,
    k3 = rho - 1 - log rho estimates KL(pi_old || pi_theta) per token without bias (Schulman
    2020, with pi_old as the sampler: E_old[rho] = 1); ``kl_estimate(old, new, "k3")`` is it.

    Args:
        policy: the policy after its updates; batch: the Rollout pi_old sampled (old_logps
            (B*G, T), completion_mask (B*G, T)); temperature: the sampler's; band: epsilon.

    Returns:
        {"kl_old": mean k3 per completion token, "outside": share of completion tokens whose
        ratio rho = pi_theta / pi_old lies outside [1 - band, 1 + band]}.
    """
    args = (batch.prompt_ids, batch.prompt_mask, batch.completion_ids, batch.completion_mask)
    with torch.no_grad():
        new = token_logprobs(policy, *args, temperature=temperature,
                             group_size=batch.group_size)                          # (B*G, T)
    mask = batch.completion_mask                                                    # (B*G, T)
    zeros = torch.zeros_like(new)                                                   # (B*G, T)
    old = torch.where(mask, batch.old_logps, zeros)                                 # (B*G, T)
    k3 = kl_estimate(old, torch.where(mask, new, zeros), "k3")                      # (B*G, T)
    rho = torch.exp(torch.where(mask, new, zeros) - old)                            # (B*G, T)
    n = mask.sum().item()
    return {"kl_old": (k3 * mask).sum().item() / n,
            "outside": (((rho - 1).abs() > band) & mask).sum().item() / n}


def clip_arm(base, cfg: GRPOConfig, heldout, band: float = 0.2) -> dict:
    """One arm of the clip experiment: ``cfg.steps`` GRPO steps made of the trainer's own
    pieces (``collect_batch``, ``grpo_update``), each followed by ``kl_to_old``; then greedy
    accuracy on ``heldout``.

    Returns {"mu", "lr", "clip_eps", "clip_ratio" (grpo_loss's, over the inner updates and the
    steps), "kl_old" and "outside" (after each step's last update, averaged over steps),
    "heldout_acc"}.
    """
    policy, device, gen = start_policy(base, None, cfg.seed)
    ref = base.reference().to(device) if cfg.beta > 0 else None
    opt = adamw(policy.parameters(), cfg.lr)
    _, pool, rng = problem_sets(base, replace(cfg, eval_every=0))
    steps = []
    for _ in range(cfg.steps):
        batch, _ = collect_batch(policy, base, cfg, lambda n: rng.sample(pool, n),
                                 base.task.verify, gen)
        inner = grpo_update(policy, ref, opt, batch, cfg)
        steps.append({"clip_ratio": sum(m["clip_ratio"] for m in inner) / len(inner),
                      **kl_to_old(policy, batch, cfg.temperature, band)})
    mean = {k: sum(s[k] for s in steps) / len(steps) for k in steps[0]}
    return {"mu": cfg.inner_updates, "lr": cfg.lr, "clip_eps": cfg.clip_eps, **mean,
            "heldout_acc": heldout_accuracy(policy.eval(), base, heldout)}


def clip_arms(steps: int = 10, prompts_per_step: int = 8, mu: int = 4, lr: float = 2e-4,
              seed: int = 0) -> dict[str, GRPOConfig]:
    """The arms of notebook 03a's clip experiment, B = prompts_per_step prompts x G = 8:
    GRPO at mu = 2 and lr 5e-5 (notebook 03a's run; the trainer's defaults otherwise), then
    ``mu`` inner updates at ``lr`` with the clip (epsilon = 0.2) and without it (NO_CLIP)."""
    small = {"steps": steps, "prompts_per_step": prompts_per_step, "eval_every": 0, "seed": seed}
    return {"mu 2, lr 5e-05, clip 0.2": GRPOConfig(**small, lr=5e-5),
            f"mu {mu}, lr {lr:.0e}, clip 0.2": GRPOConfig(**small, inner_updates=mu, lr=lr),
            f"mu {mu}, lr {lr:.0e}, no clip": GRPOConfig(**small, inner_updates=mu, lr=lr,
                                                          **NO_CLIP)}


def clip_experiment(base, arms: dict[str, GRPOConfig] | None = None, heldout=None) -> list[dict]:
    """Every arm of ``arms`` (default ``clip_arms()``) from the base: one row per arm, the
    arm's name under "arm" and ``clip_arm``'s measurements. heldout: the problems of the
    accuracy (default base.heldout(256), the trainer's)."""
    heldout = base.heldout(256) if heldout is None else heldout
    return [{"arm": name, **clip_arm(base, cfg, heldout)}
            for name, cfg in (arms or clip_arms()).items()]


def clip_table(rows: list[dict], start_acc: float | None = None) -> str:
    """``clip_experiment``'s rows as a small aligned table (one line per arm); start_acc, the
    base's held-out accuracy, adds a first line "no training"."""
    head = (f"{'arm':<26} {'clip_ratio':>10} {'rho outside 1 +- 0.2':>21} {'KL to pi_old':>13} "
            f"{'held-out acc':>13}")
    lines = [head]
    if start_acc is not None:
        lines.append(f"{'no training (the base)':<26} {'':>10} {'':>21} {'':>13} {start_acc:>13.3f}")
    for r in rows:
        lines.append(f"{r['arm']:<26} {r['clip_ratio']:>10.4f} {r['outside']:>21.3f} "
                     f"{r['kl_old']:>13.4f} {r['heldout_acc']:>13.3f}")
    return "\n".join(lines)
