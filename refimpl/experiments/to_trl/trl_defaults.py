"""TRL 1.16's GRPO defaults next to the paper's GRPO, on one batch.

DeepSeekMath's GRPO (Shao et al. 2024, eq. 3) averages each completion's token losses, then
the completions (loss_type "grpo"), and adds beta * k3 with beta = 0.04, where
k3 = exp(delta) - 1 - delta and delta = log pi_ref - log pi_theta per token. TRL 1.16's
``GRPOConfig`` differs in three defaults:

* ``loss_type="dapo"``: the token losses are averaged over every token of the batch (DAPO,
  Yu et al. 2025), so a long completion weighs more than a short one of the same group;
* ``beta=0.0``: no KL term, hence no reference model (one forward pass and one model copy
  fewer) and no ``kl`` on the dashboard;
* ``use_bias_correction_kl=True``: k3 is multiplied by the ratio rho = pi_theta / pi_old
  (DeepSeek-V3.2), whose gradient is the reverse KL's when samples are off-policy; on-policy
  rho = 1, so the loss value is the same and only its gradient changes (it matters only with
  beta > 0).

``SETTINGS`` goes from the paper to TRL's defaults one change at a time;
``defaults_on_one_batch`` evaluates TRL's ``_compute_loss`` and refimpl's ``grpo_loss`` under
each on the same batch (B*G completions of TRL's own sampling, scored by the trainer's reward
function) and reports the loss, the KL and how far the gradient moved from the paper's.
"""
from __future__ import annotations

import contextlib
import dataclasses

import torch

from refimpl.experiments.to_trl.trl_bridge import require_trl
from refimpl.experiments.to_trl.trl_compare import compare_grpo, trl_grpo_batch

PAPER = {"loss_type": "grpo", "beta": 0.04, "use_bias_correction_kl": False}
SETTINGS = (
    ("paper GRPO", {}),
    ("loss_type='dapo'", {"loss_type": "dapo"}),
    ("beta=0.0", {"beta": 0.0}),
    ("use_bias_correction_kl=True", {"use_bias_correction_kl": True}),
    ("TRL 1.16 defaults (all three)", {"loss_type": "dapo", "beta": 0.0,
                                       "use_bias_correction_kl": True}),
)


def trl_grpo_defaults() -> dict:
    """TRL's own defaults of the three arguments, read from ``trl.GRPOConfig``'s fields."""
    trl = require_trl()
    fields = {f.name: f.default for f in dataclasses.fields(trl.GRPOConfig)}
    return {name: fields[name] for name in PAPER}


@contextlib.contextmanager
def grpo_setting(trainer, loss_type: str, beta: float, use_bias_correction_kl: bool):
    """Set a GRPOTrainer's loss type, KL weight and KL weighting inside the block (restored
    after). The trainer must have been built with beta > 0, so that it holds a reference."""
    a = trainer.args
    if trainer.beta == 0.0:
        raise ValueError("the trainer was built with beta=0 and holds no reference model; "
                         "build it with beta > 0 to compare the KL settings")
    old = (trainer.loss_type, a.loss_type, trainer.beta, a.beta, a.use_bias_correction_kl)
    trainer.loss_type = a.loss_type = loss_type
    trainer.beta = a.beta = beta
    a.use_bias_correction_kl = use_bias_correction_kl
    try:
        yield trainer
    finally:
        trainer.loss_type, a.loss_type, trainer.beta, a.beta, a.use_bias_correction_kl = old


def scored_batch(trainer, prompts: list[str]) -> tuple[dict, torch.Tensor]:
    """(batch, rewards (B*G,)): one batch of TRL's own sampling for ``prompts`` and the rewards
    its reward function gives those completions (decoded as TRL decodes them)."""
    batch = trl_grpo_batch(trainer, prompts)
    G = trainer.num_generations
    texts = trainer.processing_class.batch_decode(batch["completion_ids"], skip_special_tokens=True)
    rows = [p for p in prompts for _ in range(G)]                               # group-major
    rewards = trainer.reward_funcs[0](prompts=rows, completions=texts)
    return batch, torch.tensor(rewards, dtype=torch.float32)                    # (B*G,)


def defaults_on_one_batch(trainer, batch: dict, rewards: torch.Tensor) -> list[dict]:
    """Each of ``SETTINGS`` on one batch: TRL's and refimpl's loss, TRL's logged ``kl`` (None
    without a KL term) and the gradient's change from the paper's, |g - g_paper| / |g_paper|.

    trainer: a GRPOTrainer built with beta > 0 (it keeps its own settings afterwards);
    batch, rewards: from ``scored_batch``. On-policy (pi_old = pi_theta, TRL's first update
    on a batch). Returns one dict per setting: "setting", "loss/trl", "loss/refimpl",
    "kl/trl", "grad_change/trl", "grad_change/refimpl".
    """
    rows, g_paper = [], None
    for name, change in SETTINGS:
        s = {**PAPER, **change}
        with grpo_setting(trainer, **s):
            r = compare_grpo(trainer, batch, rewards, kl_importance_weight=s["use_bias_correction_kl"],
                             grads=True)
        if not torch.allclose(r["advantages/trl"], r["advantages/refimpl"], atol=1e-5):
            raise ValueError("rewards do not give the batch's advantages: pass the rewards "
                             "its completions were scored with (scored_batch)")
        if g_paper is None:
            g_paper = r["grad/trl"]
        norm = g_paper.norm()
        rows.append({"setting": name, **s, "loss/trl": r["loss/trl"], "loss/refimpl": r["loss/refimpl"],
                     "kl/trl": r.get("kl/trl"),
                     "grad_change/trl": ((r["grad/trl"] - g_paper).norm() / norm).item(),
                     "grad_change/refimpl": ((r["grad/refimpl"] - g_paper).norm() / norm).item()})
    return rows


def _fixed(x: float, digits: int = 6) -> str:
    """``x`` with ``digits`` decimals, and 0 where it rounds to zero (never "-0.000000")."""
    return f"{0.0 if abs(x) < 0.5 * 10 ** -digits else x:.{digits}f}"


def defaults_table(rows: list[dict]) -> str:
    """``defaults_on_one_batch``'s rows as an aligned text table."""
    head = (f"{'setting':<30} {'loss_type':>9} {'beta':>5} {'bias_kl':>7} {'loss TRL':>10} "
            f"{'loss refimpl':>12} {'kl TRL':>8} {'grad change':>11}")
    lines = [head]
    for r in rows:
        kl = "-" if r["kl/trl"] is None else f"{r['kl/trl']:.5f}"
        lines.append(f"{r['setting']:<30} {r['loss_type']:>9} {r['beta']:>5.2f} "
                     f"{str(r['use_bias_correction_kl']):>7} {_fixed(r['loss/trl']):>10} "
                     f"{_fixed(r['loss/refimpl']):>12} {kl:>8} {r['grad_change/trl']:>11.4f}")
    return "\n".join(lines)
