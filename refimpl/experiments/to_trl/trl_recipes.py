"""The arena in TRL's terms: the base policy as a ``transformers`` model, the verifier as a TRL
reward function, the prompts as a dataset, and a TRL run's logged metrics as a small table.

Notebook 08's two scripts (``trl.GRPOTrainer``, ``trl.DPOTrainer``) are built from these:

* ``export_gpt2(model, tok, path)``: refimpl's GPT (GPT-2's layout, Radford et al. 2019:
  learned positions, pre-LayerNorm blocks, exact GELU, a tied output head) copied weight for
  weight into ``transformers.GPT2LMHeadModel`` and saved with its tokenizer, so that a TRL
  trainer takes the folder as ``model=path`` and builds its own frozen reference from it.
  refimpl counts positions over real tokens only, GPT-2 from the first column: the two agree
  when no prompt is left-padded, which holds on the arena (every "add" prompt of a task has
  the same length; ``equal_prompt_lengths`` checks it). Prompts of different lengths need a
  model with relative positions (``trl_bridge.tiny_llama``).
* ``VerifierReward(task, problems)``: TRL's reward-function protocol,
  ``reward(prompts, completions, **columns) -> list[float]``, returning verify(x, y) in {0, 1}.
* ``prompt_dataset(problems)``: the ``datasets.Dataset`` with the "prompt" column GRPO reads.
* ``dashboard(log_history, metrics)``: the metrics a trainer logged, one aligned row per step.

``transformers`` and ``datasets`` are imported inside the functions (TRL is optional).
"""
from __future__ import annotations

from pathlib import Path

from refimpl.experiments.to_trl.trl_bridge import hf_tokenizer, require_trl


def equal_prompt_lengths(problems) -> bool:
    """True when every prompt has the same number of characters (so no prompt is padded)."""
    return len({len(p.prompt) for p in problems}) <= 1


def gpt2_state_dict(model) -> dict:
    """refimpl GPT parameters under ``GPT2LMHeadModel``'s names. GPT-2 stores its linear maps
    as ``Conv1D`` with the weight transposed, (in, out); the output head is tied to ``wte``."""
    t = "transformer."
    sd = {t + "wte.weight": model.wte.weight, t + "wpe.weight": model.wpe.weight,
          t + "ln_f.weight": model.ln_f.weight, t + "ln_f.bias": model.ln_f.bias}
    for i, b in enumerate(model.blocks):
        p = f"{t}h.{i}."
        for name, ln in (("ln_1", b.ln_1), ("ln_2", b.ln_2)):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = ln.weight, ln.bias
        for name, lin in (("attn.c_attn", b.attn.c_attn), ("attn.c_proj", b.attn.c_proj),
                          ("mlp.c_fc", b.mlp[0]), ("mlp.c_proj", b.mlp[2])):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = lin.weight.T, lin.bias
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def to_gpt2(model, tok):
    """A ``transformers.GPT2LMHeadModel`` with the weights of refimpl's ``model`` (a GPT).

    The same logits on unpadded prompts, to float rounding (tests/experiments/to_trl).
    Dropout is off in the copy, as in refimpl's default model.
    """
    require_trl()
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    c = model.config
    cfg = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.n_embd,
                     n_layer=c.n_layer, n_head=c.n_head, activation_function="gelu",
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=1e-5,
                     tie_word_embeddings=True, bos_token_id=tok.bos_id,
                     eos_token_id=tok.eos_id, pad_token_id=tok.pad_id)
    hf = GPT2LMHeadModel(cfg)
    missing, unexpected = hf.load_state_dict(gpt2_state_dict(model), strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"weights do not map: missing {missing}, unexpected {unexpected}")
    hf.tie_weights()
    hf.generation_config = GenerationConfig(bos_token_id=tok.bos_id, eos_token_id=tok.eos_id,
                                            pad_token_id=tok.pad_id)
    return hf.eval()


def export_gpt2(model, tok, path: str | Path) -> str:
    """Save refimpl's GPT ``model`` as a GPT-2 with its tokenizer in ``path``; returns the path.

    A TRL trainer then takes ``model=path`` (and loads the tokenizer from it), as it would a
    model downloaded from the Hub.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    to_gpt2(model, tok).save_pretrained(path)
    hf_tokenizer(tok).save_pretrained(path)
    return str(path)


class VerifierReward:
    """The task's verifier as a TRL reward function: verify(x, y) in {0, 1} per completion.

    TRL calls ``reward(prompts=..., completions=..., completion_ids=..., **columns)`` with
    one entry per completion (G per prompt) and logs the mean as ``rewards/verifier/mean``.
    ``problems``: the problems whose prompts the dataset holds (a prompt names its problem).
    """

    __name__ = "verifier"

    def __init__(self, task, problems):
        self.task = task
        self.by_prompt = {p.prompt: p for p in problems}

    def __call__(self, prompts, completions, **columns) -> list[float]:
        unknown = sorted({p for p in prompts if p not in self.by_prompt})
        if unknown:
            raise ValueError(f"{len(unknown)} prompt(s) not among the reward's problems, "
                             f"e.g. {unknown[0]!r}")
        return [self.task.verify(self.by_prompt[p], c) for p, c in zip(prompts, completions)]


def prompt_dataset(problems):
    """``datasets.Dataset`` with one "prompt" column (GRPOTrainer's input) and the level."""
    require_trl()
    from datasets import Dataset

    return Dataset.from_list([{"prompt": p.prompt, "level": p.level} for p in problems])


def dashboard(log_history: list[dict], metrics: tuple[str, ...]) -> str:
    """The logged ``metrics`` of a trainer (``trainer.state.log_history``), one row per step.

    A metric a row lacks prints as "-"; rows without any of the metrics (the final summary)
    are left out.
    """
    rows = [h for h in log_history if any(m in h for m in metrics)]
    if not rows:
        raise ValueError(f"no logged step has any of {metrics}")
    width = [max(len(m), 9) for m in metrics]
    lines = ["step  " + "  ".join(m.rjust(w) for m, w in zip(metrics, width))]
    for h in rows:
        cells = (f"{h[m]:.4f}" if isinstance(h.get(m), (int, float)) else "-" for m in metrics)
        lines.append(f"{h.get('step', '?'):>4}  " + "  ".join(c.rjust(w) for c, w in zip(cells, width)))
    return "\n".join(lines)
