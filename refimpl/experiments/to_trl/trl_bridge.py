"""Graduating to Hugging Face TRL: a tiny HF model, the task's tokenizer and a config map.
``refimpl.experiments.to_trl.trl_compare`` uses them to check TRL's trainers against refimpl's losses.

The losses are the ones of the curriculum: DPO (Rafailov et al. 2023, eq. 7),
L = -log sigmoid(beta * [(log pi(y_w) - log ref(y_w)) - (log pi(y_l) - log ref(y_l))]), and the
clipped GRPO surrogate with a k3 KL penalty (Shao et al. 2024, DeepSeekMath eq. 3-4) on group
advantages A_i = (r_i - mean r) / (std r + 1e-4). TRL 1.16 (``trl.DPOTrainer``,
``trl.GRPOTrainer``) computes the same quantities inside its trainers. To run them on a tiny
``transformers`` model next to refimpl, this module provides:

* ``hf_tokenizer``: a ``PreTrainedTokenizerFast`` with exactly ``CharTokenizer``'s ids (PAD 0,
  BOS 1, EOS 2, one id per character), built in memory; BOS is prepended like refimpl's prompts.
* ``tiny_llama``: a randomly initialised ``LlamaForCausalLM`` (rotary positions, so left
  padding does not move a token's logits) with about the parameter count of refimpl's GPT.
* ``CONFIG_MAP`` / ``to_trl_dpo_kwargs`` / ``to_trl_grpo_kwargs``: every field of refimpl's
  ``DPOConfig`` and ``GRPOConfig`` and the TRL argument it becomes, or why none does.
* ``require_trl`` / ``trl_args`` / ``quiet``: an offline TRL, a CPU-friendly TRL config, and
  no chatter from transformers while it runs.

``trl``, ``transformers`` and ``datasets`` are imported inside the functions, so ``refimpl``
imports without them (``pip install -r requirements-trl.txt`` adds them). Nothing is downloaded:
``HF_HUB_OFFLINE=1`` is set before the first import.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import tempfile
import warnings
from typing import NamedTuple

import torch

from refimpl.core.logprobs import gather_token_logprobs

TRL_SERIES = "1.16"
INSTALL_HINT = "pip install -r requirements-trl.txt"


def trl_available() -> bool:
    """True when trl 1.16.x, transformers, accelerate and datasets can be imported.

    The equality checks call TRL internals (``_generate_and_score_completions``,
    ``_compute_loss``) whose names are specific to a release series, hence the version check.
    Setting the environment variable ``REFIMPL_NO_TRL=1`` answers False, to try the no-TRL path.
    """
    if os.environ.get("REFIMPL_NO_TRL"):
        return False
    if any(importlib.util.find_spec(m) is None
           for m in ("trl", "transformers", "accelerate", "datasets")):
        return False
    return importlib.metadata.version("trl").startswith(TRL_SERIES + ".")


def require_trl():
    """Import and return ``trl`` offline, or raise ImportError saying how to install it.

    Also turns off the progress bars of ``datasets`` and ``transformers`` (model loading,
    dataset mapping), which would otherwise print on every trainer construction, and lowers
    transformers' logging to errors (its advice on padding and deprecations).
    """
    if not trl_available():
        raise ImportError(f"TRL {TRL_SERIES}.x is not installed; run `{INSTALL_HINT}`")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import datasets
    import transformers
    import trl
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    return trl


@contextlib.contextmanager
def quiet():
    """Silence the deprecation and progress chatter of transformers / TRL inside the block."""
    old = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"          # TRL reads it for its data-preparation bars
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        if old is None:
            del os.environ["TQDM_DISABLE"]
        else:
            os.environ["TQDM_DISABLE"] = old


def silence(trainer):
    """Stop a transformers Trainer from printing its log dict every step; return it."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    return trainer


# ----------------------------------------------------------------------------------------
# Tokenizer and model
# ----------------------------------------------------------------------------------------

