"""Offline vs online: a failure mode missing from the preference data (article exercise 3, C3).

Part 1, exact: a softmax policy over N responses with logits z (N,), pi = softmax(z).
Because grad_z log pi(y) = e_y - pi, the DPO loss of one pair (Rafailov et al. 2023, eq. 7),

    l(w, l) = -log sigmoid(h),   h = beta * [(z_w - z_l) - (zref_w - zref_l)]

(the log-normaliser cancels inside the log-ratio difference), has the logit gradient

    grad_z l = -beta * sigmoid(-h) * (e_w - e_l),

which is exactly zero on every response that is neither chosen nor rejected in some pair.
The on-policy policy gradient of J = E_{y ~ pi}[r(y)] (Williams 1992) is instead

    grad_z J = E_{y ~ pi}[(r(y) - b)(e_y - pi)] = pi * (r - E_pi[r])      (any baseline b),

non-zero on every response the policy samples whose reward differs from the mean. So DPO can
move probability only between its data and the normaliser: for two responses outside the data
the odds pi(y)/pi(y') never change, whatever the step size or the number of steps.

Part 2, the transformer on "add". A completion "12,13,06|632" makes its decisions left to right:
the units column, then the carry columns, then the answer. ``step_error_rates`` measures, by
teacher forcing (no sampling noise), each region's error rate given a correct prefix:
1 - E_x[pi(region tokens | x, correct prefix)]. Preference pairs whose rejected completion is
right in the units column and wrong in a carry column ("carry" mode) share the units tokens
with their chosen completion, so those tokens' log-probs cancel in log pi(y_w) - log pi(y_l):
DPO's loss never asks the units decision to change (only shared parameters can move it).
The verifier-driven online methods sample units errors themselves and get reward 0 for them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refimpl.core import checks
from refimpl.core.evaluation import completions_for
from refimpl.core.logprobs import token_logprobs
from refimpl.core.model import eval_mode
from refimpl.core.preferences import build_pairs
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.dpo_trainer import DPOConfig, train_dpo
from refimpl.methods.registry import get_method

MODES = ("units", "carry", "answer")


# ----------------------------------------------------------------------------- part 1: exact


def _check_logits(logits: torch.Tensor, name: str = "logits") -> int:
    checks.finite(name, checks.tensor(name, logits, dims=(1,)))
    if logits.numel() < 2:
        raise ValueError(f"{name} must hold N >= 2 response logits, got shape {tuple(logits.shape)}")
    return logits.numel()


def dpo_logit_gradient(logits: torch.Tensor, pairs, beta: float,
                       ref_logits: torch.Tensor) -> torch.Tensor:
    """Gradient w.r.t. the logits z (N,) of the mean DPO loss over ``pairs``.

    logits, ref_logits: (N,) logits of the policy and of the frozen reference.
    pairs: M pairs (w, l) of response indices, w chosen and l rejected, w != l.
    Returns (N,): -(beta / M) * sum_k sigmoid(-h_k) (e_{w_k} - e_{l_k}); the update direction
    is its negative.
    """
    N = _check_logits(logits)
    if _check_logits(ref_logits, "ref_logits") != N:
        raise ValueError(f"logits ({N},) and ref_logits {tuple(ref_logits.shape)} differ in shape")
    checks.positive("beta", beta)
    pairs = [(checks.count("pair index", w), checks.count("pair index", l)) for w, l in pairs]
    if not pairs:
        raise ValueError("pairs is empty: give at least one (chosen, rejected) pair")
    for w, l in pairs:
        if not (0 <= w < N and 0 <= l < N) or w == l:
            raise ValueError(f"pair ({w}, {l}) must hold two different indices in [0, {N})")
    w = torch.tensor([p[0] for p in pairs])                               # (M,)
    l = torch.tensor([p[1] for p in pairs])                               # (M,)
    h = beta * ((logits[w] - logits[l]) - (ref_logits[w] - ref_logits[l]))  # (M,)
    weight = -beta * torch.sigmoid(-h) / len(pairs)                       # (M,)
    grad = torch.zeros_like(logits)                                       # (N,)
    grad.index_add_(0, w, weight)
    grad.index_add_(0, l, -weight)
    return grad


def policy_gradient_logits(logits: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """Exact gradient w.r.t. the logits z (N,) of the on-policy loss -E_{y ~ pi}[r(y)].

    rewards: (N,) reward of each response. Returns (N,): -pi * (r - E_pi[r]). Every
    response with pi(y) > 0 and r(y) != E_pi[r] gets a non-zero component.
    """
    N = _check_logits(logits)
    checks.finite("rewards", checks.tensor("rewards", rewards, shape=(N,), floating=False,
                                          like="logits"))
    pi = torch.softmax(logits, dim=0)                                     # (N,)
    r = rewards.to(pi.dtype)                                              # (N,)
    return -pi * (r - (pi * r).sum())                                     # (N,)


def gradient_mass_outside(grad: torch.Tensor, support) -> float:
    """Sum of |grad_i| over the responses i NOT in ``support`` (a set of indices). grad: (N,)."""
    if not isinstance(grad, torch.Tensor) or grad.dim() != 1:
        raise ValueError("grad must be a 1-D tensor (N,)")
    keep = torch.ones(grad.numel(), dtype=torch.bool)                     # (N,)
    idx = [int(i) for i in support]
    if any(not 0 <= i < grad.numel() for i in idx):
        raise ValueError(f"support indices must lie in [0, {grad.numel()})")
    keep[idx] = False
    return grad.detach().abs()[keep].sum().item()


@dataclass
class CoverageBandit:
    """The coverage bandit (exercise 3, part 1): six responses of one prompt, some covered by
    the preference pairs and some not: c (correct, in the data as chosen), c2 (correct, never
    in the data), a1, a2 (failure mode A, in the data as rejected), b1, b2 (failure mode B,
    never in the data)."""

    names: tuple = ("c", "c2", "a1", "a2", "b1", "b2")
    rewards: tuple = (1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    base_probs: tuple = (0.20, 0.10, 0.20, 0.15, 0.20, 0.15)
    pairs: tuple = ((0, 2), (0, 3))

    @property
    def support(self) -> set:
        return {i for p in self.pairs for i in p}


def tabular_run(toy: CoverageBandit | None = None, method: str = "dpo", steps: int = 200,
                lr: float = 1.0, beta: float = 0.1) -> list[dict]:
    """Gradient descent on the logits of ``toy`` with "dpo" (its pairs, reference = base) or
    "pg" (exact on-policy gradient of -E[r]). Returns one row per step (0..steps): the mass
    of mode A, of mode B, of the correct responses, the log-odds log pi(b1)/pi(c2) of two
    responses outside the data, and the gradient mass outside the data."""
    toy = toy or CoverageBandit()
    if method not in ("dpo", "pg"):
        raise ValueError(f"unknown method {method!r}: use 'dpo' or 'pg'")
    ref = torch.tensor(toy.base_probs, dtype=torch.float64).log()        # (N,)
    z = ref.clone()                                                       # (N,)
    r = torch.tensor(toy.rewards, dtype=torch.float64)                    # (N,)
    rows = []
    for step in range(steps + 1):
        grad = (dpo_logit_gradient(z, toy.pairs, beta, ref) if method == "dpo"
                else policy_gradient_logits(z, r))                        # (N,)
        pi = torch.softmax(z, 0)                                          # (N,)
        rows.append({"step": step, "mode_a": (pi[2] + pi[3]).item(), "mode_b": (pi[4] + pi[5]).item(),
                     "correct": (pi[0] + pi[1]).item(), "unseen_correct": pi[1].item(),
                     "logodds_b1_c2": (z[4] - z[1]).item(),
                     "mass_outside": gradient_mass_outside(grad, toy.support)})
        z = z - lr * grad
    return rows


def two_step_run(method: str = "dpo", steps: int = 200, lr: float = 1.0, beta: float = 0.1,
                 p_units_wrong: float = 0.3, p_carry_wrong: float = 0.4) -> list[dict]:
    """The same argument for a policy that decides in two steps, like the transformer:
    first the units column u in {right, wrong}, then the carry column s in {right, wrong}:
    pi(u, s) = pi1(u) pi2(s | u), reward 1 only for (right, right). DPO's data holds one pair,
    (right, right) over (right, wrong): both share u = right, so log pi1(right) cancels in
    log pi(y_w) - log pi(y_l) and pi1 gets exactly zero gradient. "pg" uses the exact
    gradient of -E[r] over the four responses. Returns rows with "units_wrong" = pi1(wrong)
    and "carry_wrong" = pi2(wrong | right)."""
    if method not in ("dpo", "pg"):
        raise ValueError(f"unknown method {method!r}: use 'dpo' or 'pg'")
    p1 = torch.tensor([1 - p_units_wrong, p_units_wrong], dtype=torch.float64)        # (2,)
    p2 = torch.tensor([1 - p_carry_wrong, p_carry_wrong], dtype=torch.float64)        # (2,)
    z1 = p1.log().clone().requires_grad_(True)                             # (2,) units logits
    z2 = p2.log().repeat(2, 1).clone().requires_grad_(True)                # (2, 2) carry | units
    ref1, ref2 = z1.detach().clone(), z2.detach().clone()
    reward = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)   # (2, 2) r(u, s)

    def logp(a, b):                                                        # (2, 2) log pi(u, s)
        return torch.log_softmax(a, 0)[:, None] + torch.log_softmax(b, 1)

    rows = []
    for step in range(steps + 1):
        lp = logp(z1, z2)                                                  # (2, 2)
        rows.append({"step": step, "units_wrong": lp.exp().sum(1)[1].item(),
                     "carry_wrong": torch.softmax(z2, 1)[0, 1].item(),
                     "correct": lp[0, 0].exp().item()})
        if method == "dpo":
            lr_ = logp(ref1, ref2)                                         # (2, 2)
            h = beta * ((lp[0, 0] - lr_[0, 0]) - (lp[0, 1] - lr_[0, 1]))
            loss = -F.logsigmoid(h)
        else:
            loss = -(lp.exp() * reward).sum()
        g1, g2 = torch.autograd.grad(loss, (z1, z2))
        with torch.no_grad():
            z1 -= lr * g1
            z2 -= lr * g2
    return rows


# ----------------------------------------------------------------------------- part 2: the transformer


def classify(task, problem, text: str) -> str:
    """'correct' if the verifier accepts; otherwise the first wrong step of the working:
    'units' (column 0), 'carry' (a later column) or 'answer' (working right, answer wrong)."""
    if task.verify(problem, text):
        return "correct"
    steps = task.verify_steps(problem, text)
    if all(steps):
        return "answer"
    return "units" if steps.index(False) == 0 else "carry"


def _regions(task) -> dict:
    """Token slices of the target completion "c0,c1,...|answer<eos>" for each mode."""
    n = task.digits
    return {"units": slice(0, 3), "carry": slice(3, 3 * n), "answer": slice(3 * n, None)}


@torch.no_grad()
def step_error_rates(model, tok, task, problems) -> dict:
    """Exact error rate of each region given a correct prefix, averaged over ``problems``:
    1 - mean_x pi(region tokens of the target | x, target prefix). Keys: MODES."""
    if getattr(task, "name", None) != "add":
        raise ValueError("step_error_rates needs the 'add' task (its working has fixed columns)")
    if not problems:
        raise ValueError("step_error_rates got no problems")
    device = next(model.parameters()).device
    p_ids, p_mask = tok.encode_prompts([p.prompt for p in problems])              # (B, P)
    c_ids, c_mask = tok.encode_completions([task.target(p) for p in problems])    # (B, T)
    with eval_mode(model):
        logps = token_logprobs(model, p_ids.to(device), p_mask.to(device), c_ids.to(device),
                               c_mask.to(device))                                 # (B, T)
    return {m: 1.0 - logps[:, s].sum(1).exp().mean().item() for m, s in _regions(task).items()}


def sample_mode_counts(model, tok, task, problems, n_samples: int = 4, seed: int = 0) -> dict:
    """Share of sampled completions (temperature 1) in each class of ``classify``."""
    device = next(model.parameters()).device
    texts = completions_for(model, tok, task, problems, greedy=False, n_samples=n_samples,
                            generator=torch.Generator(device).manual_seed(seed))
    c = Counter(classify(task, problems[i // n_samples], t) for i, t in enumerate(texts))
    return {k: c[k] / len(texts) for k in ("correct",) + MODES}


def covered_pairs(base, n_prompts: int = 512, group_size: int = 8, covered=("carry",),
                  seed: int = 0):
    """Preference pairs from base samples whose rejected completion fails only in the
    ``covered`` modes and whose chosen completion is right at every step.
    Returns (pairs, counts of every rejected class before filtering)."""
    bad = [m for m in covered if m not in MODES]
    if bad:
        raise ValueError(f"unknown mode(s) {bad}: choose from {MODES}")
    pairs = build_pairs(base.model, base.tokenizer, base.task,
                        base.train_problems(n_prompts, seed=seed), group_size,
                        group_size // 2, 1.0, seed)
    task = base.task
    rej = [classify(task, p, t) for p, t in zip(pairs.problems, pairs.rejected_texts)]
    clean = [all(task.verify_steps(p, t)) for p, t in zip(pairs.problems, pairs.chosen_texts)]
    keep = [i for i, (m, ok) in enumerate(zip(rej, clean)) if m in covered and ok]
    if not keep:
        raise ValueError(f"no pair has a rejected completion in modes {covered}: sample more prompts")
    return pairs[keep], dict(Counter(rej))


@dataclass
class OfflineOnlineConfig:
    """Exercise 3 on the transformer: DPO on carry-only pairs vs online RL with the verifier."""

    covered: tuple = ("carry",)      # the failure mode the preference data covers
    n_prompts: int = 512             # base samples for the pairs: n_prompts x group_size
    group_size: int = 8
    dpo_steps: int = 40
    dpo_lr: float = 1e-5             # pure DPO: higher rates collapse the cpu base (notebook 02)
    dpo_beta: float = 0.5
    online: tuple = ("reinforce",)   # "reinforce" and/or "grpo", with the verifier reward
    online_steps: int = 30
    eval_problems: int = 512         # held-out problems for the exact rates
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"n_prompts": 1, "group_size": 2, "dpo_steps": 1, "online_steps": 1,
                            "eval_problems": 1, "seed": None}, positive=("dpo_lr", "dpo_beta"))
        for name, allowed in (("covered", MODES), ("online", ("reinforce", "grpo"))):
            for v in getattr(self, name):
                checks.one_of(f"OfflineOnlineConfig.{name} entry", v, allowed)


def run_offline_online(base, cfg: OfflineOnlineConfig | None = None, *, online_policies=None,
                       progress: bool = False) -> dict:
    """Step error rates (``step_error_rates``) of the base, of DPO trained on pairs covering
    only ``cfg.covered``, and of each online method. online_policies: optional {name: policy}
    already trained online (e.g. by refimpl.experiments.head_to_head.compare), used instead of training here.
    Returns {"rates": {name: {mode: rate}}, "pairs": n, "rejected_modes": counts}."""
    cfg = checks.config("cfg", cfg, OfflineOnlineConfig)
    cfg.validate()
    heldout = base.heldout(cfg.eval_problems, seed=cfg.seed + 1)
    rate = lambda m: step_error_rates(m, base.tokenizer, base.task, heldout)  # noqa: E731
    pairs, counts = covered_pairs(base, cfg.n_prompts, cfg.group_size, cfg.covered, cfg.seed)
    rates = {"base": rate(base.model)}
    dcfg = DPOConfig(lr=cfg.dpo_lr, beta=cfg.dpo_beta, steps=cfg.dpo_steps,
                     eval_every=max(1, cfg.dpo_steps), seed=cfg.seed)
    rates["dpo"] = rate(train_dpo(base, dcfg, pairs=pairs, progress=progress,
                                  heldout=heldout[:8]).model)
    for name in cfg.online:
        if online_policies and name in online_policies:
            rates[name] = rate(online_policies[name])
            continue
        method = get_method(name)          # validate() allowed "reinforce" and "grpo" only
        ocfg = method.config(steps=cfg.online_steps, eval_every=0, seed=cfg.seed)
        rates[name] = rate(method.train(base, ocfg, heldout=None, progress=progress).model)
    return {"rates": rates, "pairs": len(pairs), "rejected_modes": counts}


def rate_changes(result: dict) -> dict:
    """{method: {mode: rate - base rate}} from run_offline_online's result."""
    base = result["rates"]["base"]
    return {k: {m: v[m] - base[m] for m in MODES} for k, v in result["rates"].items() if k != "base"}


