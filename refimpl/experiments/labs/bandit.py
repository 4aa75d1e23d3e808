"""An exact laboratory for "DPO is RL" (claims C1 and C14): the preference bandit, a bandit
where pi* is known, learned from preference pairs.

Setting. M prompts, each with the same finite set of N responses; a true reward table
r (M, N) and a reference policy pi_ref (M, N) with full support. Per prompt, the
KL-regularised RLHF objective

    J(pi) = E_{y ~ pi}[r(y)] - beta * KL(pi || pi_ref)

is maximised by pi*(y) = pi_ref(y) exp(r(y) / beta) / Z with Z = sum_y pi_ref(y) exp(r(y)/beta),
and its maximum is beta * log Z (Rafailov et al. 2023, eq. 4). Large beta keeps pi* at
pi_ref; small beta sends it to the argmax of r.

Data. B preference pairs: a prompt drawn uniformly, two *distinct* responses drawn from
pi_ref (``sampler="ref"``) or uniformly, the label drawn from Bradley-Terry,
P(y1 preferred to y2) = sigmoid(r(y1) - r(y2)) (eq. 1).

Two routes from the same pairs:
(a) DPO: a softmax policy table (logits initialised at log pi_ref) fitted by minimising the
    DPO loss of ``refimpl.methods.dpo`` over all pairs (full-batch L-BFGS, float64).
(b) RLHF: fit a Bradley-Terry reward table on the pairs, then take the exact optimum of J
    with that reward (what a perfect RL step would reach).
A softmax table can represent every full-support policy, so DPO's implicit reward
beta * log(pi / pi_ref) can be any reward table up to a per-prompt constant, and the DPO loss
is the Bradley-Terry likelihood written in that parameterisation: both routes solve the same
problem and return the same policy (up to optimiser precision). As the pairs grow, the
Bradley-Terry estimate tends to r, and both policies tend to pi*.

Identifiability, and why there is a small penalty:
* Bradley-Terry sees only reward *differences* within a prompt, so r is identified up to a
  per-prompt constant: compare rewards after centring each prompt (``reward_deviation``).
* A response never compared has no data; its estimate is whatever the prior says. Restrict
  comparisons to responses with enough comparisons (``comparison_counts``); drawing pairs
  from a full-support distribution makes every response appear once B is large enough.
* With finite data the maximum-likelihood estimate need not exist: a response that wins
  every comparison it is in (more generally, a prompt whose "beats" graph is not strongly
  connected) makes the likelihood rise forever as its reward goes to +inf, and an
  unregularised fit diverges to a deterministic policy. Both routes therefore add the same
  penalty (reward_l2 / 2) * ||r - mean_prompt(r)||^2 on the (implicit) reward: a Gaussian
  prior, so the fits are MAP estimates. The penalty is fixed while the log-likelihood grows
  with B, so its bias vanishes as B grows; ``reward_l2 = 0`` turns it off.

Shapes: M prompts, N responses, B pairs.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from refimpl.methods.dpo import dpo_loss, implicit_reward

DTYPE = torch.float64


@dataclass
class PreferenceBanditConfig:
    """Size of the preference bandit and the defaults of its experiment."""

    n_prompts: int = 4          # M
    n_responses: int = 6        # N
    reward_scale: float = 1.0   # true rewards ~ reward_scale * Normal(0, 1)
    ref_scale: float = 1.0      # pi_ref = softmax(ref_scale * Normal(0, 1))
    beta: float = 0.5           # KL strength of the objective
    reward_l2: float = 0.1      # prior on the centred reward (see module docstring)
    seed: int = 0


@dataclass
class PreferenceBandit:
    """Notebook 01's preference bandit: M prompts x N responses with a true reward table and a
    reference policy; it is learned from Bradley-Terry preference pairs (module docstring).
    Not the coverage bandit of ``refimpl.experiments.labs.offline_online.CoverageBandit`` nor
    the reward bandit of ``refimpl.methods.reinforce.exact_reward_bandit_gradient``."""

    reward: torch.Tensor     # (M, N) true reward r
    ref_probs: torch.Tensor  # (M, N) pi_ref, rows sum to 1


@dataclass
class Preferences:
    prompt: torch.Tensor    # (B,) prompt index
    chosen: torch.Tensor    # (B,) preferred response y_w
    rejected: torch.Tensor  # (B,) dispreferred response y_l

    def __len__(self) -> int:
        return self.prompt.numel()


def make_preference_bandit(cfg: PreferenceBanditConfig | None = None) -> PreferenceBandit:
    """Random reward and reference tables drawn from ``cfg.seed`` (default config if None)."""
    cfg = PreferenceBanditConfig() if cfg is None else cfg
    if cfg.n_prompts < 1 or cfg.n_responses < 2:
        raise ValueError(f"need n_prompts >= 1 and n_responses >= 2, got {cfg.n_prompts}, "
                         f"{cfg.n_responses}")
    g = torch.Generator().manual_seed(cfg.seed)
    shape = (cfg.n_prompts, cfg.n_responses)
    reward = cfg.reward_scale * torch.randn(shape, generator=g, dtype=DTYPE)  # (M, N)
    ref_logits = cfg.ref_scale * torch.randn(shape, generator=g, dtype=DTYPE)  # (M, N)
    return PreferenceBandit(reward, F.softmax(ref_logits, dim=-1))


def _check_beta(beta: float) -> None:
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")


def optimal_policy(reward: torch.Tensor, ref_probs: torch.Tensor, beta: float) -> torch.Tensor:
    """pi* = pi_ref exp(r / beta) / Z per prompt, shape (M, N) (Rafailov et al. eq. 4)."""
    _check_beta(beta)
    return F.softmax(ref_probs.log() + reward / beta, dim=-1)  # (M, N)


def kl_objective(policy: torch.Tensor, reward: torch.Tensor, ref_probs: torch.Tensor,
                 beta: float) -> torch.Tensor:
    """J(pi) = E_pi[r] - beta KL(pi || pi_ref) per prompt, shape (M,)."""
    kl = (torch.xlogy(policy, policy) - policy * ref_probs.log()).sum(-1)  # (M,)
    return (policy * reward).sum(-1) - beta * kl                          # (M,)


def beta_sweep(reward: torch.Tensor, ref_probs: torch.Tensor, betas) -> torch.Tensor:
    """pi* for each beta in ``betas``, shape (len(betas), M, N)."""
    return torch.stack([optimal_policy(reward, ref_probs, float(b)) for b in betas])


def implied_reward(policy: torch.Tensor, ref_probs: torch.Tensor, beta: float) -> torch.Tensor:
    """beta * log(pi / pi_ref), shape (M, N): the reward pi is optimal for, up to beta log Z."""
    return implicit_reward(policy.log(), ref_probs.log(), beta)  # (M, N)


def tv_distance(p: torch.Tensor, q: torch.Tensor) -> float:
    """Total-variation distance 1/2 sum_y |p - q| between (M, N) policies, mean over prompts."""
    return 0.5 * (p - q).abs().sum(-1).mean().item()


def centred(table: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Subtract each prompt's mean over the entries in ``mask`` (default all), (M, N).

    Entries outside ``mask`` are set to 0. Rewards are compared after this step because
    Bradley-Terry (and so DPO) identifies them only up to a per-prompt constant.
    """
    mask = torch.ones_like(table, dtype=torch.bool) if mask is None else mask
    inside = torch.where(mask, table, 0.0)                                      # (M, N)
    mean = inside.sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1)  # (M, 1)
    return torch.where(mask, table - mean, 0.0)                                # (M, N)


