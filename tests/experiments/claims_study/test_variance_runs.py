"""refimpl.experiments.claims_study.variance_runs (claim C12): the closed-form per-prompt
variances agree with the resampling estimate of ``estimator_variance`` within its Monte Carlo
error, add up to the batch variance, b* is the best fixed baseline, the signal is unbiased,
and a small run returns every key, reproducibly, training the same policy as train_reinforce."""
import math
from dataclasses import replace

import pytest
import torch

from refimpl.experiments.claims_study.study_runs import RUNNERS
from refimpl.experiments.claims_study.variance_runs import (
    BASELINES, BINS, CHECKPOINTS, VARIANCE_METHODS, VarianceRunConfig, fixed_baseline_variance,
    per_prompt_signal, per_prompt_variance, pool_baselines, train_with_midpoint, variance_run)
from refimpl.methods.reinforce_analysis import estimator_variance
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce

DT = torch.float64


def _pool(B, N, W, seed, centred=False):
    """Random scores S (B N, W), their Gram blocks (B, N, N) and 0/1 rewards (B, N) with one
    right and one wrong sample in every row; ``centred``: E_pool[s] = 0 per prompt, as under
    the policy itself."""
    gen = torch.Generator().manual_seed(seed)
    S = torch.randn(B, N, W, generator=gen, dtype=DT) * torch.rand(B, N, 1, generator=gen, dtype=DT)
    if centred:
        S = S - S.mean(1, keepdim=True)
    R = (torch.rand(B, N, generator=gen, dtype=DT) < 0.4).to(DT)
    R[:, 0], R[:, -1] = 1.0, 0.0
    return S.reshape(B * N, W), S @ S.transpose(1, 2), R


def _resampled(K, R, G, bases, reps=8, resamples=25_000):
    """Mean and standard error of ``reps`` independent resampling estimates per baseline."""
    fixed = {k: v for k, v in bases.items() if k not in ("none", "rloo")}
    runs = [estimator_variance(K, R, G, kinds=("none", "rloo"), resamples=resamples,
                               fixed=fixed, generator=torch.Generator().manual_seed(100 + i))
            for i in range(reps)]
    out = {}
    for k in bases:
        vals = torch.tensor([r[k] for r in runs], dtype=DT)  # (reps,)
        out[k] = (vals.mean().item(), vals.std().item() / math.sqrt(reps))
    return out


@pytest.mark.parametrize("G", [4, 8])
def test_closed_forms_match_the_resampling_estimate(G):
    """Per prompt and for the batch (the per-prompt sum / B^2), every baseline: the exact value
    lies within 5 standard errors of the mean of 8 independent Monte Carlo estimates (the SE
    measured from their spread, about 0.3% here), and within 2% in any case. A formula off by
    a factor (N - 1) / N = 0.83 or missing RLOO's excess (5-10% at these G) fails."""
    S, blocks, R = _pool(3, 6, 5, seed=G)
    bases = pool_baselines(blocks, R)
    exact = per_prompt_variance(blocks, R, G, bases)
    assert set(exact) == set(BASELINES)
    for i in range(3):                                   # one prompt alone
        one = {k: v if isinstance(v, str) else v[i:i + 1] for k, v in bases.items()}
        mc = _resampled(blocks[i], R[i:i + 1], G, one)
        for k, (mean, se) in mc.items():
            assert abs(exact[k][i].item() - mean) < 5 * se + 1e-12, (i, k, exact[k][i], mean, se)
            assert exact[k][i].item() == pytest.approx(mean, rel=0.02)
    mc = _resampled(S @ S.T, R, G, bases)                # the batch of B = 3
    for k, (mean, se) in mc.items():
        batch = exact[k].sum().item() / 3 ** 2
        assert abs(batch - mean) < 5 * se and batch == pytest.approx(mean, rel=0.02), k


def test_rloo_costs_more_than_the_fixed_pass_rate_on_a_centred_pool():
    _, blocks, R = _pool(4, 8, 6, seed=1, centred=True)
    v = per_prompt_variance(blocks, R, 4, pool_baselines(blocks, R))
    assert (v["rloo"] > v["pass_rate"]).all() and (v["pass_rate"] < v["none"]).all()


def test_bstar_is_the_least_variance_fixed_baseline():
    """On a centred pool (E_pool[s] = 0, the policy's own condition) b* = E[r |s|^2] / E[|s|^2]
    minimises equation (1) over a grid of fixed b; with E_pool[s] != 0 the minimiser moves
    (the |E (r - b) s|^2 term depends on b), which is why the grid uses a centred pool."""
    _, blocks, R = _pool(3, 8, 6, seed=5, centred=True)
    bases = pool_baselines(blocks, R)
    best = per_prompt_variance(blocks, R, 4, bases)["bstar"]            # (B,)
    for b in torch.linspace(-0.5, 1.5, 201, dtype=DT):
        grid = fixed_baseline_variance(blocks, R, torch.full((3,), b.item(), dtype=DT), 4)  # (B,)
        assert (best <= grid + 1e-12).all(), b
    assert (best < per_prompt_variance(blocks, R, 4, bases)["none"]).all()


def test_one_right_sample_against_an_all_zero_prompt():
    """All rewards 0: no variance under any baseline and no signal. One right sample of N:
    Var(b = 0) = K_00 (N - 1) / (G N^2); the unbiased signal is 0 (one right sample carries no
    cross term) while the plug-in |mean r s|^2 = K_00 / N^2 is noise alone."""
    _, blocks, _ = _pool(2, 5, 4, seed=3)
    R = torch.zeros(2, 5, dtype=DT)
    R[1, 2] = 1.0
    v = per_prompt_variance(blocks, R, 4, pool_baselines(blocks, R))
    for k in BASELINES:
        assert v[k][0].item() == 0.0
    k00 = blocks[1, 2, 2].item()
    assert v["none"][1].item() == pytest.approx(k00 * 4 / (4 * 25), rel=1e-12)
    assert v["rloo"][1] > 0 and v["pass_rate"][1] > 0
    assert per_prompt_signal(blocks, R).tolist() == [0.0, 0.0]
    assert per_prompt_signal(blocks, R, unbiased=False)[1].item() == pytest.approx(k00 / 25)


