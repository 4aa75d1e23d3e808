"""A Bradley-Terry reward model learned from preference pairs.

Classic RLHF (Ouyang et al. 2022, "Training language models to follow instructions with
human feedback", eq. 1) fits a scalar reward r_phi(x, y) to comparisons with the
Bradley-Terry likelihood P(y_w > y_l | x) = sigmoid(r_phi(x, y_w) - r_phi(x, y_l)):

    loss(phi) = - E_(x, y_w, y_l) [ log sigmoid( r_phi(x, y_w) - r_phi(x, y_l) ) ].

Here r_phi is a copy of the base transformer with a scalar linear head, read at the last
completion token (EOS) of ``model.hidden``: by then the causal model has seen the prompt and
the whole completion. The pairs are the same verifier-judged base samples DPO trains on
(``refimpl.core.preferences``).

The model is deliberately trained on LIMITED data (by default 128 training prompts, a few
hundred pairs, all sampled from the base policy). It scores completions like the base's own
well, but it has never seen what a policy optimised against it will write: that gap is what
GRPO exploits when it is given this model instead of the verifier (reward hacking, claim C10).
Its held-out pairwise accuracy (pairs from held-out prompts) measures the in-distribution
quality only.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from refimpl.core import checks
from refimpl.core.model import eval_mode
from refimpl.core.preferences import PreferencePairs, build_pairs, check_pairs, pair_batches
from refimpl.core.training import (Clock, StepBar, TrainResult, adamw, check_fields, log_heldout,
                                   start_history)
from refimpl.core.utils import seed_everything


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor,
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-pair Bradley-Terry loss -log sigmoid(r_w - r_l) (Ouyang et al. 2022, eq. 1).

    chosen_rewards, rejected_rewards: (B,) scalar rewards r(x, y_w), r(x, y_l).
    Returns losses (B,) and batch metrics ``rewards/chosen``, ``rewards/rejected``,
    ``rewards/margins``, ``rewards/accuracies`` (share with r_w > r_l).
    """
    for name, t in (("chosen_rewards", chosen_rewards), ("rejected_rewards", rejected_rewards)):
        checks.finite(name, checks.tensor(name, t, dims=(1,)))
    checks.same_shape(chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards)
    margins = chosen_rewards - rejected_rewards                          # (B,)
    losses = -F.logsigmoid(margins)                                      # (B,)
    with torch.no_grad():
        metrics = {"rewards/chosen": chosen_rewards.mean().item(),
                   "rewards/rejected": rejected_rewards.mean().item(),
                   "rewards/margins": margins.mean().item(),
                   "rewards/accuracies": (margins > 0).float().mean().item()}
    return losses, metrics


class RewardModel(nn.Module):
    """r_phi(x, y): a transformer body (a copy of the base) and a scalar head at EOS."""

    def __init__(self, body):
        super().__init__()
        self.body = body                                                 # a GPT
        self.head = nn.Linear(body.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)                                 # start at r = 0
        nn.init.zeros_(self.head.bias)

    def forward(self, prompt_ids, prompt_mask, completion_ids, completion_mask) -> torch.Tensor:
        """Rewards (B,) of completions (B, T) (right-padded, EOS included) given prompts (B, P)."""
        if prompt_ids.shape != prompt_mask.shape or completion_ids.shape != completion_mask.shape:
            raise ValueError("ids and masks must have the same shapes: prompts (B, P), "
                             "completions (B, T)")
        lengths = completion_mask.sum(1)                                 # (B,)
        if (lengths == 0).any():
            raise ValueError("every completion needs at least one token (its EOS)")
        P = prompt_ids.shape[1]
        idx = torch.cat([prompt_ids, completion_ids], dim=1)             # (B, P+T)
        mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], 1)  # (B, P+T)
        h = self.body.hidden(idx, mask)                                  # (B, P+T, C)
        last = P + lengths - 1                                           # (B,) EOS position
        h_last = h[torch.arange(idx.shape[0], device=idx.device), last]  # (B, C)
        return self.head(h_last).squeeze(-1)                             # (B,)

    @torch.no_grad()
    def score(self, tok, problems, texts, batch_size: int = 1024) -> torch.Tensor:
        """Rewards (N,) of N decoded completions ``texts`` for ``problems`` (batched)."""
        if len(problems) != len(texts):
            raise ValueError(f"{len(problems)} problems but {len(texts)} texts")
        device = self.head.weight.device
        out = []
        with eval_mode(self):
            for i in range(0, len(texts), batch_size):
                p_ids, p_mask = tok.encode_prompts([p.prompt for p in problems[i:i + batch_size]])
                c_ids, c_mask = tok.encode_completions(list(texts[i:i + batch_size]))
                out.append(self(p_ids.to(device), p_mask.to(device),
                                c_ids.to(device), c_mask.to(device)))    # (n,)
        return torch.cat(out).cpu()                                      # (N,)

    def as_reward_fn(self, tok):
        """A reward_fn(problem, text) -> float for trainers (GRPO), with ``.score`` attached.

        One call scores one completion; ``reward_fn.score(problems, texts)`` scores a batch
        in one forward pass. Repeated (prompt, text) pairs are served from a cache.
        """
        cache: dict = {}

        def reward_fn(problem, text) -> float:
            key = (problem.prompt, text)
            if key not in cache:
                cache[key] = self.score(tok, [problem], [text]).item()
            return cache[key]

        reward_fn.score = lambda problems, texts: self.score(tok, problems, texts)
        return reward_fn

    def pairwise_accuracy(self, pairs: PreferencePairs) -> float:
        """Share of pairs with r(x, y_w) > r(x, y_l)."""
        with torch.no_grad():
            r_w, r_l = self.pair_rewards(pairs)
        return (r_w > r_l).float().mean().item()

    def pair_rewards(self, pairs: PreferencePairs) -> tuple[torch.Tensor, torch.Tensor]:
        """Rewards (N,) of the chosen and of the rejected completions, one forward pass."""
        n = len(pairs)
        r = self(pairs.prompt_ids.repeat(2, 1), pairs.prompt_mask.repeat(2, 1),
                 torch.cat([pairs.chosen_ids, pairs.rejected_ids]),
                 torch.cat([pairs.chosen_mask, pairs.rejected_mask]))   # (2N,)
        return r[:n], r[n:]


