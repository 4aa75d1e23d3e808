"""The head-to-head study: one SFT base, one budget, DPO vs GRPO vs REINFORCE vs PPO.

Every method starts from the same cached SFT base (``load_base(preset)``), is judged on the
same held-out problems (greedy accuracy), and gets the same budget, either

* equal **wall time** (``budget_s``): seconds on the training clock of each trainer
  (``refimpl.core.training.Clock``: sampling, scoring, reference passes and updates; held-out
  evaluation excluded). DPO's clock also counts the generation of its preference pairs from
  base samples, which is the price of its data. Fair for the question "what does this
  machine give me in T seconds"; it depends on the hardware and on implementation details
  (KV cache, batch sizes) and is noisy on a shared machine.
* equal **generated samples** (``budget_samples``): completions drawn from a policy. The online
  methods draw B*G per step; DPO draws all of them up front (``budget_samples // G`` prompts x
  G samples from the base, paired correct vs wrong) and then trains ``dpo_epochs`` passes over
  the pairs, which cost no new samples. Fair for sample efficiency, when generation or
  verification is the bottleneck (unit tests to run, labels to buy); it ignores update cost.

The number of steps that fits a wall-time budget is calibrated once per method: a short run
of ``calib_steps`` steps measures seconds per step (first seed, first step left out), and
every seed then runs the same number of steps, so the seeds differ only in their randomness
(DPO's step count under a sample budget likewise comes from the first seed's pairs). On a busy machine the
realised wall time can differ from the budget by tens of percent (the table reports it, and
the accuracy-vs-time figure compares methods at equal time). Under a sample budget the online
methods run the fewest whole steps of B*G samples that reach it.

Every method is evaluated at the same points (``eval_fractions``): an online run after step 0,
every ``steps // evals`` steps and the last, which under a sample budget are also its shares of
the budget; an offline method, whose samples are all drawn before its first step, after the
same shares of its own steps (its trainer's ``eval_at``). Each point of a run's curve records
that share as ``progress``.

Compute is also estimated in FLOPs, with each method's model in the registry
(``refimpl.methods.registry``): 2 N per token for a forward pass and 6 N for a forward + backward pass.
DPO's data costs 2 N * n_gen L once for sampling the pairs and 2 N * 2 n_pairs L for the frozen
reference on them.

The methods (``dpo``, ``rpo``, ``online_dpo``, ``grpo``, ``reinforce``, ``ppo``) and what
each one is are rows of the registry ``refimpl.methods.registry.METHODS``; online DPO separates
"offline data" from "the DPO loss". This module knows an offline method only through its row's
``offline`` (``refimpl.core.training.OfflineData``): how its data is made from base samples,
the data's FLOPs and its token length; DPO and RPO share theirs (the same pairs per seed).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

import torch

from refimpl.core.sft import load_base
from refimpl.core.training import StepBar, eval_steps_at, heldout_accuracy
from refimpl.core.utils import PRESETS, get_preset
from refimpl.methods.registry import METHODS, get_method

DEFAULT_METHODS = ("dpo", "grpo", "reinforce", "ppo")

# Learning rates picked on a validation split by the claims study (results/study/C17.json,
# `python -m refimpl study --claims C17`); a test keeps this table equal to the record's picks.
# Methods without an entry run at their trainer's default.
TUNED = {"cpu": {"dpo": {"lr": 1e-5}, "rpo": {"lr": 1e-4}, "online_dpo": {"lr": 2e-5},
                 "grpo": {"lr": 2e-5}, "reinforce": {"lr": 5e-5}}}

# The study's defaults at the size of each preset (refimpl.core.utils.PRESETS): CompareConfig
# fields that ``config_for_preset`` sets before the caller's. Budgets count generated
# completions, so a result does not depend on the machine's speed. On the cpu: 5 seeds, enough
# for a t interval over seeds, at 1,280 completions per run (10 online steps of 16 x 8), so
# that ``python -m refimpl compare`` takes a few minutes on 2 cores (README).
PRESET_DEFAULTS = {
    "cpu": dict(budget_samples=1280, seeds=(0, 1, 2, 3, 4), eval_problems=256,
                prompts_per_step=16, group_size=8, dpo_prompts=256),
    "gpu": dict(budget_samples=20480, seeds=(0, 1), eval_problems=1024, prompts_per_step=64,
                group_size=8, dpo_prompts=2048),
    "tiny": dict(budget_samples=64, seeds=(0, 1), eval_problems=16, prompts_per_step=4,
                 group_size=4, dpo_prompts=16, evals=1),
}


@dataclass
class CompareConfig:
    """One head-to-head study. Exactly one of budget_s / budget_samples is set."""

    methods: tuple = DEFAULT_METHODS
    seeds: tuple = (0, 1, 2, 3, 4)
    budget_s: float | None = None       # equal training wall time per run (seconds)
    budget_samples: int | None = 1280   # or: equal generated completions per run
    preset: str = "cpu"
    eval_problems: int = 256            # held-out problems (the same for every run)
    evals: int = 4                      # held-out evaluations per run after step 0 (about:
                                        # at every steps // evals steps of an online run)
    prompts_per_step: int = 16          # B of the online methods
    group_size: int = 8                 # G: samples per prompt (online methods and DPO's data)
    dpo_prompts: int = 256              # wall-time budget: offline data = dpo_prompts x G base samples
    dpo_pairs_per_prompt: int = 2
    dpo_epochs: float = 2.0             # sample budget: passes over an offline method's data
    rpo_nll_coef: float = 1.0           # weight of the NLL term for "rpo"
    calib_steps: int = 3                # steps of the timing calibration (wall-time budget)
    overrides: dict = field(default_factory=dict)   # {method: {config field: value}}

    def validate(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown method(s) {bad or '(none given)'}: choose from {', '.join(METHODS)}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}: choose one of {sorted(PRESETS)}")
        if (self.budget_s is None) == (self.budget_samples is None):
            raise ValueError("set exactly one of budget_s (wall time) and budget_samples")
        if self.budget_s is not None and not (math.isfinite(self.budget_s) and self.budget_s > 0):
            raise ValueError(f"budget_s must be a number of seconds > 0, got {self.budget_s}")
        if self.budget_samples is not None and not self.budget_samples > 0:
            raise ValueError(f"budget_samples must be > 0, got {self.budget_samples}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        for name in ("eval_problems", "evals", "prompts_per_step", "dpo_prompts", "calib_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (groups and pairs compare samples), got {self.group_size}")


def config_for_preset(preset: str = "cpu", tuned: bool = True, **kw) -> CompareConfig:
    """A CompareConfig with the preset's defaults, then ``kw`` on top. tuned: start from the
    study's tuned learning rates (``TUNED``); ``kw["overrides"]`` is applied over them."""
    d = dict(budget_s=None, budget_samples=None, preset=preset)
    d.update(PRESET_DEFAULTS.get(get_preset(preset).name, {}))   # the study's, at its size
    if "budget_s" in kw or "budget_samples" in kw:      # the caller picks the budget kind
        d.update(budget_s=None, budget_samples=None)
    overrides = {m: dict(v) for m, v in (TUNED.get(preset, {}) if tuned else {}).items()}
    for m, v in kw.pop("overrides", {}).items():
        overrides.setdefault(m, {}).update(v)
    d.update(kw, overrides=overrides)
    return CompareConfig(**d)


