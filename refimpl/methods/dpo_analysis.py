"""Where DPO moves probability mass, and what its implicit reward is worth: the measurements
behind notebook 02 (claim C4, likelihood displacement), apart from the trainer.

- ``where_mass_goes``: at the first token where a pair's chosen and rejected completions
  differ, the probability of the chosen token, of the rejected one and of everything else,
  and the log-prob of the chosen completion before, at and after that split;
- ``rerank_by_implicit_reward``: best-of-n selection by the DPO implicit reward
  beta * log(pi_theta / pi_ref) (Rafailov et al. 2023, sec. 5) against selection by log pi and
  at random, judged by the verifier;
- ``pair_walkthrough``: every quantity of one DPO step on given pairs (notebook 01's worked
  example), each computed by ``refimpl.methods.dpo``.
"""
from __future__ import annotations

import torch

from refimpl.core.evaluation import completions_for
from refimpl.core.logprobs import completion_logits, gather_token_logprobs, sequence_logprobs
from refimpl.core.model import eval_mode
from refimpl.core.preferences import PreferencePairs
from refimpl.methods.dpo import dpo_gradient_weight, dpo_loss, dpo_loss_grad, implicit_reward


@torch.no_grad()
def where_mass_goes(model, pairs: PreferencePairs) -> dict[str, float]:
    """Split each pair at the first token where y_w and y_l differ and report, as means over
    the pairs: the probability of the ``chosen`` token, the ``rejected`` token and ``other``
    tokens at that position, and the log-probs of the chosen and rejected completions on the
    shared ``prefix``, the ``diverge`` token and the ``suffix`` after it.

    On the shared prefix log pi(y_w) and log pi(y_l) contain the same terms, so the DPO
    gradient on them cancels exactly: any change there is a side effect of shared parameters.
    Likelihood displacement (Razin et al. 2025, "Unintentional Unalignment: Likelihood
    Displacement in Direct Preference Optimization") shows up as ``other`` growing and the
    chosen log-probs falling.
    """
    differ = pairs.chosen_ids != pairs.rejected_ids                      # (N, T)
    p = pairs[differ.any(1).nonzero().flatten().cpu()]
    t0 = (p.chosen_ids != p.rejected_ids).float().argmax(1)              # (n,) first difference
    n = len(p)
    with eval_mode(model):
        logits = completion_logits(model, p.prompt_ids.repeat(2, 1), p.prompt_mask.repeat(2, 1),
                                   torch.cat([p.chosen_ids, p.rejected_ids]),
                                   torch.cat([p.chosen_mask, p.rejected_mask]))  # (2n, T, V)
    lp = gather_token_logprobs(logits, torch.cat([p.chosen_ids, p.rejected_ids]),
                               torch.cat([p.chosen_mask, p.rejected_mask]))  # (2n, T)
    lp_c, lp_r = lp[:n], lp[n:]                                          # (n, T) each
    rows = torch.arange(n, device=t0.device)                             # (n,)
    probs = torch.softmax(logits[:n].float()[rows, t0], dim=-1)          # (n, V) same prefix
    chosen = probs[rows, p.chosen_ids[rows, t0]]                         # (n,)
    rejected = probs[rows, p.rejected_ids[rows, t0]]                     # (n,)
    out = {"p_chosen": chosen.mean().item(), "p_rejected": rejected.mean().item(),
           "p_other": (1 - chosen - rejected).mean().item()}
    pos = torch.arange(lp_c.shape[1], device=t0.device)[None]            # (1, T)
    for name, seg in (("prefix", pos < t0[:, None]), ("diverge", pos == t0[:, None]),
                      ("suffix", pos > t0[:, None])):                    # (n, T) each
        out[f"chosen_{name}"] = (lp_c * seg).sum(1).mean().item()
        out[f"rejected_{name}"] = (lp_r * seg).sum(1).mean().item()
    return out