# ----------------------------------------------------------------------------- C3 as a study


C3_METHODS = ("dpo_carry", "dpo_units", "grpo", "reinforce")    # labels: registry.LABELS
C3_COVERED = {"dpo_carry": ("carry",), "dpo_units": ("units",)}


@dataclass
class CoverageRunConfig:
    """One run of claim C3 in the claims study (refimpl.experiments.claims_study.study): a method, an lr, a seed.

    The budget is ``budget_samples`` completions generated: the online methods sample them
    during training (budget / (B G) steps of B x G), the DPO methods sample them all from the
    base up front (budget / G prompts x G samples) and keep the pairs that cover their mode,
    then take ``dpo_steps`` updates of ``dpo_batch`` pairs (the same for both DPO methods,
    whatever number of pairs their filter kept)."""

    budget_samples: int = 2560
    prompts_per_step: int = 16       # B of the online methods
    group_size: int = 8              # G: samples per prompt (online methods and DPO's data)
    dpo_steps: int = 40
    dpo_batch: int = 32
    dpo_beta: float = 0.1
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"budget_samples": 1, "prompts_per_step": 1, "group_size": 2,
                            "dpo_steps": 1, "dpo_batch": 1, "seed": None},
                     positive=("dpo_beta",))
        if self.budget_samples < self.prompts_per_step * self.group_size:
            raise ValueError(f"budget_samples ({self.budget_samples}) buys less than one online "
                             f"step of {self.prompts_per_step} x {self.group_size}")


