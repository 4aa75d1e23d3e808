"""The REINFORCE trainer: sample G completions per prompt, score them, one policy-gradient step.

REINFORCE (Williams 1992) with a baseline b (refimpl.methods.reinforce, eq. 1):

    grad J = E[(r(x, y) - b(x)) * grad log pi_theta(y | x)],

estimated on each batch of B prompts x G samples from the current policy, so every update is
on-policy and there is no ratio or clip (unlike PPO/GRPO). The reward r is the outcome
verifier by default; refimpl.core.rewards and refimpl.methods.prm supply process rewards and a flawed
verifier. Baselines: "none", "rloo" (Ahmadian et al. 2024), "group_mean", or "running",
whose running average is keyed by prompt, by difficulty level or globally (``running_key``);
a per-prompt key only helps when prompts recur (a small ``train_pool``).

The variance of the gradient estimate of each baseline on the real model (claim C12) is
measured in ``refimpl.methods.reinforce_analysis``. The loss is a pure function of tensors
(``refimpl.methods.reinforce.reinforce_loss``) that takes its settings as plain arguments;
``ReinforceConfig`` here is the method's one config. The registry row of REINFORCE
(``METHOD``) sits at the end of the module.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from refimpl.core import checks
from refimpl.core.evaluation import accuracy
from refimpl.core.logprobs import token_logprobs
from refimpl.core.rollouts import completion_stats, sample_groups
from refimpl.core.tasks import get_task
from refimpl.core.training import (Clock, Method, StepBar, TrainResult, adamw, check_fields,
                                   log_heldout, start_history, start_policy)
from refimpl.methods.kl import ESTIMATORS
from refimpl.methods.reinforce import BASELINE_KINDS, RunningBaseline, baseline, reinforce_loss

RUNNING_KEYS = ("prompt", "level", "global")


@dataclass
class ReinforceConfig:
    """REINFORCE settings: the loss's (group_size to kl_estimator) and the loop's. The
    defaults (30 steps of 16 prompts x 8 samples) take about 10-15 s on the cpu base."""

    group_size: int = 8               # G samples per prompt
    baseline: str = "rloo"            # one of BASELINE_KINDS
    positive_only: bool = False       # advantages max(r - b, 0): only better-than-baseline
                                      # samples are pushed (C12's positive-only RLOO arm)
    running_momentum: float | None = None  # for "running": None = count average, else EMA
    running_init: float = 0.0         # for "running": b(x) of a prompt not seen before
    seq_kl_coef: float = 0.0          # weight of the sequence KL(pi || pi_ref) in the loss; 0: none
    kl_estimator: str = "k3"
    steps: int = 30
    prompts_per_step: int = 16        # B prompts per update batch
    temperature: float = 1.0          # sampling temperature (log-probs use the same one)
    lr: float = 1e-4
    max_grad_norm: float = 1.0        # gradient clipping; history logs the norm before it
    running_key: str = "level"        # for baseline="running": "prompt", "level" or "global"
    level: int | None = None          # train on one difficulty level (None = the mix)
    digits: int | None = None         # "add" only: train on get_task("add", digits) prompts
    train_pool: int = 4096            # training prompts drawn from this fixed pool
    eval_every: int = 10              # held-out greedy accuracy every this many steps (<= 0: never)
    eval_problems: int = 256
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"steps": 1, "prompts_per_step": 1, "group_size": 1, "train_pool": 1,
                            "eval_problems": 1, "eval_every": None, "seed": None, "level": 0,
                            "digits": 1},
                     positive=("temperature", "lr", "max_grad_norm"),
                     nonnegative=("seq_kl_coef",),
                     intervals={"running_momentum": (0, 1, "[)"), "digits": (1, 6, "[]")},
                     choices={"baseline": BASELINE_KINDS, "running_key": RUNNING_KEYS,
                              "kl_estimator": ESTIMATORS},
                     optional=("running_momentum", "level", "digits"), flags=("positive_only",),
                     why={"seq_kl_coef": "0 disables the KL penalty",
                          "running_momentum": "None keeps a count average",
                          "digits": "None trains on the base's task"})
        checks.number("ReinforceConfig.running_init", self.running_init)
        if self.baseline in ("rloo", "group_mean") and self.group_size < 2:
            raise ValueError(f"baseline {self.baseline!r} needs group_size >= 2 (the other "
                             f"samples of the prompt), got {self.group_size}")


def task_for(base, cfg: ReinforceConfig):
    """The task the run trains on: the base's, or "add" with cfg.digits digits."""
    if cfg.digits is None:
        return base.task
    if base.task.name != "add":
        raise ValueError(f"digits={cfg.digits} applies to the 'add' task, the base is trained on "
                         f"{base.task.name!r}; leave digits=None")
    return get_task("add", digits=cfg.digits)