def method_config(method: str, cc: CompareConfig, seed: int, steps: int, eval_every: int):
    """The trainer config of ``method`` for one run of the study."""
    return get_method(method).make_config(cc, steps=steps, eval_every=eval_every,
                                          eval_problems=cc.eval_problems, seed=seed)


def n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def flops_per_step(method: str, cfg, N: int, L: float, N_critic: int = 0) -> float:
    """Estimated FLOPs of one update step (the row's model, beside its trainer). N: parameters,
    L: tokens per sequence, N_critic: parameters of a critic."""
    return get_method(method).flops(cfg, N, L, N_critic)


def data_prompts(cc) -> int:
    """Training prompts behind an offline method's data: the sample budget's worth of groups of
    ``cc.group_size``, or ``cc.dpo_prompts`` under a wall-time budget."""
    return (cc.budget_samples // cc.group_size if cc.budget_samples is not None
            else cc.dpo_prompts)


def make_data(method: str, base, cc, seed: int, n_prompts: int):
    """The data of the offline ``method`` (its row's ``offline.make``) from base samples on
    ``n_prompts`` training prompts; returns (data or None, seconds, completions generated)."""
    if n_prompts < 1:           # a sample budget below one group buys no data at all
        return None, 0.0, 0
    t0 = time.perf_counter()
    data = get_method(method).offline.make(base, cc, seed, n_prompts)
    return data, time.perf_counter() - t0, n_prompts * cc.group_size


