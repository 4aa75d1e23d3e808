"""refimpl's losses next to TRL's trainers: equal numbers on the same model and data.

DPO (Rafailov et al. 2023, eq. 7): ``compare_dpo`` trains a tiny ``transformers`` model with
TRL 1.16's ``DPOTrainer`` for a few full-batch steps and, before each step, evaluates
``refimpl.methods.dpo.dpo_loss`` on the same parameters; the logged loss and implicit-reward metrics
(``DPO_METRICS``) must agree, and the first loss is ln 2 (policy = reference).

GRPO (Shao et al. 2024, DeepSeekMath eq. 3-4): ``trl_grpo_batch`` runs TRL's own
``_generate_and_score_completions`` (sampling, reward functions, reference log-probs, group
advantages A_i = (r_i - mean r) / (std r + 1e-4)); ``compare_grpo`` feeds that batch to TRL's
``_compute_loss`` and to ``refimpl.methods.grpo.group_advantages`` and ``grpo_loss``. ``ScriptedReward``
hands TRL preset rewards, so that both sides score the same completions the same way. The same
comparison covers TRL's variants: GSPO (importance_sampling_level="sequence"), CISPO
(loss_type="cispo") and the importance-weighted k3 (use_bias_correction_kl=True), losses and
gradients.

Shapes: B prompts, G completions per prompt (group-major rows), P prompt and T completion
tokens. TRL is optional: the functions that build TRL objects call
``trl_bridge.require_trl()`` first, which says how to install it.
"""
from __future__ import annotations

import copy
import shutil
import tempfile

import torch

from refimpl.methods.dpo import dpo_loss
from refimpl.methods.grpo import group_advantages, grpo_loss
from refimpl.experiments.to_trl.trl_bridge import (hf_token_logprobs, hf_tokenizer, quiet,
                                                   require_trl, silence, trl_args)

# ----------------------------------------------------------------------------------------
# DPO: TRL's DPOTrainer next to refimpl.methods.dpo.dpo_loss
# ----------------------------------------------------------------------------------------

DPO_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies",
               "logps/chosen", "logps/rejected")


def preference_rows(pairs) -> list[dict]:
    """TRL's standard preference format from ``refimpl.core.preferences.PreferencePairs``:
    one dict per pair with "prompt", "chosen", "rejected" (texts; TRL appends EOS)."""
    return [{"prompt": p.prompt, "chosen": c, "rejected": r}
            for p, c, r in zip(pairs.problems, pairs.chosen_texts, pairs.rejected_texts)]


def refimpl_dpo_on(model, ref_model, tok, rows, beta: float):
    """``dpo_loss`` on ``model``'s log-probs of ``rows`` (the refimpl side of the comparison).

    Prompts and completions are encoded with refimpl's ``CharTokenizer`` ``tok`` (prompts
    left-padded with BOS, completions right-padded with EOS). Returns (mean loss, metrics).
    """
    prompt_ids, prompt_mask = tok.encode_prompts([r["prompt"] for r in rows])       # (N, P)
    ids, mask = tok.encode_completions([r["chosen"] for r in rows] +
                                       [r["rejected"] for r in rows])               # (2N, T)
    with torch.no_grad():
        args = (prompt_ids.repeat(2, 1), prompt_mask.repeat(2, 1), ids, mask)
        logps = hf_token_logprobs(model, *args).sum(-1)                             # (2N,)
        ref = hf_token_logprobs(ref_model, *args).sum(-1)                           # (2N,)
    N = len(rows)
    losses, metrics = dpo_loss(logps[:N], logps[N:], ref[:N], ref[N:], beta)        # (N,)
    return losses.mean().item(), metrics