@torch.no_grad()
def rerank_by_implicit_reward(policy, reference, tok, task, problems, n_samples: int = 8,
                              beta: float = 0.1, seed: int = 0) -> dict[str, float]:
    """Use DPO's implicit reward r = beta log pi/pi_ref as a reward model on FRESH samples.

    Samples ``n_samples`` completions per problem from ``policy`` (temperature 1) and picks one
    per problem by each rule; returns the verifier accuracy of the pick: ``random`` (the mean
    over samples), ``implicit_reward`` (highest r), ``policy_logp`` (highest log pi),
    ``ref_logp`` (highest log pi_ref), ``oracle`` (any sample correct); and the mean
    log pi_ref of the implicit-reward picks (``ref_logp_of_pick``) beside the mean over all
    samples (``ref_logp_mean``). problems: B problems; the (B, G) tables use G = n_samples.
    """
    gen = torch.Generator(next(policy.parameters()).device).manual_seed(seed)
    texts = completions_for(policy, tok, task, problems, greedy=False, n_samples=n_samples,
                            generator=gen)
    rep = [p for p in problems for _ in range(n_samples)]
    device = next(policy.parameters()).device
    batch = [t.to(device) for t in (*tok.encode_prompts([p.prompt for p in rep]),
                                    *tok.encode_completions(texts))]
    with eval_mode(policy):
        logp = sequence_logprobs(policy, *batch).view(-1, n_samples)     # (B, G)
    ref_logp = sequence_logprobs(reference, *batch).view(-1, n_samples)  # (B, G)
    r = implicit_reward(logp, ref_logp, beta)                            # (B, G)
    correct = torch.tensor([task.verify(p, t) for p, t in zip(rep, texts)],
                           device=device).view(-1, n_samples)            # (B, G)
    rows = torch.arange(len(problems), device=device)                    # (B,)
    pick = r.argmax(1)                                                   # (B,)
    return {"random": correct.mean().item(),
            "implicit_reward": correct[rows, pick].mean().item(),
            "policy_logp": correct[rows, logp.argmax(1)].mean().item(),
            "ref_logp": correct[rows, ref_logp.argmax(1)].mean().item(),
            "oracle": correct.max(1).values.mean().item(),
            "ref_logp_of_pick": ref_logp[rows, pick].mean().item(),
            "ref_logp_mean": ref_logp.mean().item()}


def pair_walkthrough(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
                     ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
                     beta: float = 0.1) -> list[tuple[str, str, torch.Tensor]]:
    """One DPO step on B pairs, quantity by quantity (Rafailov et al. 2023, eqs. 5 and 7).

    Takes four (B,) tensors of sequence log-probs, as ``dpo.dpo_loss`` does, and returns rows
    (name, formula, values (B,)): the four inputs, the implicit rewards r_w and r_l, the
    margin r_w - r_l, the per-pair loss -log sigmoid(margin), the gradient weight
    w = sigmoid(-margin) and the gradient of the loss with respect to log pi_theta(y_w) and
    log pi_theta(y_l) (-beta w and +beta w). Every value comes from ``implicit_reward``,
    ``dpo_loss``, ``dpo_gradient_weight`` and ``dpo_loss_grad``, so the rows are the library's
    numbers, not a second implementation. Inputs are checked by those functions.
    """
    losses, _ = dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                         ref_rejected_logps, beta)                               # (B,)
    r_w = implicit_reward(policy_chosen_logps, ref_chosen_logps, beta)           # (B,)
    r_l = implicit_reward(policy_rejected_logps, ref_rejected_logps, beta)       # (B,)
    grad_w, grad_l = dpo_loss_grad(policy_chosen_logps, policy_rejected_logps,
                                   ref_chosen_logps, ref_rejected_logps, beta)  # (B,) each
    return [("log pi_theta(y_w|x)", "given", policy_chosen_logps),
            ("log pi_ref(y_w|x)", "given", ref_chosen_logps),
            ("log pi_theta(y_l|x)", "given", policy_rejected_logps),
            ("log pi_ref(y_l|x)", "given", ref_rejected_logps),
            ("implicit reward r_w", "beta * (log pi_theta - log pi_ref)(y_w)", r_w),
            ("implicit reward r_l", "beta * (log pi_theta - log pi_ref)(y_l)", r_l),
            ("margin", "r_w - r_l", r_w - r_l),
            ("loss", "-log sigmoid(margin)", losses.detach()),
            ("gradient weight w", "sigmoid(-margin)", dpo_gradient_weight(r_w, r_l)),
            ("dL / d log pi_theta(y_w)", "-beta * w", grad_w),
            ("dL / d log pi_theta(y_l)", "+beta * w", grad_l)]


def format_walkthrough(rows: list[tuple[str, str, torch.Tensor]], columns: list[str]) -> str:
    """The rows of ``pair_walkthrough`` as an aligned text table, one value column per pair,
    headed by ``columns`` (one name per pair)."""
    if any(len(values) != len(columns) for _, _, values in rows):
        raise ValueError(f"{len(columns)} column names for rows of another number of pairs")
    width = max(11, *(len(c) + 2 for c in columns))
    lines = [f"{'quantity':<26}{'formula':<42}" + "".join(f"{c:>{width}}" for c in columns)]
    for name, formula, values in rows:
        lines.append(f"{name:<26}{formula:<42}"
                     + "".join(f"{v:>{width}.4f}" for v in values.tolist()))
    return "\n".join(lines)