def reward_deviation(estimate: torch.Tensor, true: torch.Tensor,
                     mask: torch.Tensor | None = None) -> float:
    """Max |estimate - true| over ``mask`` after centring the difference per prompt.

    Zero iff the two (M, N) tables agree up to a per-prompt constant on the masked entries
    (``mask`` (M, N) bool, default all, e.g. ``comparison_counts(...) >= 20``); NaN if the
    mask is empty.
    """
    if mask is not None and not mask.any():
        return float("nan")
    return centred(estimate - true, mask).abs().max().item()


@contextmanager
def single_thread():
    """Run torch single-threaded inside the block, then restore the caller's setting.

    The tables here are tiny: worker threads only add wake-up latency (milliseconds per op
    on a busy machine), which would turn a 30 ms fit into seconds.
    """
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n_threads)


def sample_preferences(bandit: PreferenceBandit, n_pairs: int, seed: int = 0,
                       sampler: str = "ref") -> Preferences:
    """Draw ``n_pairs`` Bradley-Terry-labelled pairs of distinct responses (see module doc)."""
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if sampler not in ("ref", "uniform"):
        raise ValueError(f"unknown sampler {sampler!r}: expected 'ref' or 'uniform'")
    g = torch.Generator().manual_seed(seed)
    M, N = bandit.reward.shape
    with single_thread():  # cheap element-wise ops: worker threads only add latency
        prompt = torch.randint(M, (n_pairs,), generator=g)                       # (B,)
        q = (bandit.ref_probs[prompt] if sampler == "ref"
             else torch.ones(n_pairs, N, dtype=DTYPE))                           # (B, N)
        y = torch.multinomial(q, 2, replacement=False, generator=g)              # (B, 2)
        r1 = bandit.reward[prompt, y[:, 0]]                                      # (B,)
        r2 = bandit.reward[prompt, y[:, 1]]                                      # (B,)
        u = torch.rand(n_pairs, generator=g, dtype=DTYPE)                        # (B,)
        first_wins = u < torch.sigmoid(r1 - r2)                                  # (B,)
        chosen = torch.where(first_wins, y[:, 0], y[:, 1])                       # (B,)
        rejected = torch.where(first_wins, y[:, 1], y[:, 0])                     # (B,)
    return Preferences(prompt, chosen, rejected)