def compare_dpo(model, tok, rows, beta: float = 0.1, steps: int = 3, lr: float = 1e-2,
                **trl_overrides) -> list[dict]:
    """Train ``model`` with TRL's DPOTrainer on ``rows`` for ``steps`` full-batch steps and,
    before each step, evaluate refimpl's ``dpo_loss`` on the same parameters.

    model: a ``transformers`` causal LM (trained in place); tok: refimpl's CharTokenizer.
    Returns one dict per step with "step", "loss/trl", "loss/refimpl" and, for each name in
    DPO_METRICS, "<name>/trl" and "<name>/refimpl".
    """
    require_trl()
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    if not rows or not all({"prompt", "chosen", "rejected"} <= set(r) for r in rows):
        raise ValueError("rows must be a non-empty list of dicts with 'prompt', 'chosen' and "
                         "'rejected' texts (see preference_rows)")

    ref_model = copy.deepcopy(model).eval()
    ours: list[dict] = []

    class BeforeStep(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kw):
            loss, metrics = refimpl_dpo_on(model, ref_model, tok, rows, beta)
            ours.append({"loss": loss, **metrics})

    with quiet():
        cfg = trl_args(DPOConfig, per_device_train_batch_size=len(rows), max_steps=steps,
                       learning_rate=lr, beta=beta, **trl_overrides)
        trainer = silence(DPOTrainer(model=model, ref_model=ref_model, args=cfg,
                                     train_dataset=Dataset.from_list(rows),
                                     processing_class=hf_tokenizer(tok), callbacks=[BeforeStep()]))
        trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h and "rewards/margins" in h]
    out = []
    for step, (theirs, mine) in enumerate(zip(logs, ours), start=1):
        row = {"step": step, "loss/trl": theirs["loss"], "loss/refimpl": mine["loss"]}
        for k in DPO_METRICS:
            row[f"{k}/trl"], row[f"{k}/refimpl"] = theirs[k], mine[k]
        out.append(row)
    return out


# ----------------------------------------------------------------------------------------
# GRPO: TRL's GRPOTrainer internals next to refimpl.methods.grpo
# ----------------------------------------------------------------------------------------

class ScriptedReward:
    """A TRL reward function that returns preset rewards, so both sides see the same numbers.

    TRL calls ``reward(prompts, completions, completion_ids, **columns) -> list[float]`` once
    per generation batch (B*G completions, group-major); set ``.rewards`` (B*G,) before it.
    """

    __name__ = "scripted"

    def __init__(self, rewards=None):
        self.rewards = rewards

    def __call__(self, prompts, completions, **kwargs):
        if self.rewards is None or len(self.rewards) != len(completions):
            raise ValueError(f"ScriptedReward holds {0 if self.rewards is None else len(self.rewards)} "
                             f"rewards for {len(completions)} completions; set .rewards first")
        return [float(r) for r in self.rewards]


def make_grpo_trainer(model, tok, prompts: list[str], reward_funcs, **grpo_kwargs):
    """A ``trl.GRPOTrainer`` on a copy of ``model`` (saved to a temporary folder and loaded back,
    so TRL builds its own frozen reference when beta > 0, with no hub access).

    prompts: the train_dataset's "prompt" column; reward_funcs: TRL reward function(s);
    grpo_kwargs: ``trl.GRPOConfig`` arguments (e.g. from ``to_trl_grpo_kwargs``).
    """
    require_trl()
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    path = tempfile.mkdtemp(prefix="tiny_llama_")
    with quiet():
        model.save_pretrained(path)
        cfg = trl_args(GRPOConfig, **grpo_kwargs)
        trainer = GRPOTrainer(model=path, reward_funcs=reward_funcs, args=cfg,
                              train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                              processing_class=hf_tokenizer(tok))
    shutil.rmtree(path, ignore_errors=True)      # policy and reference are loaded in memory now
    return silence(trainer)


def trl_grpo_batch(trainer, prompts: list[str]) -> dict:
    """One generation batch through TRL's own ``_generate_and_score_completions``: samples
    G = num_generations completions per prompt, scores them, computes the reference log-probs
    and the group advantages. Returns TRL's dict (prompt_ids (B*G, P), prompt_mask,
    completion_ids (B*G, T), completion_mask, advantages (B*G,), ref_per_token_logps, ...)."""
    G = trainer.num_generations
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    inputs = [{"prompt": p} for p in prompts for _ in range(G)]     # group-major, as TRL's sampler
    with quiet(), torch.no_grad():
        return trainer._generate_and_score_completions(inputs)