def _steps_for_budget(method, base, cc, heldout, data_info=None):
    """Steps per run for ``method`` under the budget; ``data_info``: (data, seconds, samples)
    of the first seed for an offline method (``make_data``), None for an online one."""
    row, seed = get_method(method), cc.seeds[0]
    if cc.budget_samples is not None:
        if row.online:
            return online_steps(cc)
        n = len(data_info[0]) if data_info[0] is not None else 0
        bs = method_config(method, cc, seed, 1, 1).batch_size
        return max(1, math.ceil(cc.dpo_epochs * n / bs)) if n else 0
    k = cc.calib_steps
    if row.online:
        cfg = replace(method_config(method, cc, seed, k, 1), eval_every=0)
        hist = row.train(base, cfg, heldout=heldout).history
        return max(1, int(cc.budget_s / _seconds_per_step(hist)))
    if data_info[0] is None:
        return 0
    cfg = method_config(method, cc, seed, k, k)
    hist = row.train(base, cfg, heldout=heldout[:1], data=data_info[0]).history
    return max(1, int((cc.budget_s - data_info[1]) / _seconds_per_step(hist)))


def online_steps(cc) -> int:
    """Steps of an online run under ``cc``'s sample budget: the fewest whole steps of B*G
    completions that reach it (the same for every online method)."""
    return max(1, math.ceil(cc.budget_samples / (cc.prompts_per_step * cc.group_size)))


