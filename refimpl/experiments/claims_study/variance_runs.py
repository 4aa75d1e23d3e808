"""The variance of the REINFORCE gradient estimate by prompt difficulty, during training: the
experiment that tests the sentence of claim C12 itself ("binary rewards are sparse ... this
makes learning slow and high-variance"), apart from final accuracy.

For one prompt x, a pool of N completions y_j ~ pi(.|x) with scores s_j = grad log pi(y_j | x)
and rewards r_j in {0, 1}, and the estimate of G i.i.d. draws from that pool with baseline b,

    g = (1/G) sum_i (r_i - b_i) s_i,

the variance (trace of the covariance) for a FIXED b is exactly

    Var(g) = (1/G) [E (r - b)^2 |s|^2 - |E (r - b) s|^2]      (expectations over the pool),   (1)

a function of the prompt's (N, N) Gram block K = S S^T alone; RLOO's random b_i adds
``refimpl.methods.reinforce_analysis.rloo_excess_variance``'s term, called on one prompt's
block. These are the exact values of the resampling that ``estimator_variance`` estimates.
The baselines: "none" (b = 0), "rloo", "pass_rate" (b = the pool's pass rate p(x), the exact
mean reward of the resampling distribution) and "bstar" (``best_constant_baseline``).
Groups of different prompts are independent, so the variance of a batch mean is the sum of the
per-prompt variances over B^2: only the per-prompt blocks are needed, one prompt at a time.

The signal is |grad J(x)|^2 = |E_pi[r s]|^2, the squared mean that every unbiased baseline
shares under the policy (where E_pi[s] = 0). Under the pool's empirical distribution E[s] is
not 0, so a fixed b shifts the resampled mean by -b E[s]; the signal is therefore estimated
without E[s], by the U-statistic sum_{j != k} r_j r_k K_jk / (N (N - 1)), unbiased for
|E_pi[r s]|^2 because the pool is N i.i.d. draws from pi. (The plug-in r^T K r / N^2 adds
Var(r s) / N of pure noise: a prompt with one right sample would show an SNR near G / N made
of noise alone.) SNR = signal / Var(g).

A run (``variance_run``), REINFORCE with the RLOO baseline as C12's arm trains it:

    sort the pool prompts once: sort_samples from the base -> hard / medium / easy
        (``difficulty_bins``; measured on other samples, so no selection bias)
    train budget / (B G) steps, keeping the policy after half of them (one optimiser, one run)
    at start (the base), middle and end: N fresh samples per pool prompt, the Gram blocks,
        Var(g) per baseline and G in group_sizes, the signal, each bin's pass rate
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from refimpl.core import checks
from refimpl.core.rewards import make_reward_fn
from refimpl.core.rollouts import sample_groups, select_groups
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.reinforce_analysis import (best_constant_baseline, difficulty_bins,
                                                rloo_excess_variance, score_gram)
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce

VARIANCE_METHODS = ("reinforce",)                   # REINFORCE with the RLOO baseline (C12's arm)
BASELINES = ("none", "rloo", "pass_rate", "bstar")
CHECKPOINTS = ("start", "middle", "end")
BINS = ("hard", "medium", "easy")                   # difficulty_bins' 0, 1, 2
_MEASURE_SEED = 20_000                              # the sampling seeds of the measurements


@dataclass
class VarianceRunConfig:
    """One run: ``budget_samples`` completions in steps of B x G (REINFORCE, RLOO), measured
    on ``pool_prompts`` prompts with ``pool_samples`` fresh samples each at every checkpoint,
    sorted by difficulty on ``sort_samples`` other samples, for each G of ``group_sizes``."""

    budget_samples: int = 2560
    prompts_per_step: int = 16       # B
    group_size: int = 8              # G of training
    seed: int = 0
    pool_prompts: int = 24
    pool_samples: int = 16           # N per prompt at each checkpoint
    sort_samples: int = 8            # per prompt, drawn once from the base, to sort only
    group_sizes: tuple = (4, 8)      # the G of the measured estimates

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 2,
                            "seed": None, "pool_prompts": 1, "pool_samples": 2,
                            "sort_samples": 1})
        if not isinstance(self.group_sizes, (tuple, list)) or not self.group_sizes:
            raise TypeError("VarianceRunConfig.group_sizes must be a non-empty tuple of ints, "
                            f"got {self.group_sizes!r}")
        for G in self.group_sizes:
            checks.count("VarianceRunConfig.group_sizes entry", G, 2, "RLOO needs G >= 2")


def _check_pool(gram_blocks, rewards, group_size: int) -> None:
    """(B, N, N) finite Gram blocks, (B, N) finite rewards of the same B and N >= 2, G >= 2."""
    checks.tensor("gram_blocks", gram_blocks, dims=(3,))
    B, N = checks.tensor("rewards", rewards, dims=(2,), floating=False).shape
    checks.tensor("gram_blocks", gram_blocks, shape=(B, N, N), like="rewards (B, N)")
    checks.finite("gram_blocks", gram_blocks)
    checks.finite("rewards", rewards.double(), hint="check the verifier output")
    checks.count("group_size", group_size, 2, "RLOO needs the other G - 1 samples")
    if N < 2:
        raise ValueError(f"a pool needs N >= 2 samples per prompt, got {N}")


def fixed_baseline_variance(gram_blocks, rewards, b, group_size: int) -> torch.Tensor:
    """Equation (1) per prompt: Var(g) of G i.i.d. pool draws with the fixed baseline b(x).

    gram_blocks: (B, N, N); rewards: (B, N); b: (B,). Returns (B,) float64:
    (1/G) [mean_j c_j^2 K_jj - c^T K c / N^2] with c = r - b."""
    K, N = gram_blocks.double(), rewards.shape[1]                       # (B, N, N)
    c = rewards.double() - b.double()[:, None]                          # (B, N)
    second = (c ** 2 * K.diagonal(dim1=1, dim2=2)).mean(1)              # (B,) E c^2 |s|^2
    mean_sq = (c[:, None, :] @ K @ c[:, :, None]).flatten() / N ** 2    # (B,) |E c s|^2
    return (second - mean_sq) / group_size                              # (B,)


def pool_baselines(gram_blocks, rewards) -> dict:
    """The baselines of BASELINES for ``per_prompt_variance``: {"none": 0, "rloo": "rloo",
    "pass_rate": p(x) (the pool's mean reward), "bstar": b*(x)}, each fixed one (B,)."""
    R = rewards.double()                                                # (B, N)
    bstar = torch.stack([best_constant_baseline(K, r[None]) for K, r in zip(gram_blocks, R)])
    return {"none": torch.zeros(R.shape[0], dtype=torch.float64), "rloo": "rloo",
            "pass_rate": R.mean(1), "bstar": bstar.flatten()}            # (B,) each


def per_prompt_variance(gram_blocks, rewards, group_size: int, baselines: dict) -> dict:
    """Var(g) of each prompt's G-sample estimate g = (1/G) sum_i (r_i - b_i) s_i, exactly, for
    G i.i.d. draws from the prompt's pool (the resampling of ``estimator_variance``).

    gram_blocks: (B, N, N) each prompt's K = S S^T; rewards: (B, N); baselines: {name: (B,)
    fixed b(x), or "rloo"} (``pool_baselines``). RLOO is the fixed b = p(x) of equation (1)
    plus ``rloo_excess_variance`` of the prompt's block. Returns {name: (B,) float64}; the
    variance of a batch mean over the B prompts is their sum / B^2."""
    _check_pool(gram_blocks, rewards, group_size)
    B, R = rewards.shape[0], rewards.double()                           # (B, N)
    out = {}
    for name, b in baselines.items():
        if isinstance(b, str):
            if b != "rloo":
                raise ValueError(f"baseline {name!r}: the only named baseline is 'rloo', got {b!r}")
            excess = torch.tensor([rloo_excess_variance(K, r[None], group_size)
                                   for K, r in zip(gram_blocks, R)], dtype=torch.float64)  # (B,)
            out[name] = fixed_baseline_variance(gram_blocks, R, R.mean(1), group_size) + excess
            continue
        label = f"baseline {name!r}"
        checks.tensor(label, b, shape=(B,), floating=False, like="rewards' rows")
        checks.finite(label, b.double())
        out[name] = fixed_baseline_variance(gram_blocks, R, b, group_size)  # (B,)
    return out


def per_prompt_signal(gram_blocks, rewards, unbiased: bool = True) -> torch.Tensor:
    """|grad J(x)|^2 = |E_pi[r s]|^2 per prompt (module docstring); returns (B,) float64.

    unbiased: the U-statistic sum_{j != k} r_j r_k K_jk / (N (N - 1)) (may be slightly
    negative: it is noise around a small value); False: the plug-in r^T K r / N^2."""
    _check_pool(gram_blocks, rewards, 2)
    K, R, N = gram_blocks.double(), rewards.double(), rewards.shape[1]  # (B, N, N), (B, N)
    total = (R[:, None, :] @ K @ R[:, :, None]).flatten()               # (B,) |sum r s|^2
    if not unbiased:
        return total / N ** 2                                           # (B,)
    diag = (R ** 2 * K.diagonal(dim1=1, dim2=2)).sum(1)                 # (B,) sum |r s|^2
    return (total - diag) / (N * (N - 1))                               # (B,)


def prompt_grams(model, rollout) -> torch.Tensor:
    """(B, N, N): each prompt's Gram block of ``score_gram``, computed one prompt at a time
    (N x W scores at once, never the whole B N x W)."""
    B = len(rollout.problems)
    blocks = []
    for i in range(B):
        keep = torch.arange(B) == i                                     # (B,)
        blocks.append(score_gram(model, select_groups(rollout, keep)))  # (N, N)
    return torch.stack(blocks)                                          # (B, N, N)


def train_with_midpoint(base, tcfg: ReinforceConfig):
    """(middle, end): the policy after tcfg.steps // 2 steps (a copy of the base if that is 0)
    and after all of them, of ONE ``train_reinforce`` run, the middle one kept by its
    ``on_step`` hook. (Two calls of ``train_reinforce``, the second continuing from the first's
    model, would restart AdamW's moments and redraw the first half's prompts and samples,
    seeded alike: another run.)"""
    mid, kept = tcfg.steps // 2, {}

    def keep_middle(step, policy):
        if step == mid:
            kept["middle"] = copy.deepcopy(policy)

    end = train_reinforce(base, tcfg, progress=False, on_step=keep_middle).model
    middle = kept["middle"] if mid else base.policy()
    return middle.eval(), end


def sample_pool(model, base, problems, n: int, seed: int):
    """n samples per problem from ``model`` (outcome reward), generator seeded by ``seed``."""
    gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    return sample_groups(model, base.tokenizer, base.task, problems, n,
                         reward_fn=make_reward_fn(base.task, "outcome"), generator=gen)


def measure_checkpoint(model, base, problems, cfg: VarianceRunConfig, seed: int) -> dict:
    """One checkpoint, per prompt: {"rewards": (B, N) of fresh pool samples, "signal": (B,),
    (baseline, G): (B,) Var(g) for each of BASELINES and cfg.group_sizes}."""
    ro = sample_pool(model, base, problems, cfg.pool_samples, seed)
    R = ro.rewards.detach().cpu().double().view(len(problems), cfg.pool_samples)  # (B, N)
    K = prompt_grams(model, ro)                                         # (B, N, N)
    out = {"rewards": R, "signal": per_prompt_signal(K, R)}
    bases = pool_baselines(K, R)
    for G in cfg.group_sizes:
        for name, v in per_prompt_variance(K, R, G, bases).items():
            out[(name, G)] = v                                          # (B,)
    return out


def _log_ratio(var_b, var_none) -> float:
    """ln(sum var_b / sum var_none) over the prompts given: NaN if none has var_none > 0,
    -inf if the baseline removes all of their variance (every one all right)."""
    if not var_none.sum() > 0:
        return float("nan")
    return math.log(var_b.sum().item() / var_none.sum().item()) if var_b.sum() > 0 else -math.inf


def _bin_mean(values, rows) -> float:
    """Mean of values (B,) over the rows (B,) bool; NaN for an empty bin."""
    return values[rows].mean().item() if rows.any() else float("nan")


def bin_values(m: dict, bins, ckpt: str, group_sizes) -> dict:
    """The flat values of one checkpoint ``m`` (``measure_checkpoint``) for each bin of "all"
    and BINS (``bins`` (B,) from difficulty_bins): var, logratio, snr, signal, zero_signal and
    pass_rate keys (``variance_run``'s docstring); NaN for an empty bin."""
    out = {}
    for bin_name, rows in [("all", bins >= 0)] + [(n, bins == i) for i, n in enumerate(BINS)]:
        live = rows & (m[("none", group_sizes[0])] > 0)                 # (B,) b = 0 has signal
        out[f"zero_signal/{ckpt}/{bin_name}"] = float((rows & ~live).sum())
        out[f"signal/{ckpt}/{bin_name}"] = _bin_mean(m["signal"], rows)
        out[f"pass_rate/{ckpt}/{bin_name}"] = _bin_mean(m["rewards"], rows)
        for G in group_sizes:
            for b in BASELINES:
                var = m[(b, G)]                                         # (B,)
                key = f"{b}/G{G}/{ckpt}/{bin_name}"
                out[f"var/{key}"] = _bin_mean(var, rows)
                noise = var[rows].sum()                                 # () 0 for an empty bin
                out[f"snr/{key}"] = (m["signal"][rows].sum() / noise).item() if noise > 0 \
                    else float("nan")
                if b != "none":
                    out[f"logratio/{key}"] = _log_ratio(var[live], m[("none", G)][live])
    return out


def sparsity_reading(out: dict, samples: int) -> dict:
    """gain_per_1k/<bin>: the pass-rate change from start to end per 1,000 training
    completions, for "all" and each bin, and gain_per_1k/hard_minus_easy."""
    gain = {f"gain_per_1k/{b}": (out[f"pass_rate/end/{b}"] - out[f"pass_rate/start/{b}"])
            / samples * 1000 for b in ("all",) + BINS}
    gain["gain_per_1k/hard_minus_easy"] = gain["gain_per_1k/hard"] - gain["gain_per_1k/easy"]
    return gain


def variance_run(method: str, base, lr: float, cfg: VarianceRunConfig, problems) -> dict:
    """Train REINFORCE (RLOO) from ``base`` at ``lr`` and measure the gradient variance of each
    baseline by difficulty at start, middle and end (module docstring) on the first
    cfg.pool_prompts of ``problems``. ``method``: one of VARIANCE_METHODS.

    Returns a flat dict of floats, <b> in BASELINES, <G> in cfg.group_sizes, <ckpt> in
    CHECKPOINTS, <bin> in ("all",) + BINS (bins from the base's sort samples; every value of
    an empty bin is NaN):
    var/<b>/G<G>/<ckpt>/<bin>        mean over the bin's prompts of Var(g) (one prompt's g)
    logratio/<b>/G<G>/<ckpt>/<bin>   b != "none": ln(sum Var_b / sum Var_none) over the bin's
        prompts with Var_none > 0: the variance ratio of a batch of the bin's prompts. A ratio of sums, not
        a mean of per-prompt logs: an all-right prompt has Var_b = 0 (ln 0) for the baselines
        that track p(x), and the batch ratio is what the update feels. -inf only if every
        counted prompt is all right; NaN if none is counted
    zero_signal/<ckpt>/<bin>         prompts left out of logratio: all rewards 0 (Var = 0 for
        every baseline and signal 0)
    signal/<ckpt>/<bin>              mean of the unbiased |E_pi[r s]|^2
    snr/<b>/G<G>/<ckpt>/<bin>        sum signal / sum Var_b over the bin (NaN if that is 0)
    pass_rate/<ckpt>/<bin>           mean reward of the checkpoint's pool samples
    gain_per_1k/<bin>, gain_per_1k/hard_minus_easy   (``sparsity_reading``), per 1,000 of
        "samples" (= budget_samples when B G divides it)
    prompts/<bin> (from the sort samples), steps, middle_step, samples.
    The measuring draws are seeded by cfg.seed alone (_MEASURE_SEED + 10 seed, + 1, 2, 3 at
    the checkpoints): every lr and arm of a run seed sorts and measures on the same draws of
    the base, and the start values are the same for all of them."""
    cfg = check_study_run("variance_run", method, VARIANCE_METHODS, lr, cfg, VarianceRunConfig,
                          problems)
    prompts, seed0 = list(problems[:cfg.pool_prompts]), _MEASURE_SEED + 10 * cfg.seed
    sort = sample_pool(base.model, base, prompts, cfg.sort_samples, seed0)
    bins = difficulty_bins(sort.rewards.detach().cpu().view(len(prompts), -1))  # (B,)
    steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
    tcfg = ReinforceConfig(steps=steps, lr=lr, prompts_per_step=cfg.prompts_per_step,
                           group_size=cfg.group_size, baseline="rloo", eval_every=0,
                           seed=cfg.seed)
    middle, end = train_with_midpoint(base, tcfg)
    samples = steps * cfg.prompts_per_step * cfg.group_size
    out = {"steps": float(steps), "middle_step": float(steps // 2), "samples": float(samples)}
    out.update({f"prompts/{b}": float((bins == i).sum()) for i, b in enumerate(BINS)},
               **{"prompts/all": float(len(prompts))})
    for k, (ckpt, model) in enumerate(zip(CHECKPOINTS, (base.policy().eval(), middle, end))):
        m = measure_checkpoint(model, base, prompts, cfg, seed0 + 1 + k)
        out.update(bin_values(m, bins, ckpt, tuple(cfg.group_sizes)))
    out.update(sparsity_reading(out, samples))
    return out