def test_the_signal_is_unbiased_for_the_squared_mean_gradient():
    """Draw many pools of N = 4 from a fixed population of scored samples: the mean of the
    U-statistic is |E[r s]|^2 (within 5 s.e.), the plug-in's mean is far above it."""
    gen = torch.Generator().manual_seed(11)
    S = torch.randn(40, 6, generator=gen, dtype=DT)                     # (M, W) population
    r = (torch.rand(40, generator=gen, dtype=DT) < 0.3).to(DT)          # (M,)
    truth = ((r[:, None] * S).mean(0) ** 2).sum().item()
    idx = torch.randint(0, 40, (20_000, 4), generator=gen)              # (Z, N) pools
    Sp, Rp = S[idx], r[idx]                                             # (Z, N, W), (Z, N)
    blocks = Sp @ Sp.transpose(1, 2)                                    # (Z, N, N)
    u = per_prompt_signal(blocks, Rp)
    assert abs(u.mean().item() - truth) < 5 * u.std().item() / math.sqrt(len(u))
    assert per_prompt_signal(blocks, Rp, unbiased=False).mean().item() > 1.5 * truth


@pytest.mark.parametrize("bad, match", [
    (dict(rewards=torch.tensor([[0.0, float("nan"), 1.0]], dtype=DT)), "rewards"),
    (dict(rewards=torch.zeros(1, 4, dtype=DT)), "gram_blocks"),
    (dict(group_size=1), "group_size"),
    (dict(baselines={"x": "mean"}), "rloo"),
    (dict(baselines={"x": torch.zeros(2, dtype=DT)}), "baseline 'x'"),
])
def test_bad_pools_are_named(bad, match):
    _, blocks, R = _pool(1, 3, 2, seed=0)
    args = dict(gram_blocks=blocks, rewards=R, group_size=2, baselines={"none": torch.zeros(1, dtype=DT)})
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        per_prompt_variance(**args)


def test_the_middle_and_end_policies_are_those_of_one_train_reinforce_run(cpu_base):
    tcfg = ReinforceConfig(steps=2, prompts_per_step=4, group_size=4, lr=1e-3, eval_every=0, seed=3)
    middle, end = train_with_midpoint(cpu_base, tcfg)
    whole = train_reinforce(cpu_base, tcfg, progress=False).model
    half = train_reinforce(cpu_base, replace(tcfg, steps=1), progress=False).model
    for a, b, c, d in zip(end.parameters(), whole.parameters(), middle.parameters(), half.parameters()):
        assert torch.equal(a, b) and torch.equal(c, d)
    assert not all(torch.equal(a, c) for a, c in zip(end.parameters(), middle.parameters()))


TINY = VarianceRunConfig(budget_samples=64, prompts_per_step=8, group_size=4, pool_prompts=6,
                         pool_samples=4, sort_samples=4)


def test_a_small_run_has_every_key_and_is_reproducible(cpu_base):
    problems = cpu_base.heldout(8)
    out = variance_run("reinforce", cpu_base, 1e-4, TINY, problems)
    assert variance_run("reinforce", cpu_base, 1e-4, TINY, problems) == pytest.approx(out, nan_ok=True)
    assert (out["steps"], out["middle_step"], out["samples"]) == (2, 1, 64)
    assert sum(out[f"prompts/{b}"] for b in BINS) == out["prompts/all"] == 6
    for ckpt in CHECKPOINTS:
        for G in TINY.group_sizes:
            for b in BASELINES:
                v = out[f"var/{b}/G{G}/{ckpt}/all"]
                assert math.isfinite(v) and v >= 0
                assert out[f"snr/{b}/G{G}/{ckpt}/all"] >= 0 or out[f"signal/{ckpt}/all"] < 0
            for b in BASELINES[1:]:                       # finite unless no prompt has signal
                lr_ = out[f"logratio/{b}/G{G}/{ckpt}/all"]
                assert math.isfinite(lr_) or out[f"zero_signal/{ckpt}/all"] == 6 or lr_ == -math.inf
        for bin_ in BINS:                                 # an empty bin: NaN, a full one: a rate
            rate = out[f"pass_rate/{ckpt}/{bin_}"]
            assert math.isnan(rate) == (out[f"prompts/{bin_}"] == 0) and not rate < 0
    assert set(k.split("/")[0] for k in out) == {
        "steps", "middle_step", "samples", "prompts", "var", "logratio", "snr", "signal",
        "zero_signal", "pass_rate", "gain_per_1k"}
    gain = (out["pass_rate/end/all"] - out["pass_rate/start/all"]) / 64 * 1000
    assert out["gain_per_1k/all"] == pytest.approx(gain)


def test_bad_arguments_are_named_and_the_runner_is_registered(cpu_base):
    with pytest.raises(ValueError, match="method"):
        variance_run("grpo", cpu_base, 1e-4, TINY, cpu_base.heldout(2))
    with pytest.raises(ValueError, match="group_sizes"):
        variance_run("reinforce", cpu_base, 1e-4, replace(TINY, group_sizes=(1,)), cpu_base.heldout(2))
    with pytest.raises(ValueError, match="no problems"):
        variance_run("reinforce", cpu_base, 1e-4, TINY, [])
    assert VARIANCE_METHODS == ("reinforce",) and "variance" in RUNNERS
