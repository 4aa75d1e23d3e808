"""A learned process reward model (PRM): a step classifier on top of the base transformer.

Lightman et al. 2023 ("Let's Verify Step by Step") train a model to predict, after each step
of a solution, whether that step is correct, and score a solution by its steps. Here the
labels come from the exact step verifier (``task.verify_steps``) on completions sampled from
the base policy, and the final answer is scored as one more step (label: the outcome
verifier), exactly as in the exact process reward of refimpl.core.rewards (eq. 1):

    R_PRM(x, y) = (sum_{k=1..K} p_k + p_ans) / (K + 1),        p_k = sigma(w^T h_k + c)   (2)

where h_k (W*C,) concatenates the final-layer states of a frozen copy of the base at the last
W tokens of step k, the one that closes it (its "," or "|" delimiter) and the W-1 before it
(W = 3: the two digits of a column sum and the delimiter), and h_ans those up to EOS. A step the text does not
contain gets p_k = 0 (the exact verifier marks it wrong too). ``reduce="min"`` scores a
completion by its weakest step instead (another common choice).

The classifier is a small MLP head trained with binary cross-entropy on the frozen states.
Its step accuracy is measured on held-out PROMPTS (not assumed): it is a proxy with its own
errors, and a policy optimising it is pushed towards whatever those errors reward.
"""
from __future__ import annotations

import copy
import random
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from refimpl.core import checks
from refimpl.core.training import TrainResult, adamw, check_fields
from refimpl.core.utils import seed_everything

REDUCTIONS = ("mean", "min")


@dataclass
class PRMConfig:
    """Head size and training budget; the defaults train in about a second on the CPU."""

    hidden: int = 64              # width of the MLP head (0: a linear head)
    window: int = 3               # W: states of the last W tokens of each step are the input
    steps: int = 200              # optimizer steps of full-batch training on the features
    lr: float = 3e-3
    weight_decay: float = 1e-3
    heldout_frac: float = 0.25    # share of PROMPTS whose steps are kept for evaluation
    seed: int = 0

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"hidden": 0, "window": 1, "steps": 0, "seed": None},
                     positive=("lr",), nonnegative=("weight_decay",),
                     intervals={"heldout_frac": (0, 1, "()")},
                     why={"hidden": "0 gives a linear head"})


def step_positions(text: str, n_steps: int) -> list[int | None]:
    """Completion-token index that closes each of the ``n_steps`` working steps, then EOS.

    The working is ``text.split("|")[0]``, split at ","; step k ends at the delimiter after
    field k ("," or "|"), or at EOS (index len(text)) when nothing follows it. Missing fields
    give None. The last entry is the EOS index, where the answer is scored. Character k of
    the text is completion token k (refimpl.core.tokenizer is character-level).
    """
    working = text.split("|")[0]
    fields = working.split(",") if working else []
    out, end = [], -1
    for k in range(n_steps):
        if k >= len(fields):
            out.append(None)
            continue
        end += len(fields[k]) + 1  # index of the delimiter after field k (or EOS)
        out.append(min(end, len(text)))
    return out + [len(text)]


class ProcessRewardModel(nn.Module):
    """A frozen copy of the base GPT (the trunk) and a trainable step classifier (the head)."""

    def __init__(self, base_model, tokenizer, task, hidden: int = 64, window: int = 3):
        super().__init__()
        checks.count("window", window, 1)
        checks.count("hidden", hidden, 0, "0 gives a linear head")
        self.trunk = copy.deepcopy(base_model).eval().requires_grad_(False)
        self.tok, self.task, self.window = tokenizer, task, window
        C = self.trunk.config.n_embd * window
        self.head = (nn.Sequential(nn.Linear(C, hidden), nn.GELU(), nn.Linear(hidden, 1))
                     if hidden > 0 else nn.Linear(C, 1))
        self.head.to(next(self.trunk.parameters()).device)
        self.n_steps = len(task.verify_steps(task.problems("train", 1)[0], ""))

    @torch.no_grad()
    def features(self, prompts: list[str], texts: list[str]):
        """Features of every step: returns h (N, K+1, W*C) and present (N, K+1) bool."""
        p_ids, p_mask = self.tok.encode_prompts(prompts)  # (N, P)
        c_ids, c_mask = self.tok.encode_completions(texts)  # (N, T)
        P, T = p_ids.shape[1], c_ids.shape[1]
        dev = next(self.trunk.parameters()).device
        idx = torch.cat([p_ids, c_ids], dim=1).to(dev)  # (N, P+T)
        mask = torch.cat([p_mask, c_mask], dim=1).to(dev)  # (N, P+T)
        h = self.trunk.hidden(idx, mask)[:, P:]  # (N, T, C)
        pos = [[-1 if q is None else min(q, T - 1) for q in step_positions(t, self.n_steps)]
               for t in texts]
        pos = torch.tensor(pos, device=dev)  # (N, K+1)
        present = pos >= 0  # (N, K+1)
        feats = []
        for back in range(self.window - 1, -1, -1):
            at = (pos - back).clamp(min=0)  # (N, K+1)
            feats.append(torch.gather(h, 1, at[..., None].expand(-1, -1, h.shape[-1])))  # (N, K+1, C)
        return torch.cat(feats, dim=-1), present  # (N, K+1, W*C)

    def step_probs(self, prompts: list[str], texts: list[str]) -> torch.Tensor:
        """Predicted probability that each step (and the answer) is right: (N, K+1), 0 if absent."""
        h, present = self.features(prompts, texts)  # (N, K+1, W*C), (N, K+1)
        with torch.no_grad():
            p = torch.sigmoid(self.head(h).squeeze(-1))  # (N, K+1)
        return torch.where(present, p, 0.0)  # (N, K+1)

    def score(self, prompts: list[str], texts: list[str], reduce: str = "mean") -> torch.Tensor:
        """PRM reward (2) of each completion: (N,) in [0, 1]."""
        if reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduce {reduce!r}; choose one of {REDUCTIONS}")
        p = self.step_probs(prompts, texts)  # (N, K+1)
        return p.mean(dim=1) if reduce == "mean" else p.amin(dim=1)  # (N,)

    def reward_fn(self, reduce: str = "mean"):
        """A trainer reward_fn(problem, text) -> float; never raises (unscorable text: 0.0).

        It also has ``.score(problems, texts) -> list[float]``, which scores many completions
        in one forward pass (every trainer uses it: ``refimpl.core.rollouts.score_texts``).
        """
        if reduce not in REDUCTIONS:
            raise ValueError(f"unknown reduce {reduce!r}; choose one of {REDUCTIONS}")

        def batch(problems, texts) -> list[float]:
            try:
                return self.score([p.prompt for p in problems], [str(t) for t in texts],
                                  reduce).tolist()
            except Exception:  # some text cannot be encoded: score one by one
                return [fn(p, t) for p, t in zip(problems, texts)]

        def fn(problem, text) -> float:
            try:
                return float(self.score([problem.prompt], [str(text)], reduce)[0])
            except Exception:  # text the tokenizer cannot encode, too long, ...
                return 0.0
        fn.score = batch
        return fn