def eval_fractions(cc) -> tuple:
    """The shares of a run's steps after which every method is evaluated. Under a sample
    budget, those of the online runs (step 0, every ``steps // cc.evals`` steps and the last),
    which are also their shares of the budget; an offline method, which draws its samples
    before its first step, is evaluated at the same shares of its steps (``eval_at``), so every
    curve has the same evaluation points. Under a wall-time budget: k / cc.evals, k = 0..evals."""
    if cc.budget_samples is None:
        return tuple(k / cc.evals for k in range(cc.evals + 1))
    steps = online_steps(cc)
    every = max(1, steps // cc.evals)
    return tuple(s / steps for s in range(steps + 1) if s % every == 0 or s == steps)


def _seconds_per_step(hist) -> float:
    """Seconds per step of a calibration run, leaving out the first (warm-up) step."""
    t = [r["time_s"] for r in hist]                  # t[0] = 0 at step 0
    return (t[-1] - t[1]) / (len(t) - 2) if len(t) > 2 else t[-1]


def run_one(method, base, cc, seed, steps, heldout, data_info=None, progress=False):
    """Train one (method, seed) for ``steps`` steps on the ``heldout`` problems' yardstick;
    return (record dict, trained policy). data_info: (data, seconds, completions generated)
    of an offline method (``make_data``), None for an online one."""
    row = get_method(method)
    eval_every = max(1, steps // cc.evals) if steps else 1
    cfg = method_config(method, cc, seed, steps, eval_every)
    if not row.online:            # the online runs' evaluation points (``eval_fractions``)
        cfg = replace(cfg, eval_at=eval_steps_at(eval_fractions(cc), steps))
    N = n_params(base.model)
    P = base.tokenizer.encode_prompts([heldout[0].prompt])[0].shape[1]
    rec = {"method": method, "seed": seed, "steps": steps, "params": N}
    if row.online:
        res = row.train(base, cfg, heldout=heldout, progress=progress)
        curve, L, fps = _online_curve(method, res, cfg, N, P)
        rec.update(data_s=0.0, pairs=0, pairs_consumed=0, flops_data=0.0)
    elif data_info[0] is None or steps == 0:     # the method has nothing to learn from
        return _without_data(rec, row, base, heldout, data_info), base.policy()
    else:
        res = row.train(base, cfg, heldout=heldout, data=data_info[0], progress=progress)
        curve, L, fps, data_fields = _offline_curve(method, res, cfg, N, P, data_info)
        rec.update(data_fields)
    train_s = res.history[-1]["time_s"]
    rec.update(flops_per_step=fps, tokens_per_seq=L,
               s_per_step=train_s / steps if steps else float("nan"))
    return _finish(rec, curve), res.model


def _online_curve(method, res, cfg, N, P):
    """(curve, L, FLOPs per step) of an online run ``res`` (a TrainResult): its evaluations at
    the completions it had generated; L = P prompt tokens + the mean completion length."""
    lens = [r["completions/mean_length"] for r in res.history if "completions/mean_length" in r]
    L = P + (sum(lens) / len(lens) if lens else 0.0)
    Nc = n_params(res.critic) if res.critic is not None else 0
    fps = flops_per_step(method, cfg, N, L, Nc)
    curve = [{"time_s": r["time_s"], "samples": r["samples"], "flops": r["step"] * fps,
              "progress": r["step"] / cfg.steps, "heldout_acc": r["heldout_acc"]}
             for r in res.history if "heldout_acc" in r]
    return curve, L, fps


def _offline_curve(method, res, cfg, N, P, data_info):
    """(curve, L, FLOPs per step, the record's data fields) of an offline run ``res`` on the
    data of ``data_info`` (data, seconds, completions generated): the data's time and FLOPs
    come first, and every evaluation sits at the completions generated for the data."""
    spec = get_method(method).offline
    data, gen_s, n_gen = data_info
    L = P + spec.tokens(data)
    fps = flops_per_step(method, cfg, N, L)
    data_flops = spec.flops(data, n_gen, N, L)
    curve = [{"time_s": 0.0, "samples": 0, "flops": 0.0, "progress": 0.0,
              "heldout_acc": res.history[0]["heldout_acc"]}]
    curve += [{"time_s": gen_s + r["time_s"], "samples": n_gen,
               "flops": data_flops + r["step"] * fps, "progress": r["step"] / cfg.steps,
               "heldout_acc": r["heldout_acc"]} for r in res.history if "heldout_acc" in r]
    fields = dict(data_s=gen_s, pairs=len(data), pairs_consumed=res.history[-1][spec.arg],
                  flops_data=data_flops)
    return curve, L, fps, fields


def _without_data(rec, row, base, heldout, data_info):
    """The finished record of an offline run with nothing to learn from (no data could be
    formed, or no step fits the budget): the base's accuracy, before and after the data."""
    _, gen_s, n_gen = data_info
    acc = heldout_accuracy(base.model, base, heldout)
    curve = [{"time_s": 0.0, "samples": 0, "flops": 0.0, "progress": 0.0, "heldout_acc": acc},
             {"time_s": gen_s, "samples": n_gen, "flops": 0.0, "progress": 1.0,
              "heldout_acc": acc}]
    rec.update(data_s=gen_s, pairs=0, pairs_consumed=0, flops_data=0.0, flops_per_step=0.0,
               s_per_step=float("nan"), note=f"no {row.offline.what} could be formed")
    return _finish(rec, curve)


def run_method(method, base, cc: CompareConfig, seed: int, heldout, progress: bool = False):
    """One (method, seed) run under ``cc``'s budget, judged on ``heldout``; returns its record
    (see ``run_one``). An offline method builds its own data from base samples of this seed,
    and its step count comes from them, so every run stands alone (the claims study's unit)."""
    cc = replace(cc, seeds=(seed,), methods=(method,))
    cc.validate()
    info = _data_for(method, base, cc, seed, {})
    steps = _steps_for_budget(method, base, cc, heldout, info)
    return run_one(method, base, cc, seed, steps, heldout, info, progress=progress)[0]


def _data_for(method, base, cc, seed, cache):
    """(data, seconds, completions generated) of the offline ``method`` for ``seed``
    (``make_data``), made once per kind of data and seed (``cache``: {(OfflineData, seed):
    triple}), so methods that share their data (dpo, rpo) learn from the same pairs; None for
    an online method."""
    spec = get_method(method).offline
    if spec is None:
        return None
    if (spec, seed) not in cache:
        cache[spec, seed] = make_data(method, base, cc, seed, data_prompts(cc))
    return cache[spec, seed]


def _finish(rec, curve):
    rec.update(base_acc=curve[0]["heldout_acc"], final_acc=curve[-1]["heldout_acc"],
               wall_s=curve[-1]["time_s"], samples=curve[-1]["samples"],
               flops=curve[-1]["flops"], curve=curve)
    return rec


@dataclass
class CompareResult:
    config: CompareConfig
    runs: list                                    # one record per (method, seed), see run_one
    policies: dict = field(default_factory=dict)  # {(method, seed): trained GPT} if kept
    meta: dict = field(default_factory=dict)

    def by_method(self) -> dict:
        out = {}
        for r in self.runs:
            out.setdefault(r["method"], []).append(r)
        return out


def run_compare(cc: CompareConfig | None = None, base=None, progress: bool = True,
                keep_policies: bool = False) -> CompareResult:
    """Run every method of ``cc.methods`` for every seed from the same base and budget.

    base: a loaded Base (default ``load_base(cc.preset)``). Runs go seed by seed, each seed
    through every method, so that slow phases of a shared machine hit all methods alike.
    """
    cc = cc or CompareConfig()
    cc.validate()
    base = base if base is not None else load_base(cc.preset, progress=progress)
    heldout = base.heldout(cc.eval_problems)            # one held-out set for every run
    t_start = time.perf_counter()
    data = {}                                    # offline data by (kind, seed), see _data_for
    first = {m: _data_for(m, base, cc, cc.seeds[0], data) for m in cc.methods}   # sets steps
    steps = {m: _steps_for_budget(m, base, cc, heldout, first[m]) for m in cc.methods}
    runs, policies = [], {}
    bar = StepBar(len(cc.methods) * len(cc.seeds), "head-to-head", progress)
    for seed in cc.seeds:
        for m in cc.methods:
            bar.set_postfix(method=m, seed=seed)
            info = _data_for(m, base, cc, seed, data)
            rec, policy = run_one(m, base, cc, seed, steps[m], heldout, info, progress=False)
            runs.append(rec)
            if keep_policies:
                policies[(m, seed)] = policy
            bar.update(1)
    bar.close()
    meta = {"device": str(base.device), "threads": torch.get_num_threads(),
            "params": n_params(base.model), "total_s": time.perf_counter() - t_start,
            "budget": (f"{cc.budget_s:g} s" if cc.budget_s is not None
                       else f"{cc.budget_samples} samples")}
    return CompareResult(cc, runs, policies, meta)
