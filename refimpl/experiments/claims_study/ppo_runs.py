"""PPO with a learned critic, with V = 0, with Monte-Carlo values, and GRPO, paired: the
experiment of claim C15 in the claims study (``refimpl.experiments.claims_study.claims``).

The article: "When the value function is inaccurate (common for long reasoning tasks), GRPO's
group-relative approach can be more stable." PPO (Ouyang et al. 2022; Schulman et al. 2017)
estimates per-token advantages by GAE (Schulman et al. 2016, eq. 16) from a value V(s_t);
GRPO (Shao et al. 2024, eq. 3) needs no V: A_i = (R_i - mean_group) / std_group. The four arms
differ only in where the advantage comes from, everything else matched:

    ppo      V(s_t) = the learned critic (PPOConfig.values = "critic"; critic_lr its default)
    ppo_v0   V = 0: A_t = lambda-discounted return-to-go (values = "zero", no critic)
    ppo_mc   V(s_t) = mean reward of the prompt's OTHER G-1 samples at every token
             (values = "mc", refimpl.methods.ppo.loo_values)
    grpo     GRPO's group advantage (GRPOConfig, loss_agg "grpo")

    for step = 1 .. budget / (B G):        # same base, run seed, prompts, lr, B, G for all arms
        sample G completions for each of B prompts; verifier outcome reward (0/1)
        advantages as the arm says (PPO: GAE, whitened over the batch)
        one clipped policy step (inner_updates = 1), no KL (reward_kl_coef = beta = 0)
        at step 1 and every mc_every steps, before the update:            # measure, off-line
            p(x) = mean reward of mc_samples fresh samples of each prompt under pi_old
            corr(A_0, R - p(x)) over the batch's B*G samples
    final_acc = greedy accuracy on the test problems                (base_acc: the base's)

Advantage quality: PPO's trainer measures it itself (``PPOConfig.mc_every``,
``ppo_trainer.mc_check`` and ``ppo_analysis.advantage_quality``); for GRPO the same check runs
inside the reward function (``_GroupProbe``), at the same steps, on the same kind of batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from refimpl.core.evaluation import accuracy
from refimpl.core.rewards import make_reward_fn
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.ppo_analysis import advantage_quality, mc_pass_rates
from refimpl.methods.ppo_trainer import PPOConfig, train_ppo

# arm -> PPOConfig.values; "grpo" is the registry's GRPO. Labels: refimpl.methods.registry.LABELS
PPO_VALUES = {"ppo": "critic", "ppo_v0": "zero", "ppo_mc": "mc"}
PPO_METHODS = (*PPO_VALUES, "grpo")


@dataclass
class PpoRunConfig:
    """One run: ``budget_samples`` completions in steps of B x G, seed ``seed``; the advantage
    check at step 1 and every ``mc_every`` steps (0: never) with ``mc_samples`` per prompt."""

    budget_samples: int = 2560
    prompts_per_step: int = 16       # B
    group_size: int = 8              # G
    mc_every: int = 5
    mc_samples: int = 32
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 2,
                            "mc_every": 0, "mc_samples": 2, "seed": None},
                     why={"group_size": "ppo_mc and GRPO compare a sample with its group"})


class _GroupProbe:
    """GRPO's reward function with PPO's Monte-Carlo check inside (ppo_trainer.mc_check).

    GRPO scores the B*G completions of a step one by one, after sampling them and before its
    update (dynamic sampling off). At the last call of a checked step (step 1 and every
    ``mc_every``) the policy is still pi_old: the probe estimates p(x) of the step's B prompts
    from ``mc_samples`` completions each, drawn with its own generator (seed + 1, as PPO's), so
    that the training run is the one train_grpo makes without it, and keeps advantage_quality.
    """

    def __init__(self, policy, base, cfg: PpoRunConfig):
        self.policy, self.base, self.cfg = policy, base, cfg
        self.reward_fn = make_reward_fn(base.task, "outcome")
        device = next(policy.parameters()).device
        self.gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
        self.calls, self.seen, self.checks = 0, [], []

    def __call__(self, problem, text) -> float:
        r = self.reward_fn(problem, text)
        self.calls += 1
        self.seen.append((problem, r))
        BG = self.cfg.prompts_per_step * self.cfg.group_size
        if self.calls % BG == 0:                                         # the step's last call
            step, cfg = self.calls // BG, self.cfg
            if cfg.mc_every and (step % cfg.mc_every == 0 or step == 1):
                self._check([p for p, _ in self.seen[::cfg.group_size]],
                            torch.tensor([float(x) for _, x in self.seen]))  # (B*G,)
            self.seen = []
        return r

    def _check(self, problems, rewards) -> None:
        """advantage_quality of GRPO's group advantage on one step's rewards (B*G,)."""
        p = mc_pass_rates(self.policy, self.base, problems, self.cfg.mc_samples, self.reward_fn,
                          generator=self.gen)                            # (B,)
        self.checks.append(advantage_quality(rewards.to(p.device), p,
                                             group_size=self.cfg.group_size))


def _nanmean(xs) -> float:
    """The mean of the finite values of ``xs`` (NaN when there are none)."""
    xs = [x for x in xs if math.isfinite(x)]
    return sum(xs) / len(xs) if xs else float("nan")


def _train_ppo(method, base, shape: dict, cfg: PpoRunConfig) -> tuple:
    """One PPO arm: (policy, history, the advantage checks' dicts)."""
    pcfg = PPOConfig(values=PPO_VALUES[method], reward_kl_coef=0.0, inner_updates=1,
                     mc_every=cfg.mc_every, mc_samples=cfg.mc_samples, **shape)
    res = train_ppo(base, pcfg, reward_fn=make_reward_fn(base.task, "outcome"), progress=False)
    checks = [r for r in res.history[1:] if "mc_pass_rate" in r]
    return res.model, res.history, checks


def _train_grpo(base, shape: dict, cfg: PpoRunConfig) -> tuple:
    """The GRPO arm: (policy, history, the advantage checks' dicts, GRPO's keys renamed)."""
    policy = base.policy()                          # what train_grpo would make, passed in
    probe = _GroupProbe(policy, base, cfg)
    res = train_grpo(base, GRPOConfig(beta=0.0, inner_updates=1, **shape), policy=policy,
                     reward_fn=probe, progress=False)
    checks = [{"adv_corr_mc": q["adv_corr_mc/group"],
               "value_mae_mc": q["baseline_mae_mc/group"], **q} for q in probe.checks]
    return res.model, res.history, checks


def ppo_run(method: str, base, lr: float, cfg: PpoRunConfig, problems) -> dict:
    """Train ``method`` (one of PPO_METHODS, module docstring) from ``base`` at policy lr ``lr``
    and measure it on ``problems``.

    Returns {"final_acc", "base_acc" (greedy accuracy after training / of the base),
    "collapsed" (1.0 if final_acc < base_acc - 0.1), "adv_mc_corr" (Pearson correlation, over
    the B*G samples of a checked step, of the arm's raw advantage at the first completion token
    (PPO: GAE's A_0 before whitening; GRPO: the group advantage) with R - p(x), averaged over
    the checks with a finite value; NaN with mc_every = 0), "adv_mc_corr_group" (the same for
    GRPO's group advantage computed on the arm's own batches), "value_mae_mc" (mean |V(x) -
    p(x)| of the arm's first-token value: the critic's, 0, the leave-one-out mean, GRPO's
    group mean), "critic_ev" (explained variance of the returns by the critic's values at the
    last step, on that step's fresh batch before its update; "ppo" only, else NaN),
    "critic_ev_curve" (that value at every step 1..steps; [] for the other arms),
    "train_reward" (mean reward of the last step), "steps", "samples"}.
    """
    cfg = check_study_run("ppo_run", method, PPO_METHODS, lr, cfg, PpoRunConfig, problems)
    steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
    shape = dict(steps=steps, lr=lr, prompts_per_step=cfg.prompts_per_step,
                 group_size=cfg.group_size, eval_every=0, seed=cfg.seed)
    policy, history, checks = (_train_grpo(base, shape, cfg) if method == "grpo"
                               else _train_ppo(method, base, shape, cfg))
    ev = [r["explained_variance"] for r in history[1:]] if method == "ppo" else []
    tok, task = base.tokenizer, base.task
    final, before = accuracy(policy, tok, task, problems), accuracy(base.model, tok, task, problems)
    mean = lambda k: _nanmean(q[k] for q in checks)                      # noqa: E731
    return {"final_acc": final, "base_acc": before, "collapsed": float(final < before - 0.1),
            "adv_mc_corr": mean("adv_corr_mc"), "adv_mc_corr_group": mean("adv_corr_mc/group"),
            "value_mae_mc": mean("value_mae_mc"), "critic_ev": ev[-1] if ev else float("nan"),
            "critic_ev_curve": ev, "train_reward": history[-1]["reward"], "steps": steps,
            "samples": steps * cfg.prompts_per_step * cfg.group_size}