@dataclass
class RMConfig:
    lr: float = 3e-4
    batch_size: int = 32
    steps: int = 100
    eval_every: int = 25
    seed: int = 0
    n_prompts: int = 128          # limited on purpose (see the module docstring)
    heldout_prompts: int = 128    # prompts for the held-out pairs
    group_size: int = 8
    pairs_per_prompt: int = 2

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"batch_size": 1, "steps": 0, "eval_every": 1, "seed": None,
                            "n_prompts": 1, "heldout_prompts": 1, "group_size": 2,
                            "pairs_per_prompt": 1}, positive=("lr",),
                     why={"group_size": "a pair needs a correct and a wrong sample"})


def rm_data(base, cfg: RMConfig, pairs, heldout_pairs) -> tuple[PreferencePairs, PreferencePairs]:
    """Collect: the training and held-out pairs on the base's device; a None set is built from
    base samples, judged by the verifier (``cfg.n_prompts`` training prompts,
    ``cfg.heldout_prompts`` held-out ones)."""
    tok, task = base.tokenizer, base.task
    if pairs is None:
        pairs = build_pairs(base.model, tok, task,
                            base.train_problems(cfg.n_prompts, seed=cfg.seed),
                            cfg.group_size, cfg.pairs_per_prompt, seed=cfg.seed)
    if heldout_pairs is None:
        heldout_pairs = build_pairs(base.model, tok, task,
                                    base.heldout(cfg.heldout_prompts, seed=cfg.seed),
                                    cfg.group_size, cfg.pairs_per_prompt, seed=cfg.seed + 1)
    return pairs.to(base.device), heldout_pairs.to(base.device)


def rm_evaluate(rm: RewardModel, pairs: PreferencePairs, heldout_pairs: PreferencePairs) -> dict:
    """The evaluation row of ``train_reward_model``: pairwise accuracy on both pair sets."""
    with eval_mode(rm):
        return {"train_pairwise_acc": rm.pairwise_accuracy(pairs),
                "heldout_pairwise_acc": rm.pairwise_accuracy(heldout_pairs)}


def train_reward_model(base, cfg: RMConfig | None = None, *, pairs: PreferencePairs | None = None,
                       heldout_pairs: PreferencePairs | None = None,
                       progress: bool = True) -> TrainResult:
    """Fit a Bradley-Terry reward model on ``pairs`` (default: base samples on
    ``cfg.n_prompts`` training prompts, judged by the verifier).

    base: the SFT Base (the model starts from a copy of its GPT); cfg: an RMConfig (None:
        defaults).
    heldout_pairs: pairs for ``heldout_pairwise_acc`` (default: base samples on
        ``cfg.heldout_prompts`` held-out prompts).
    progress: show a progress bar.
    Returns a TrainResult: model, the trained RewardModel (eval mode, gradients off), and
    history, rows with ``step``, ``time_s``, ``samples`` (the completions generated to build
    the training pairs, ``pairs.stats["samples_generated"]``, the same in every row; 0 for
    pairs that carry no count), ``pairs`` (pairs consumed so far), ``loss``, the batch metrics
    and, at step 0 and every ``cfg.eval_every`` steps, ``train_pairwise_acc`` and
    ``heldout_pairwise_acc``.
    """
    cfg = checks.config("cfg", cfg, RMConfig)
    cfg.validate()
    check_pairs("pairs", pairs)
    check_pairs("heldout_pairs", heldout_pairs)
    seed_everything(cfg.seed)
    pairs, heldout_pairs = rm_data(base, cfg, pairs, heldout_pairs)
    rm = RewardModel(copy.deepcopy(base.model)).to(base.device).train().requires_grad_(True)
    opt = adamw(rm.parameters(), cfg.lr)
    batches = pair_batches(len(pairs), cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    evaluate = partial(rm_evaluate, rm, pairs, heldout_pairs)
    generated = pairs.stats.get("samples_generated", 0)    # completions behind the pairs
    clock = Clock()
    history = start_history(cfg, clock, evaluate, samples=generated, pairs=0)
    consumed = 0
    bar = StepBar(cfg.steps, "reward model", progress)
    for step in bar:
        idx = next(batches)                                              # (B,)
        consumed += len(idx)
        r_w, r_l = rm.pair_rewards(pairs[idx])                           # (B,) each
        losses, metrics = bradley_terry_loss(r_w, r_l)                   # (B,)
        loss = losses.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        row = {"step": step, "time_s": clock(), "samples": generated, "pairs": consumed,
               "loss": loss.item(), **metrics}
        log_heldout(row, cfg, clock, evaluate)
        history.append(row)
    bar.close()
    rm.eval().requires_grad_(False)
    return TrainResult(rm, history)