def collect_groups(policy, tok, task, problems, cfg, reward_fn, running, gen):
    """Collect: G completions per prompt from the current policy, their rewards, and the
    baseline b of every sample (``refimpl.methods.reinforce.baseline``; a running baseline is updated
    with this batch's rewards). Returns (Rollout with B*G rows, baselines (B*G,))."""
    ro = sample_groups(policy, tok, task, problems, cfg.group_size, reward_fn=reward_fn,
                       temperature=cfg.temperature, generator=gen)
    keys = {"prompt": [p.prompt for p in problems], "level": [p.level for p in problems],
            "global": [0] * len(problems)}[cfg.running_key]
    baselines = baseline(ro.rewards, cfg.group_size, cfg.baseline, running=running,
                         keys=keys)                                      # (B*G,)
    if cfg.positive_only:                    # r - min(b, r) = max(r - b, 0)
        baselines = torch.minimum(baselines, ro.rewards.to(baselines.dtype))  # (B*G,)
    return ro, baselines


def reinforce_update(policy, ref_model, opt, ro, baselines, cfg) -> dict:
    """Update: one on-policy step on ``reinforce_loss`` (no ratio, no clip). ref_model: the
    frozen reference, or None when cfg.seq_kl_coef = 0. Returns the loss metrics and grad_norm
    (before clipping to cfg.max_grad_norm)."""
    G = cfg.group_size
    args = (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)
    logps = token_logprobs(policy, *args, temperature=cfg.temperature, group_size=G)  # (B*G, T)
    ref_logps = None
    if ref_model is not None:
        with torch.no_grad():
            ref_logps = token_logprobs(ref_model, *args, temperature=cfg.temperature,
                                       group_size=G)                     # (B*G, T)
    loss, metrics = reinforce_loss(logps, ro.rewards, baselines, ref_logps, cfg.seq_kl_coef,
                                   group_size=G, mask=ro.completion_mask,
                                   kl_estimator=cfg.kl_estimator)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm).item()
    opt.step()
    return {"loss": loss.item(), **metrics, "grad_norm": grad_norm}


