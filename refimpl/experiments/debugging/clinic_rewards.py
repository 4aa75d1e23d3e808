"""Run-clinic cases of the reward: a loose check that GRPO games, and a gain with no control.

Both cases train GRPO (``refimpl.methods.grpo_trainer``) on the arena, the cpu base policy and
its 3-digit additions.

* ``lenient_reward_gamed``: the reward is ``prefix_verify`` (``refimpl.core.rewards``), an
  answer check with a hole: it accepts any prefix of the right answer, the empty answer
  included. The sampled completions are graded by the exact verifier as well and both are
  logged as TRL logs each reward function, ``rewards/<name>/mean`` (a grader that is watched
  but not trained on is TRL's reward function with weight 0). Sampling hot (temperature 1.5)
  so that the policy meets a short answer soon, GRPO drives the lenient reward to about 1 by
  stopping at once (``completions/mean_length`` falls to ~1 token, EOS alone) while the
  verifier's score of the same samples falls to 0. With the exact verifier as the reward the
  hole is never paid for and never found. (``tolerant_verify``, the 1% tolerance grader, is
  gamed too but slowly: within this budget its reward and the verifier's rise together.)
* ``random_reward_control`` (Shao et al. 2025, "Spurious Rewards", arXiv:2506.10947): an RL
  gain means something only against the same pipeline trained on a reward that is a coin flip,
  independent of the answer. On Qwen2.5-Math such a random reward raised MATH-500 accuracy by
  about 20 points. On the arena it does the opposite: within 12 steps it LOWERS greedy
  held-out accuracy by 0.15 to 0.3 (Adam turns zero-mean noise into full-size steps and the
  base's greedy answers are fragile). Either way "after minus before" mixes the reward's effect
  with the pipeline's, and only the control separates them. The broken dashboard compares the
  verifier run with the base's step-0 accuracy held flat (no control); the fixed one with the
  coin-flip run at the same steps. ``shows`` flags a comparison arm that never moves, which a
  real control on the arena never does.
"""
from __future__ import annotations

import random

from refimpl.core.rewards import make_reward_fn
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.experiments.debugging.clinic_case import Case, Dashboard, check_variant, dashboard
from refimpl.experiments.debugging.clinic_dpo import arena_base, early_late

HOT = dict(steps=24, prompts_per_step=16, group_size=8, temperature=1.5, lr=1.5e-4,
           eval_every=0)                        # lenient case: hot sampling finds the hole
CONTROL = dict(steps=12, prompts_per_step=16, group_size=8, eval_every=4)  # control case
CONTROL_HELDOUT = 128                           # held-out problems of the control case
WATCHED = ("outcome", "prefix")                 # graders logged in the lenient case


def metric_name(kind: str) -> str:
    """TRL's name of a reward function's batch mean, rewards/<function name>/mean."""
    return f"rewards/{kind}_reward/mean"


def graded_reward(task, train: str, watch: tuple[str, ...] = WATCHED):
    """The reward to train on, ``make_reward_fn(task, train)``, wrapped so that every
    completion it scores is also graded by each reward kind in ``watch``.

    Returns (reward_fn, scores): scores[kind] lists the grades in the order the trainer asked
    for them (B*G per GRPO step without dynamic sampling)."""
    fn = make_reward_fn(task, train)
    graders = {kind: make_reward_fn(task, kind) for kind in watch}
    scores: dict[str, list[float]] = {kind: [] for kind in watch}

    def reward_fn(problem, text) -> float:
        for kind, grade in graders.items():
            scores[kind].append(grade(problem, text))
        return fn(problem, text)

    reward_fn.__name__ = fn.__name__
    return reward_fn, scores


def per_step(values: list[float], n: int) -> list[float]:
    """Means of consecutive chunks of ``n`` values (one per training step)."""
    if n < 1 or not values or len(values) % n:
        raise ValueError(f"expected a non-empty list whose length is a multiple of n={n}, "
                         f"got {len(values)} values")
    return [sum(values[i:i + n]) / n for i in range(0, len(values), n)]


def coin_flip_reward(seed: int):
    """A spurious reward: 1.0 or 0.0 with probability 1/2 each, independent of the problem and
    the text (Shao et al. 2025's random reward); deterministic per ``seed``."""
    rng = random.Random(seed)

    def random_reward(problem, text) -> float:
        return float(rng.random() < 0.5)

    return random_reward


# --- a lenient reward, gamed ----------------------------------------------------------------

