"""One DPO run on verifier-labelled pairs of base samples: the experiment of claims C4a, C4b and C5 in
the claims study (``refimpl.experiments.claims_study.claims``).

A run samples G completions for each of ``n_prompts`` training prompts from the SFT base, pairs
a right one with a wrong one (up to ``pairs_per_prompt`` disjoint pairs per prompt; notebook 02),
optionally flips a share of the labels, trains DPO on the pairs and measures:

    final_acc            greedy test accuracy after training (base_acc: before)
    chosen_logp_change   change of the mean log pi(y_w | x) of the chosen completions of a
                         fixed subset of the pairs (as labelled by the verifier: a flipped pair
                         is measured on its truly right completion), from step 0 to the end
    margin               the final mean implicit-reward margin on that subset
    pick_acc, random_acc (with ``rerank_problems`` > 0, claim C4a) the trained policy's implicit
                         reward used as a reward model on fresh samples: the accuracy of the
                         sample it ranks highest among ``rerank_samples`` per test problem, and
                         of a random one (``refimpl.methods.dpo_analysis.rerank_by_implicit_reward``)
    pick_ref_logp_shift  log pi_ref of those picks minus the mean log pi_ref of the samples

Methods (the loss and the labels; every other setting is shared), named as the method
registry (``refimpl.methods.registry``) names the loss, "_flip" for the flipped labels:

    "dpo"           pure DPO (Rafailov et al. 2023, eq. 7) on clean labels
    "rpo"           DPO + NLL on the chosen completions (RPO, Pang et al. 2024) on clean labels
    "rpo_flip"      DPO + NLL with a share ``flip_eps`` of the labels flipped at random
    "crpo_flip"     the same flipped labels with conservative DPO + NLL (cDPO's label
                    smoothing = flip_eps, Mitchell 2023, the textbook robust variant, on RPO's
                    loss)
    "dpo_flip"      pure DPO on the flipped labels (C5)
    "pure_cdpo_flip"  cDPO (label smoothing = flip_eps) on pure DPO's loss, flipped labels (C5)
"""
from __future__ import annotations

from dataclasses import dataclass

from refimpl.core.preferences import build_pairs, flip_labels
from refimpl.core.training import check_fields
from refimpl.experiments.claims_study.study_checks import check_study_run
from refimpl.methods.dpo_analysis import rerank_by_implicit_reward
from refimpl.methods.dpo_trainer import DPOConfig, train_dpo

# the arms (labels: refimpl.methods.registry.LABELS); those without the NLL term; those with
# cDPO's label smoothing
DPO_METHODS = ("dpo", "rpo", "rpo_flip", "crpo_flip", "dpo_flip", "pure_cdpo_flip")
PURE_DPO = ("dpo", "dpo_flip", "pure_cdpo_flip")
SMOOTHED = ("crpo_flip", "pure_cdpo_flip")


@dataclass
class DpoRunConfig:
    """One run: the data (n_prompts x group_size base samples, up to pairs_per_prompt pairs
    each, seeded by ``seed``) and the DPO settings shared by every method."""

    n_prompts: int = 512
    group_size: int = 8
    pairs_per_prompt: int = 4
    steps: int = 80
    batch_size: int = 16
    beta: float = 0.1
    flip_eps: float = 0.4            # share of flipped labels for the *_flip methods
    seed: int = 0
    rerank_problems: int = 0         # test problems the implicit reward re-ranks samples of (0: none)
    rerank_samples: int = 8          # fresh samples per re-ranked problem

    def validate(self) -> None:
        """Raise TypeError or ValueError naming the first bad field."""
        check_fields(self, {"n_prompts": 1, "group_size": 2, "pairs_per_prompt": 1, "steps": 1,
                            "batch_size": 1, "seed": None, "rerank_problems": 0,
                            "rerank_samples": 2}, positive=("beta",),
                     intervals={"flip_eps": (0, 0.5, "[)")})


def dpo_run(method: str, base, lr: float, cfg: DpoRunConfig, problems) -> dict:
    """Train DPO ``method`` (one of DPO_METHODS) from ``base`` at ``lr`` on freshly sampled,
    verifier-labelled pairs and measure it on ``problems`` (module docstring).

    Returns {"final_acc", "base_acc", "chosen_logp_change", "margin", "pairs", "flipped",
    "steps", "samples" (completions generated for the pairs)}."""
    cfg = check_study_run("dpo_run", method, DPO_METHODS, lr, cfg, DpoRunConfig, problems)
    clean = build_pairs(base.model, base.tokenizer, base.task,
                        base.train_problems(cfg.n_prompts, seed=cfg.seed), cfg.group_size,
                        cfg.pairs_per_prompt, 1.0, cfg.seed)
    flip = method.endswith("_flip")
    pairs = flip_labels(clean, cfg.flip_eps, seed=cfg.seed) if flip else clean
    dcfg = DPOConfig(lr=lr, beta=cfg.beta, batch_size=cfg.batch_size, steps=cfg.steps,
                     eval_every=cfg.steps, seed=cfg.seed,
                     nll_coef=0.0 if method in PURE_DPO else 1.0,
                     label_smoothing=cfg.flip_eps if method in SMOOTHED else 0.0)
    probe = (clean.prompt_ids[:256], clean.prompt_mask[:256], clean.chosen_ids[:256],
             clean.chosen_mask[:256])                    # the truly right completions
    res = train_dpo(base, dcfg, pairs=pairs, progress=False, heldout=problems,
                    probes={"right": probe})
    first, last = res.history[0], res.history[-1]
    return {"final_acc": last["heldout_acc"], "base_acc": first["heldout_acc"],
            "chosen_logp_change": last["logps/right"] - first["logps/right"],
            "margin": last["pairs/rewards/margins"], "pairs": len(pairs),
            "flipped": int(pairs.flipped.sum()), "steps": cfg.steps,
            "samples": cfg.n_prompts * cfg.group_size, **pick_values(res.model, base, cfg, problems)}


def pick_values(policy, base, cfg: DpoRunConfig, problems) -> dict:
    """The implicit reward beta log(pi/pi_ref) of ``policy`` as a reward model on fresh samples
    of the first ``cfg.rerank_problems`` problems (module docstring); {} when that is 0."""
    if not cfg.rerank_problems:
        return {}
    r = rerank_by_implicit_reward(policy, base.reference(), base.tokenizer, base.task,
                                  problems[:cfg.rerank_problems], n_samples=cfg.rerank_samples,
                                  beta=cfg.beta, seed=cfg.seed)
    return {"pick_acc": r["implicit_reward"], "random_acc": r["random"],
            "policy_logp_pick_acc": r["policy_logp"], "oracle_acc": r["oracle"],
            "pick_ref_logp_shift": r["ref_logp_of_pick"] - r["ref_logp_mean"]}