def verified_rates(ro, verify) -> dict:
    """Log: the outcome verifier's pass rate on the step's samples (differs from the reward
    for process or flawed rewards), the share of all-wrong groups, and both per level."""
    B, G = len(ro.problems), ro.group_size
    grouped = ro.rewards.detach().cpu().view(B, G)                       # (B, G)
    passed = torch.tensor([verify(ro.problems[i // G], t) for i, t in enumerate(ro.texts)])  # (B*G,)
    row = {"verified": passed.mean().item(),
           "frac_all_wrong": (grouped.amax(dim=1) == 0).float().mean().item()}
    group_levels = torch.tensor([p.level for p in ro.problems])          # (B,)
    levels = group_levels.repeat_interleave(G)                           # (B*G,)
    for lev in sorted(set(group_levels.tolist())):
        row[f"pass_rate/level_{lev}"] = passed[levels == lev].mean().item()
        row[f"frac_all_wrong/level_{lev}"] = (
            grouped[group_levels == lev].amax(dim=1) == 0).float().mean().item()
    return row


def training_pool(task, cfg: ReinforceConfig, pool=None) -> list:
    """The problems train_reinforce draws its prompts from: ``pool``, or cfg.train_pool
    training problems of the task at cfg.level; at least cfg.prompts_per_step of them."""
    if pool is None:
        pool = task.problems("train", cfg.train_pool, level=cfg.level, seed=cfg.seed)
    if len(pool) < cfg.prompts_per_step:
        raise ValueError(f"the pool has {len(pool)} problems, fewer than prompts_per_step="
                         f"{cfg.prompts_per_step}; pass a larger pool or lower prompts_per_step")
    return pool


def train_reinforce(base, cfg: ReinforceConfig | None = None, *, policy=None, reward_fn=None,
                    pool=None, on_step=None, progress: bool = True, heldout=None) -> TrainResult:
    """Train ``policy`` (default: a copy of the base) with REINFORCE and a baseline.

    base: the SFT Base (its model is the frozen reference); cfg: a ReinforceConfig (None:
    defaults). reward_fn(problem, text) -> float defaults to the task's outcome verifier (a
    reward_fn with a ``.score(problems, texts)`` attribute scores the whole step at once, see
    ``rollouts.score_texts``); pool is the list of training problems to draw prompts from
    (default: cfg.train_pool problems of the task at cfg.level). A small pool revisits its
    prompts, which is what a per-prompt running baseline needs; its problems' ``level``
    labels the per-level rates. progress: show a progress bar; heldout is a list of problems
    for greedy accuracy (default: cfg.eval_problems held-out problems). on_step(step, policy),
    if given, is called after each update (to keep a checkpoint; it must not change the
    policy). Returns a TrainResult (model: the trained policy).

    History rows: step, time_s (training wall time, evaluation excluded), samples
    (completions generated so far), reward (mean of reward_fn), verified (mean of the
    outcome verifier on the same samples: differs from reward for process or flawed
    rewards), pass_rate/level_k (verified pass rate of this step's samples at level k),
    frac_reward_zero_std, frac_all_wrong (groups whose rewards are all 0; also per level as
    frac_all_wrong/level_k), reward_std,
    advantage_mean, completions/mean_length, entropy, kl (when seq_kl_coef > 0), loss, grad_norm (before
    clipping) and, at step 0, every eval_every steps and at the end, heldout_acc.
    """
    cfg = checks.config("cfg", cfg, ReinforceConfig)
    cfg.validate()
    checks.function("reward_fn", reward_fn)
    checks.function("on_step", on_step)
    task, tok = task_for(base, cfg), base.tokenizer
    verify = task.verify
    reward_fn = reward_fn or verify
    pool = training_pool(task, cfg, pool)
    policy, device, gen = start_policy(base, policy, cfg.seed)
    ref_model = base.reference().to(device) if cfg.seq_kl_coef > 0 else None
    opt = adamw(policy.parameters(), cfg.lr)
    running = (RunningBaseline(cfg.running_momentum, cfg.running_init)
               if cfg.baseline == "running" else None)
    if heldout is None and cfg.eval_every > 0:
        heldout = task.problems("heldout", cfg.eval_problems, seed=0)
    rng = random.Random(cfg.seed)


    def evaluate():                      # on the task of cfg.level, which may not be the base's
        return {"heldout_acc": accuracy(policy, tok, task, heldout)}

    clock = Clock()
    history = start_history(cfg, clock, evaluate)
    samples = 0
    bar = StepBar(cfg.steps, "REINFORCE", progress)
    for step in bar:
        problems = rng.sample(pool, cfg.prompts_per_step)
        ro, baselines = collect_groups(policy, tok, task, problems, cfg, reward_fn, running, gen)
        samples += ro.num_samples
        update = reinforce_update(policy, ref_model, opt, ro, baselines, cfg)
        if on_step is not None:
            on_step(step, policy)
        row = {"step": step, "time_s": clock(), "samples": samples, **update,
               **completion_stats(ro), **verified_rates(ro, verify)}
        if log_heldout(row, cfg, clock, evaluate):
            bar.set_postfix(acc=f"{row['heldout_acc']:.2f}", reward=f"{row['reward']:.2f}")
        history.append(row)
    bar.close()
    return TrainResult(policy.eval(), history)


# ---- the registry row of REINFORCE (refimpl.methods.registry collects it); in the FLOPs model N
# is the parameter count, L the tokens per sequence (prompt + mean completion), N_critic unused ----
def reinforce_study_fields(cc) -> dict:
    """The ReinforceConfig fields a head-to-head run sets from ``cc`` (a CompareConfig): B, G
    and the RLOO baseline."""
    return dict(prompts_per_step=cc.prompts_per_step, group_size=cc.group_size, baseline="rloo")


def reinforce_flops(cfg, N, L, N_critic=0) -> float:
    """REINFORCE: sample, one update [, reference pass with a KL term]."""
    BG = cfg.prompts_per_step * cfg.group_size
    return (2 + 6 + (2 if cfg.seq_kl_coef > 0 else 0)) * N * BG * L


# REINFORCE with the RLOO baseline, Ahmadian et al. 2024
METHOD = Method("reinforce", "REINFORCE (RLOO)", "verifier", ReinforceConfig, train_reinforce,
                reinforce_study_fields, reinforce_flops)