def compare_grpo(trainer, batch: dict, rewards: torch.Tensor, logratio_noise: float = 0.0,
                 seed: int = 0, loss_type: str | None = None, kl_importance_weight: bool = False,
                 grads: bool = False) -> dict:
    """TRL's advantages and ``_compute_loss`` against refimpl's on the same batch.

    batch: the output of ``trl_grpo_batch`` (TRL's prompt/completion ids and masks,
        advantages, ref_per_token_logps).
    rewards: (B*G,) the rewards TRL's reward function returned for ``batch``.
    logratio_noise: std of noise added to log pi_old (detached policy log-probs), so that the
        ratio moves away from 1 and the clip acts (0 = on-policy, TRL's own default path).
    loss_type: sets the trainer's loss_type ("grpo", "dapo", "dr_grpo" = refimpl's loss_agg,
        "cispo" = surrogate "cispo" with loss_agg "dapo"; it stays set); None keeps the
        trainer's. The trainer's importance_sampling_level ("token", or "sequence" = GSPO) is
        used on both sides.
    kl_importance_weight: refimpl's KL weighting (TRL's is its use_bias_correction_kl).
    grads: also backpropagate both losses and return the model's gradients.
    TRL's metric lists of the trainer (``trainer._metrics["train"]``) are cleared first.
    Returns {"advantages/trl", "advantages/refimpl" (B*G,), "loss/trl", "loss/refimpl",
    "clip_ratio/trl", "clip_ratio/refimpl", "kl/trl", "kl/refimpl"} and, with grads,
    "grad/trl", "grad/refimpl": (n_params,) all parameter gradients, flattened.
    """
    a = trainer.args
    if loss_type is not None:
        trainer.loss_type = a.loss_type = loss_type
    G, model = trainer.num_generations, trainer.model.train()
    adv = group_advantages(rewards, G, scale=a.scale_rewards, eps=1e-4)              # (B*G,)
    args = (batch["prompt_ids"], batch["prompt_mask"], batch["completion_ids"], batch["completion_mask"])
    with torch.no_grad():
        old = hf_token_logprobs(model, *args)                                        # (B*G, T)
        gen = torch.Generator().manual_seed(seed)
        mask = batch["completion_mask"].bool()                                       # (B*G, T)
        old = torch.where(mask, old + logratio_noise * torch.randn(old.shape, generator=gen), 0.0)
    batch = dict(batch, old_per_token_logps=old)
    trainer._metrics["train"].clear()
    with quiet():
        loss_trl = trainer._compute_loss(model, batch)
    grad_trl = _backward(model, loss_trl) if grads else None
    m = trainer._metrics["train"]
    logps = hf_token_logprobs(model, *args)                                          # (B*G, T)
    ref = batch.get("ref_per_token_logps")
    loss, metrics = grpo_loss(logps, old, adv, mask, ref_logps=ref,
                              kl_importance_weight=kl_importance_weight, **_grpo_variant(trainer))
    clip_key = "cispo_clip_ratio" if trainer.loss_type == "cispo" else "clip_ratio/region_mean"
    out = {"advantages/trl": batch["advantages"].detach(), "advantages/refimpl": adv,
           "loss/trl": loss_trl.item(), "loss/refimpl": loss.item(),
           "clip_ratio/trl": m[clip_key][-1], "clip_ratio/refimpl": metrics["clip_ratio"]}
    if a.beta:
        out["kl/trl"], out["kl/refimpl"] = m["kl"][-1], metrics["kl"]
    if grads:
        out["grad/trl"], out["grad/refimpl"] = grad_trl, _backward(model, loss)
    return out


def _grpo_variant(trainer) -> dict:
    """grpo_loss's keyword arguments for the loss a TRL GRPOTrainer computes (KL weight aside)."""
    a, cispo = trainer.args, trainer.loss_type == "cispo"
    return dict(clip_eps=a.epsilon, clip_eps_high=a.epsilon_high, beta=a.beta, kl_estimator="k3",
                loss_agg="dapo" if cispo else trainer.loss_type,
                max_tokens=a.max_completion_length, surrogate="cispo" if cispo else "clip",
                importance_sampling_level=trainer.importance_sampling_level)


def _backward(model, loss: torch.Tensor) -> torch.Tensor:
    """(n_params,) d loss / d parameters of ``model``, flattened (zeros where unused)."""
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in model.parameters()]
    out = torch.cat([g.reshape(-1) for g in grads]).detach().clone()
    model.zero_grad(set_to_none=True)
    return out