def step_labels(task, problems, texts) -> torch.Tensor:
    """Exact labels (N, K+1): verify_steps per working step, then the outcome."""
    return torch.tensor([[float(s) for s in task.verify_steps(p, t)] + [task.verify(p, t)]
                         for p, t in zip(problems, texts)])


def _check_completions(problems, texts) -> None:
    """train_prm's inputs: two lists, one problem per text, not empty."""
    for name, seq in (("problems", problems), ("texts", texts)):
        if not isinstance(seq, (list, tuple)):
            raise TypeError(f"{name} must be a list, got {type(seq).__name__}")
    if len(problems) != len(texts) or not texts:
        raise ValueError(f"need one problem per text, got {len(problems)} problems, {len(texts)} texts")


def prm_metrics(pred: torch.Tensor, y: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> dict:
    """Held-out and train step accuracy of the PRM's predictions (see ``train_prm``).

    pred (N, K+1) bool: step predicted right; y (N, K+1): the step labels; train, test
    (N, K+1) bool: the steps present in the text of a training / held-out prompt."""
    right = pred == y.bool()  # (N, K+1)
    yt = y[test].bool()  # (M',)
    pt = pred[test]  # (M',)
    metrics = {
        "step_accuracy": right[test].float().mean().item(),
        "train_accuracy": right[train].float().mean().item(),
        "majority_rate": max(yt.float().mean().item(), 1 - yt.float().mean().item()),
        "false_positive_rate": (pt & ~yt).sum().item() / max(1, (~yt).sum().item()),
        "false_negative_rate": (~pt & yt).sum().item() / max(1, yt.sum().item()),
        "n_train": int(train.sum()), "n_heldout": int(test.sum()),
    }
    for k in range(y.shape[1]):
        m = test[:, k]
        metrics[f"acc/step_{k}"] = right[m, k].float().mean().item() if m.any() else float("nan")
    return metrics


def train_prm(base, cfg: PRMConfig | None = None, *, problems, texts) -> TrainResult:
    """Fit a PRM on sampled completions; returns a TrainResult (model: the ProcessRewardModel;
    history: one row, its metrics).

    base: the SFT Base (its GPT, frozen, is the PRM's trunk); cfg: a PRMConfig (None: defaults).
    problems, texts: N completions of the base policy (one Problem per text; a Rollout's
        ``[r.problems[i // G] for i in ...]`` and ``r.texts``). Labels: ``step_labels``.
    Prompts are split into train / held-out (cfg.heldout_frac); the metrics (all on held-out
    steps that are present in the text): step_accuracy, majority_rate (accuracy of always
    predicting the more common label), false_positive_rate (wrong steps scored >= 0.5),
    false_negative_rate, accuracy per step index ("acc/step_k", the last is the answer),
    and the train accuracy, plus n_train / n_heldout step counts and the final ``loss``.
    """
    cfg = checks.config("cfg", cfg, PRMConfig)
    cfg.validate()
    _check_completions(problems, texts)
    seed_everything(cfg.seed)
    prm = ProcessRewardModel(base.model, base.tokenizer, base.task, cfg.hidden, cfg.window)
    prompts = sorted({p.prompt for p in problems})
    random.Random(cfg.seed).shuffle(prompts)
    held = set(prompts[:max(1, int(len(prompts) * cfg.heldout_frac))])
    h, present = prm.features([p.prompt for p in problems], list(texts))  # (N, K+1, W*C), (N, K+1)
    is_held = torch.tensor([p.prompt in held for p in problems], device=h.device)  # (N,)
    y = step_labels(base.task, problems, texts).to(h.device)  # (N, K+1)
    train = present & ~is_held[:, None]  # (N, K+1)
    test = present & is_held[:, None]  # (N, K+1)
    opt = adamw(prm.head.parameters(), cfg.lr, cfg.weight_decay)
    xs, ys = h[train], y[train]  # (M, W*C), (M,)
    for _ in range(cfg.steps):
        loss = F.binary_cross_entropy_with_logits(prm.head(xs).squeeze(-1), ys)  # ()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = prm.head(h).squeeze(-1) > 0  # (N, K+1)
    metrics = {**prm_metrics(pred, y, train, test), "loss": loss.item()}
    return TrainResult(prm, [metrics])