def coverage_run(method: str, base, lr: float, cfg: CoverageRunConfig, problems) -> dict:
    """Train ``method`` (one of C3_METHODS) from ``base`` at ``lr`` and measure the step error
    rates (``step_error_rates``) of the base and of the trained policy on ``problems``.

    Returns {"base_rates", "rates": {mode: rate}, "<mode>_change": rate - base rate for each
    mode, "steps", "samples" (completions generated), "pairs" (DPO: pairs kept, else 0),
    "pair_modes" (DPO: the rejected modes of the kept pairs)}."""
    cfg = check_study_run("coverage_run", method, C3_METHODS, lr, cfg, CoverageRunConfig, problems)
    rate = lambda m: step_error_rates(m, base.tokenizer, base.task, problems)  # noqa: E731
    base_rates = rate(base.model)
    out = {"method": method, "pairs": 0, "pair_modes": {}}
    if method in C3_COVERED:
        n_prompts = cfg.budget_samples // cfg.group_size
        pairs, _ = covered_pairs(base, n_prompts, cfg.group_size, C3_COVERED[method], cfg.seed)
        task = base.task
        out["pair_modes"] = dict(Counter(classify(task, p, t) for p, t in
                                         zip(pairs.problems, pairs.rejected_texts)))
        dcfg = DPOConfig(lr=lr, beta=cfg.dpo_beta, batch_size=cfg.dpo_batch, steps=cfg.dpo_steps,
                         eval_every=cfg.dpo_steps, seed=cfg.seed)
        policy = train_dpo(base, dcfg, pairs=pairs, progress=False, heldout=problems[:4]).model
        out.update(steps=cfg.dpo_steps, samples=n_prompts * cfg.group_size, pairs=len(pairs))
    else:
        steps = -(-cfg.budget_samples // (cfg.prompts_per_step * cfg.group_size))
        online = get_method(method)     # "grpo" or "reinforce" (RLOO baseline)
        ocfg = online.config(steps=steps, lr=lr, eval_every=0, seed=cfg.seed,
                             **online.study_fields(cfg))   # B, G (and RLOO) from cfg
        policy = online.train(base, ocfg, heldout=None).model
        out.update(steps=steps, samples=steps * cfg.prompts_per_step * cfg.group_size)
    rates = rate(policy)
    out.update(base_rates=base_rates, rates=rates,
               **{f"{m}_change": rates[m] - base_rates[m] for m in MODES})
    return out