def run_lenient(variant: str, seed: int) -> Dashboard:
    """Broken: GRPO on prefix_verify; fixed: GRPO on the exact verifier; both hot (HOT), with
    both graders' means of each step's samples logged as rewards/<name>/mean."""
    check_variant(variant)
    base = arena_base()
    cfg = GRPOConfig(**HOT, seed=seed)
    reward_fn, scores = graded_reward(base.task, "prefix" if variant == "broken" else "outcome")
    res = train_grpo(base, cfg, reward_fn=reward_fn, progress=False)
    n = cfg.prompts_per_step * cfg.group_size
    rows = res.history[1:]                                            # step 0 samples nothing
    for kind, values in scores.items():
        for row, m in zip(rows, per_step(values, n), strict=True):
            row[metric_name(kind)] = m
    keys = ("reward",) + tuple(metric_name(k) for k in WATCHED) + (
        "completions/mean_length", "entropy")
    return dashboard(res.history, keys)


def shows_gamed(d: Dashboard) -> bool:
    """The training reward rises by > 0.2 (first quarter to last quarter) while, over the last
    quarter, the lenient grader pays > 0.3 more than the exact verifier on the same samples."""
    gap = [p - v for p, v in zip(d[metric_name("prefix")], d[metric_name("outcome")])]
    r0, r1 = early_late(d["reward"], 1 / 4)
    return r1 - r0 > 0.2 and early_late(gap, 1 / 4)[1] > 0.3


# --- a gain with and without its random-reward control --------------------------------------

def run_control(variant: str, seed: int) -> Dashboard:
    """GRPO on the exact verifier (the claimed run) beside its comparison arm: broken, the base
    (its step-0 accuracy at every step: no control was run); fixed, the same GRPO run on
    ``coin_flip_reward(seed)``. Greedy accuracy on CONTROL_HELDOUT held-out problems every 4
    steps; gain = heldout_acc - control/heldout_acc."""
    check_variant(variant)
    base = arena_base()
    heldout = base.heldout(CONTROL_HELDOUT)
    cfg = GRPOConfig(**CONTROL, seed=seed)
    claimed = train_grpo(base, cfg, reward_fn=make_reward_fn(base.task, "outcome"),
                         progress=False, heldout=heldout)
    d = dashboard(claimed.history, ("heldout_acc",))
    if variant == "broken":
        control = [d["heldout_acc"][0]] * len(d["step"])
    else:
        ctrl = train_grpo(base, cfg, reward_fn=coin_flip_reward(seed), progress=False,
                          heldout=heldout)
        control = dashboard(ctrl.history, ("heldout_acc",))["heldout_acc"]
    d["control/heldout_acc"] = control
    d["gain"] = [a - c for a, c in zip(d["heldout_acc"], control, strict=True)]
    return d


def shows_no_control(d: Dashboard) -> bool:
    """The comparison arm never moves (within 0.02 of its start at every evaluation): the
    whole change of heldout_acc is credited to the reward. A coin-flip control on the arena
    moves by 0.15 or more within 12 steps."""
    c = d["control/heldout_acc"]
    return max(abs(v - c[0]) for v in c) < 0.02


REMEDIES: dict[str, str] = {   # remedy label -> what to do, for the clinic's closed list
    "exact_verifier": "Train on the exact verifier, and log it beside any other reward so that "
                      "a gap between the two shows at once.",
    "random_reward_control": "Run the same pipeline with a coin-flip reward and report the gain "
                             "over that control, not over the base.",
}

CASES: tuple[Case, ...] = (
    Case(name="lenient_reward_gamed",
         title="GRPO reward climbs to 1, but the answers are empty",
         source="Liuziyu77/Visual-RFT#176",
         symptom="The training reward climbs to about 1 within a few dozen steps while the "
                 "exact verifier's score of the very same samples falls to 0 and the "
                 "completions shrink to almost nothing.",
         diagnosis="The reward checks the answer loosely: it accepts any prefix of the right "
                   "answer, so the empty answer always passes, and GRPO finds that stopping at "
                   "once is the surest reward there is.",
         fix="Train on the exact verifier (and log it beside any other reward, as a reward "
             "function with weight 0, so that a gap between the two shows at once).",
         failure="lenient_reward_gamed", remedy="exact_verifier",
         panels=(metric_name("outcome"), "reward", metric_name("prefix"),
                 "completions/mean_length", "entropy"),
         run=run_lenient, shows=shows_gamed),
    Case(name="random_reward_control",
         title="RL gain reported without a random-reward control",
         source="arXiv:2506.10947",
         symptom="A run reports held-out accuracy before and after RL and credits the whole "
                 "change to its reward; nobody trained the same pipeline on a reward that "
                 "ignores the answer.",
         diagnosis="Training moves a policy even when the reward carries no information: "
                   "random rewards raised Qwen2.5-Math's accuracy by about 20 points, and on "
                   "the arena a coin-flip reward lowers greedy accuracy by 0.15-0.3 within 12 "
                   "steps. A before/after number mixes the reward's effect with the "
                   "pipeline's.",
         fix="Run the same pipeline, seeds and budget with a coin-flip reward and report the "
             "gain over that control (here it is larger than the gain over the base).",
         failure="no_random_reward_control", remedy="random_reward_control",
         panels=("control/heldout_acc", "heldout_acc", "gain"),
         run=run_control, shows=shows_no_control),
)