def hf_tokenizer(tok):
    """``PreTrainedTokenizerFast`` with the ids of ``tok`` (a ``refimpl.core.tokenizer.CharTokenizer``).

    One token per character (WordLevel vocabulary, every character split off), BOS prepended
    to each encoded text, EOS appended by the trainers, decoding fuses characters back into a
    string. Padding side is left, as TRL expects for prompts.
    """
    require_trl()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(tok.itos)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=None))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    bos = tok.itos[tok.bos_id]
    core.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos,
                                   eos_token=tok.itos[tok.eos_id], pad_token=tok.itos[tok.pad_id],
                                   padding_side="left")


def tiny_llama(tok, n_layer: int = 4, n_embd: int = 128, n_head: int = 4, block_size: int = 32,
               seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` for ``tok``'s vocabulary (V = tok.vocab_size).

    The MLP width is 8C/3 (Llama's ratio for a gated MLP), so with tied embeddings the
    parameter count and FLOPs per token match refimpl's GPT of the same n_layer x n_embd
    (4 x 128: about 0.79M). Rotary positions depend only on token offsets, so a left-padded
    prompt gives the same logits as an unpadded one (up to float rounding).
    """
    require_trl()
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if n_embd % n_head:
        raise ValueError(f"n_embd={n_embd} must be divisible by n_head={n_head}")
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=n_embd,
                      intermediate_size=8 * ((8 * n_embd // 3 + 7) // 8),
                      num_hidden_layers=n_layer, num_attention_heads=n_head,
                      num_key_value_heads=n_head, max_position_embeddings=block_size,
                      tie_word_embeddings=True, bos_token_id=tok.bos_id,
                      eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id,
                                               pad_token_id=tok.pad_id)
    return model


def hf_token_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                      temperature: float = 1.0) -> torch.Tensor:
    """refimpl's ``token_logprobs`` for a ``transformers`` causal LM: (B, T), 0 where masked.

    prompt_ids, prompt_mask: (B, P) left-padded prompts; completion_ids, completion_mask:
    (B, T) right-padded completions (masks bool or 0/1).
    """
    if prompt_ids.shape != prompt_mask.shape or completion_ids.shape != completion_mask.shape \
            or prompt_ids.shape[0] != completion_ids.shape[0]:
        raise ValueError(f"shape mismatch: prompts {tuple(prompt_ids.shape)} / mask "
                         f"{tuple(prompt_mask.shape)} must be (B, P) and completions "
                         f"{tuple(completion_ids.shape)} / mask {tuple(completion_mask.shape)} (B, T)")
    ids = torch.cat([prompt_ids, completion_ids], dim=1)                          # (B, P+T)
    mask = torch.cat([prompt_mask.bool(), completion_mask.bool()], dim=1)         # (B, P+T)
    logits = model(input_ids=ids, attention_mask=mask.long()).logits              # (B, P+T, V)
    P = prompt_ids.shape[1]
    logits = logits[:, P - 1:-1] / temperature                                    # (B, T, V)
    return gather_token_logprobs(logits, completion_ids, completion_mask.bool())  # (B, T)


def trl_args(config_cls, output_dir: str | None = None, **overrides):
    """A TRL config (``trl.DPOConfig`` or ``trl.GRPOConfig``) with CPU-friendly settings.

    float32 (no bf16 autocast), no gradient checkpointing, a constant learning rate with no
    warm-up (refimpl's schedule), no logging integrations, no checkpoints, metrics every step.
    """
    base = dict(output_dir=output_dir or tempfile.mkdtemp(prefix="trl_"), use_cpu=True,
                bf16=False, fp16=False, gradient_checkpointing=False, report_to="none",
                save_strategy="no", logging_steps=1, lr_scheduler_type="constant",
                warmup_steps=0, weight_decay=0.0, disable_tqdm=True, dataloader_num_workers=0,
                seed=0)
    base.update(overrides)
    with quiet():
        return config_cls(**base)


# ----------------------------------------------------------------------------------------
# Config map: refimpl field -> TRL argument
# ----------------------------------------------------------------------------------------

class Mapping(NamedTuple):
    method: str      # "dpo" or "grpo"
    field: str       # refimpl config field
    trl: str         # TRL config argument(s), "" where nothing maps
    exact: bool      # True when the TRL argument computes the same thing
    note: str


_M = Mapping
CONFIG_MAP: tuple[Mapping, ...] = (
    _M("dpo", "beta", "beta", True, "same scale of the implicit reward beta * log-ratio"),
    _M("dpo", "lr", "learning_rate", True, "TRL's default is 1e-6 with a linear decay; set "
       "lr_scheduler_type='constant', warmup_steps=0 for refimpl's constant rate"),
    _M("dpo", "batch_size", "per_device_train_batch_size", True,
       "pairs per step; x gradient_accumulation_steps x processes in TRL"),
    _M("dpo", "steps", "max_steps", True, ""),
    _M("dpo", "label_smoothing", "", False, "cDPO has no TRL 1.16 equivalent: 'sigmoid' ignores "
       "label_smoothing and 'robust' uses it in a different (unbiased) loss"),
    _M("dpo", "loss_type", "loss_type", False, "'sigmoid' is exact; TRL's 'ipo' divides each "
       "log-ratio by the completion length, refimpl's uses the summed log-probs"),
    _M("dpo", "nll_coef", "loss_type=['sigmoid','sft'], loss_weights=[1, nll_coef]", True,
       "RPO: the 'sft' term is the per-token NLL of the chosen completions"),
    _M("dpo", "max_grad_norm", "max_grad_norm", True, "same default 1.0"),
    _M("dpo", "eval_every", "eval_strategy='steps', eval_steps", False,
       "TRL evaluates the DPO loss on eval_dataset; greedy accuracy needs a callback"),
    _M("dpo", "eval_at", "eval_strategy='steps', eval_steps", False,
       "explicit evaluation steps (the head-to-head's budget points); TRL evaluates every eval_steps"),
    _M("dpo", "eval_problems", "eval_dataset", False, "size of the held-out set"),
    _M("dpo", "seed", "seed", False, "same role, different random streams"),
    _M("dpo", "n_prompts", "", False, "data: TRL takes a ready prompt/chosen/rejected dataset "
       "(refimpl.core.preferences.build_pairs, then preference_rows)"),
    _M("dpo", "group_size", "", False, "data: samples per prompt when building pairs"),
    _M("dpo", "pairs_per_prompt", "", False, "data: pairs kept per prompt"),
    _M("dpo", "temperature", "", False, "data: sampling temperature when building pairs"),
    _M("dpo", "(always on)", "precompute_ref_log_probs=True", True,
       "refimpl computes the frozen reference's log-probs once; TRL's default recomputes them "
       "every step"),
    _M("grpo", "steps", "max_steps = steps x inner_updates", True,
       "TRL counts optimiser steps, refimpl sampling rounds"),
    _M("grpo", "prompts_per_step", "per_device_train_batch_size = prompts x group_size", True,
       "TRL counts completions per step, not prompts"),
    _M("grpo", "group_size", "num_generations", True, ""),
    _M("grpo", "temperature", "temperature", True, "also divides the training logits in both"),
    _M("grpo", "lr", "learning_rate", True, "constant schedule as for DPO"),
    _M("grpo", "max_grad_norm", "max_grad_norm", True, ""),
    _M("grpo", "clip_eps", "epsilon", True, "eps_low of the ratio clip"),
    _M("grpo", "clip_eps_high", "epsilon_high", True, "None means epsilon in both (DAPO: 0.28)"),
    _M("grpo", "beta", "beta", True, "TRL's default is 0.0 (no reference model); refimpl's 0.04"),
    _M("grpo", "kl_estimator", "use_bias_correction_kl=False", False,
       "TRL has k3 only, and by default multiplies it by the ratio pi/pi_old (DeepSeek-V3.2): "
       "same value on-policy, different gradient; k1/k2 do not map"),
    _M("grpo", "kl_importance_weight", "use_bias_correction_kl", True,
       "True is TRL's default: k3 x the live ratio pi/pi_old (x s_i with GSPO); "
       "refimpl's default False is TRL's use_bias_correction_kl=False"),
    _M("grpo", "surrogate", "loss_type='cispo'", True,
       "'clip' keeps loss_type = loss_agg; 'cispo' needs loss_agg='dapo' (TRL's cispo "
       "aggregates like dapo) and clip_eps_high = eps_max, the weight's cap (5.0)"),
    _M("grpo", "importance_sampling_level", "importance_sampling_level", True,
       "'token' or 'sequence' (GSPO; TRL warns unless loss_type='grpo', and the paper "
       "uses epsilon 3e-4, epsilon_high 4e-4)"),
    _M("grpo", "loss_agg", "loss_type", True, "'grpo', 'dapo', 'dr_grpo' (TRL's default is "
       "'dapo'; dr_grpo divides by max_completion_length, refimpl by max_tokens or T)"),
    _M("grpo", "scale", "scale_rewards", True, "'group', 'batch', 'none'"),
    _M("grpo", "eps", "", False, "TRL hard-codes 1e-4, refimpl's default"),
    _M("grpo", "inner_updates", "num_iterations", True, "mu: optimiser steps per sampled batch; "
       "pi_old is TRL's forward pass, refimpl's sampling-time log-probs (equal up to rounding)"),
    _M("grpo", "dynamic_sampling", "", False, "DAPO dynamic sampling is not in GRPOTrainer; "
       "frac_reward_zero_std reports the share of uniform groups"),
    _M("grpo", "max_sampling_rounds", "", False, "belongs to dynamic sampling"),
    _M("grpo", "level", "", False, "data: filter train_dataset by level"),
    _M("grpo", "train_pool", "", False, "data: size of train_dataset (a column 'prompt')"),
    _M("grpo", "eval_every", "eval_strategy='steps', eval_steps", False,
       "greedy accuracy needs a callback"),
    _M("grpo", "eval_problems", "eval_dataset", False, ""),
    _M("grpo", "seed", "seed", False, "same role, different random streams"),
    _M("grpo", "max_new_tokens", "max_completion_length", True,
       "None: refimpl uses task.max_new_tokens(level)"),
    _M("grpo", "entropy_coef", "", False, "TRL 1.16's GRPOTrainer adds no entropy bonus; "
       "0 (refimpl's default) maps"),
    _M("grpo", "entropy_target", "", False, "belongs to the entropy bonus"),
)


def config_map(method: str | None = None) -> list[Mapping]:
    """Rows of CONFIG_MAP for ``method`` ("dpo", "grpo" or None for both)."""
    if method not in (None, "dpo", "grpo"):
        raise ValueError(f"unknown method {method!r}: use 'dpo', 'grpo' or None")
    return [m for m in CONFIG_MAP if method is None or m.method == method]


def mapping_markdown(method: str | None = None) -> str:
    """CONFIG_MAP as a markdown table (the one in docs/TRL.md and notebook 08)."""
    rows = ["| method | refimpl field | TRL 1.16 argument | same computation | note |",
            "|---|---|---|---|---|"]
    for m in config_map(method):
        trl = f"`{m.trl}`" if m.trl else "(none)"
        rows.append(f"| {m.method} | `{m.field}` | {trl} | {'yes' if m.exact else 'no'} | {m.note} |")
    return "\n".join(rows)


def to_trl_dpo_kwargs(cfg) -> dict:
    """Keyword arguments of ``trl.DPOConfig`` that reproduce refimpl ``DPOConfig`` ``cfg``.

    Raises ValueError for settings TRL 1.16 computes differently (cDPO label smoothing, IPO).
    """
    if cfg.label_smoothing:
        raise ValueError("DPOConfig.label_smoothing > 0 (cDPO) has no TRL 1.16 equivalent; "
                         "set it to 0 or keep this run in refimpl")
    if cfg.loss_type != "sigmoid":
        raise ValueError(f"DPOConfig.loss_type={cfg.loss_type!r}: TRL's 'ipo' averages log-ratios "
                         "per token while refimpl sums them; only 'sigmoid' maps exactly")
    loss_type, weights = (["sigmoid", "sft"], [1.0, cfg.nll_coef]) if cfg.nll_coef else (["sigmoid"], None)
    return dict(beta=cfg.beta, learning_rate=cfg.lr, per_device_train_batch_size=cfg.batch_size,
                max_steps=cfg.steps, max_grad_norm=cfg.max_grad_norm, seed=cfg.seed,
                loss_type=loss_type, loss_weights=weights, precompute_ref_log_probs=True,
                lr_scheduler_type="constant", warmup_steps=0)


def to_trl_grpo_kwargs(cfg, max_completion_length: int) -> dict:
    """Keyword arguments of ``trl.GRPOConfig`` that reproduce refimpl ``GRPOConfig`` ``cfg``.

    max_completion_length: the generation budget (refimpl: ``task.max_new_tokens(level)``), used
        when ``cfg.max_new_tokens`` is None.
    Raises ValueError for settings with no TRL equivalent (k1/k2 KL, dynamic sampling, eps,
    an entropy bonus, CISPO with an aggregation other than "dapo").
    """
    if cfg.kl_estimator != "k3":
        raise ValueError(f"GRPOConfig.kl_estimator={cfg.kl_estimator!r}: TRL 1.16 implements k3 only")
    if cfg.dynamic_sampling:
        raise ValueError("GRPOConfig.dynamic_sampling=True: TRL's GRPOTrainer has no dynamic sampling")
    if cfg.eps != 1e-4:
        raise ValueError(f"GRPOConfig.eps={cfg.eps}: TRL hard-codes the std epsilon to 1e-4")
    if cfg.entropy_coef:
        raise ValueError(f"GRPOConfig.entropy_coef={cfg.entropy_coef}: TRL 1.16's GRPOTrainer "
                         "has no entropy bonus; set it to 0 or keep this run in refimpl")
    if cfg.surrogate == "cispo" and cfg.loss_agg != "dapo":
        raise ValueError(f"GRPOConfig.surrogate='cispo' with loss_agg={cfg.loss_agg!r}: TRL's "
                         "loss_type='cispo' aggregates like 'dapo'; set loss_agg='dapo'")
    loss_type = "cispo" if cfg.surrogate == "cispo" else cfg.loss_agg
    return dict(max_steps=cfg.steps * cfg.inner_updates,
                per_device_train_batch_size=cfg.prompts_per_step * cfg.group_size,
                num_generations=cfg.group_size, temperature=cfg.temperature,
                learning_rate=cfg.lr, max_grad_norm=cfg.max_grad_norm, epsilon=cfg.clip_eps,
                epsilon_high=cfg.clip_eps_high, beta=cfg.beta,
                use_bias_correction_kl=cfg.kl_importance_weight, loss_type=loss_type,
                importance_sampling_level=cfg.importance_sampling_level,
                scale_rewards=cfg.scale, num_iterations=cfg.inner_updates,
                max_completion_length=cfg.max_new_tokens or max_completion_length, seed=cfg.seed,
                lr_scheduler_type="constant", warmup_steps=0)


def unmapped_fields(config_cls, method: str) -> list[str]:
    """Fields of the dataclass ``config_cls`` missing from CONFIG_MAP (should be empty)."""
    known = {m.field for m in config_map(method)}
    return [f.name for f in dataclasses.fields(config_cls) if f.name not in known]