def win_counts(prefs: Preferences, M: int, N: int) -> torch.Tensor:
    """wins[m, i, j] = number of pairs at prompt m where i was preferred to j, (M, N, N)."""
    wins = torch.zeros(M * N * N, dtype=DTYPE)
    wins.index_add_(0, (prefs.prompt * N + prefs.chosen) * N + prefs.rejected,
                    torch.ones(len(prefs), dtype=DTYPE))
    return wins.view(M, N, N)


def comparison_counts(prefs: Preferences, M: int, N: int) -> torch.Tensor:
    """Number of pairs each response appears in, (M, N)."""
    wins = win_counts(prefs, M, N)  # (M, N, N)
    return wins.sum(2) + wins.sum(1)


def _centred_l2(reward: torch.Tensor, reward_l2: float) -> torch.Tensor:
    if reward_l2 < 0:
        raise ValueError(f"reward_l2 must be >= 0 (0 turns the prior off), got {reward_l2!r}")
    return 0.5 * reward_l2 * (centred(reward) ** 2).sum()


def _lbfgs(param: torch.Tensor, objective) -> None:
    opt = torch.optim.LBFGS([param], lr=1.0, max_iter=500, tolerance_grad=1e-11,
                            tolerance_change=1e-14, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    with single_thread():
        opt.step(closure)


def fit_dpo(prefs: Preferences, ref_probs: torch.Tensor, beta: float,
            reward_l2: float = 0.1) -> torch.Tensor:
    """Route (a): the softmax policy table minimising the DPO loss on ``prefs``, (M, N).

    Identical pairs are merged: the sum of per-pair losses equals the sum over distinct
    (prompt, y_w, y_l) triples weighted by their counts, which keeps a fit well under a
    second for any number of pairs.
    """
    M, N = ref_probs.shape
    wins = win_counts(prefs, M, N)           # (M, N, N)
    m, w, l = wins.nonzero(as_tuple=True)    # (U,) distinct triples
    count = wins[m, w, l]                    # (U,)
    log_ref = ref_probs.log()                # (M, N)
    logits = log_ref.clone().requires_grad_(True)  # (M, N)

    def objective():
        logp = F.log_softmax(logits, dim=-1)  # (M, N)
        losses, _ = dpo_loss(logp[m, w], logp[m, l], log_ref[m, w], log_ref[m, l], beta)  # (U,)
        penalty = _centred_l2(beta * (logp - log_ref), reward_l2)
        return ((count * losses).sum() + penalty) / len(prefs)

    _lbfgs(logits, objective)
    return F.softmax(logits.detach(), dim=-1)  # (M, N)


def fit_bradley_terry(prefs: Preferences, M: int, N: int,
                      reward_l2: float = 0.1) -> torch.Tensor:
    """Route (b), step 1: MAP Bradley-Terry reward table, centred per prompt, (M, N)."""
    wins = win_counts(prefs, M, N)         # (M, N, N)
    m, w, l = wins.nonzero(as_tuple=True)  # (U,)
    count = wins[m, w, l]                  # (U,)
    reward = torch.zeros(M, N, dtype=DTYPE, requires_grad=True)  # (M, N)

    def objective():
        nll = -(count * F.logsigmoid(reward[m, w] - reward[m, l])).sum()
        return (nll + _centred_l2(reward, reward_l2)) / len(prefs)

    _lbfgs(reward, objective)
    return centred(reward.detach())


def fit_rlhf(prefs: Preferences, ref_probs: torch.Tensor, beta: float,
             reward_l2: float = 0.1) -> torch.Tensor:
    """Route (b): Bradley-Terry reward model, then the exact KL-regularised optimum, (M, N)."""
    M, N = ref_probs.shape
    return optimal_policy(fit_bradley_terry(prefs, M, N, reward_l2), ref_probs, beta)


def predicted_error(bandit: PreferenceBandit, n_pairs: int, beta: float,
                    sampler: str = "ref") -> dict[str, torch.Tensor | float]:
    """Large-sample error of the Bradley-Terry estimate, and the TV it causes in pi.

    Per prompt, with n = n_pairs / M pairs, the maximum-likelihood estimate of the centred
    reward is approximately Normal(r, I^+), I = n sum_{i<j} p_ij s_ij (e_i - e_j)(e_i - e_j)^T,
    where p_ij is the probability of drawing the pair {i, j} and s_ij = sigmoid(d)sigmoid(-d)
    with d = r_i - r_j (the Fisher information of one label). The policy moves by
    J dr, J = (diag(pi*) - pi* pi*^T) / beta (delta method), and for Gaussian errors
    E|dpi_y| = sqrt(2/pi) sd(dpi_y). The penalty is ignored (its effect is O(1/B)).

    Returns ``reward_se`` (M, N), the standard error of each centred reward, and
    ``tv``, the expected TV(pi_fit, pi*) (mean over prompts).
    """
    M, N = bandit.reward.shape
    pi_star = optimal_policy(bandit.reward, bandit.ref_probs, beta)  # (M, N)
    eye = torch.eye(N, dtype=DTYPE)
    reward_se, tv = torch.zeros(M, N, dtype=DTYPE), 0.0
    for k in range(M):
        q = bandit.ref_probs[k] if sampler == "ref" else torch.full((N,), 1.0 / N, dtype=DTYPE)
        p_first = q[:, None] * q[None, :] / (1 - q[:, None])    # (N, N) P(y1=i, y2=j)
        p_pair = (p_first + p_first.T) * (1 - eye)               # (N, N) P({i, j})
        d = bandit.reward[k][:, None] - bandit.reward[k][None, :]  # (N, N)
        a = (n_pairs / M) * p_pair * torch.sigmoid(d) * torch.sigmoid(-d)  # (N, N)
        info = torch.diag(a.sum(1)) - a                          # (N, N) graph Laplacian
        cov = torch.linalg.pinv(info)                            # (N, N)
        reward_se[k] = cov.diagonal().sqrt()
        jac = (torch.diag(pi_star[k]) - torch.outer(pi_star[k], pi_star[k])) / beta  # (N, N)
        sd_pi = (jac @ cov @ jac.T).diagonal().clamp(min=0).sqrt()                  # (N,)
        tv += 0.5 * math.sqrt(2 / math.pi) * sd_pi.sum().item() / M
    return {"reward_se": reward_se, "tv": tv}


def tv_vs_pairs(bandit: PreferenceBandit, n_pairs_list, beta: float, reward_l2: float = 0.1,
                seed: int = 0, sampler: str = "ref", n_seeds: int = 1) -> list[dict[str, float]]:
    """Claim C1 in one table: for each data size, fit both routes on the same pairs.

    Each row (means over ``n_seeds`` independent data sets): ``n_pairs``,
    ``tv_dpo_opt`` = TV(DPO, pi*), ``tv_rlhf_opt`` = TV(RM + RLHF, pi*),
    ``tv_dpo_rlhf`` = TV(DPO, RM + RLHF), ``reward_dev``, the max deviation of DPO's implied
    reward from r up to a per-prompt constant over responses compared at least 20 times
    (NaN if none), and ``tv_predicted`` (``predicted_error``, no fitting involved).
    """
    M, N = bandit.reward.shape
    pi_star = optimal_policy(bandit.reward, bandit.ref_probs, beta)  # (M, N)
    rows = []
    for i, n in enumerate(n_pairs_list):
        runs = []
        for k in range(n_seeds):
            prefs = sample_preferences(bandit, int(n), seed=seed + 1000 * i + k, sampler=sampler)
            pi_dpo = fit_dpo(prefs, bandit.ref_probs, beta, reward_l2)     # (M, N)
            pi_rlhf = fit_rlhf(prefs, bandit.ref_probs, beta, reward_l2)   # (M, N)
            mask = comparison_counts(prefs, M, N) >= 20                    # (M, N)
            runs.append({
                "tv_dpo_opt": tv_distance(pi_dpo, pi_star),
                "tv_rlhf_opt": tv_distance(pi_rlhf, pi_star),
                "tv_dpo_rlhf": tv_distance(pi_dpo, pi_rlhf),
                "reward_dev": reward_deviation(implied_reward(pi_dpo, bandit.ref_probs, beta),
                                               bandit.reward, mask),
            })
        row = {"n_pairs": int(n)}
        row.update({key: sum(run[key] for run in runs) / n_seeds for key in runs[0]})
        row["tv_predicted"] = predicted_error(bandit, int(n), beta, sampler)["tv"]
        rows.append(row)
    return rows
