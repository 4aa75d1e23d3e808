"""The method registry: it collects the one row each trainer module declares beside its trainer.

A row (``refimpl.core.training.Method``) says what a reader of a results table wants to know
about a method (its label, what it learns from, whether it samples from the current policy)
and what a study needs to run it (its config class, its trainer, the config fields a
head-to-head run sets, its FLOPs model and, for an offline method, how it gets its data and
what that data costs: ``refimpl.core.training.OfflineData``). Each trainer module declares its
rows beside its trainer (``METHOD``, or ``METHODS`` for ``dpo_trainer``'s "dpo" and "rpo");
this module only collects them, in the order tables show them.
``refimpl.experiments.head_to_head.compare``, ``refimpl.experiments.claims_study.study``, the
command line (``python -m refimpl compare --methods ...``) and the figures all look a method
up here, so adding a method is one row in its trainer's module and its name below.

FLOPs per update step follow the usual rule of thumb (Kaplan et al. 2020, sec. 2.1): a forward
pass costs 2 N per token and a forward + backward pass 6 N per token, for a model with N
parameters (attention's own FLOPs ignored: the context is 32 tokens). With B prompts per step,
G samples per prompt, L tokens per sequence (prompt + mean completion), mu inner updates
(``inner_updates``) and a critic of N_c parameters (each model sits beside its trainer):

    DPO / RPO:  6 N * 2B L  (chosen and rejected, B pairs per batch)        dpo_trainer.dpo_flops
    GRPO:       2 N BG L (sampling) + 2 N BG L (reference, if beta > 0) + mu * 6 N BG L
                (mu inner updates)                                           grpo_trainer.grpo_flops
    REINFORCE:  2 N BG L (sampling) + 6 N BG L (one update)   [+ 2 N BG L with a KL term]
                                                                   reinforce_trainer.reinforce_flops
    PPO:        2 N BG L (sampling) + 2 N BG L (reference) + 2 N_c BG L (critic values)
                + mu * (6 N + 6 N_c) BG L (policy and critic updates)         ppo_trainer.ppo_flops
    online DPO: 2 N BG L (sampling) + 2 N * 2n L (reference on the n pairs formed)
                + mu * 6 N * 2n L (mu DPO steps on the pairs), n <= B * pairs_per_prompt
                                                                     online_dpo.online_dpo_flops

An offline method's data (DPO: sampling the pairs once, and the frozen reference on them,
``dpo_trainer.pairs_flops``) is counted apart, through its row's ``offline``, by
``refimpl.experiments.head_to_head.compare.run_one``. This is the textbook count, in which every
sequence runs its own prompt; refimpl's trainers encode a prompt once per group, which does
less work.
"""
from __future__ import annotations

from refimpl.core.training import Method
from refimpl.methods import dpo_trainer, grpo_trainer, online_dpo, ppo_trainer, reinforce_trainer

METHODS: dict[str, Method] = {m.name: m for m in (
    *dpo_trainer.METHODS,            # "dpo", "rpo"
    online_dpo.METHOD,
    grpo_trainer.METHOD,
    reinforce_trainer.METHOD,
    ppo_trainer.METHOD,
)}

# The one label table: every name a table, legend or study record shows, as it shows it, each
# labelled once. The registry's methods first; then the arms of the claims study
# (refimpl.experiments.claims_study.claims) that are not a registry method: a method trained on
# other data, reward, labels or loss aggregation, the untrained base, and PPO's critic alone.
LABELS = {**{name: m.label for name, m in METHODS.items()},
          "base": "base (no training)",                                   # C12, C13, C19
          "dpo_carry": "DPO (carry pairs)", "dpo_units": "DPO (units pairs)",   # C3
          "rpo_flip": "DPO+NLL (RPO), flipped labels",                   # C5
          "crpo_flip": "cDPO+NLL (cRPO), flipped labels",
          "dpo_flip": "DPO, flipped labels", "pure_cdpo_flip": "cDPO, flipped labels",
          "process": "REINFORCE (RLOO), exact process reward",           # C13
          "tolerant": "REINFORCE (RLOO), tolerant grader",               # C19
          "nobaseline": "REINFORCE, no baseline",                        # C12b
          "rloo_positive": "REINFORCE (RLOO), positive advantages only",
          "rm_grpo": "GRPO, learned reward model",                       # C10
          "rm_grpo_unscaled": "GRPO, learned reward model, no std scaling",
          "learned_prm": "REINFORCE (RLOO), learned PRM",                # C13
          "agg_dapo": "GRPO, token mean (DAPO)",                         # C11b
          "agg_dr_grpo": "GRPO, constant normaliser (Dr. GRPO)",
          "critic": "PPO critic (trunk + head)", "critic_head": "PPO critic (head only)",  # C15
          "ppo_v0": "PPO, V = 0 (no critic)", "ppo_mc": "PPO, Monte-Carlo values"}        # C15


def samples_per_step(method: str, cfg) -> int:
    """Completions one update step learns from: the B*G it samples (online methods), or those
    of the cfg.batch_size items of its data (offline: ``offline.sequences`` each; DPO: the
    chosen and rejected completion of each pair, 2 per pair)."""
    row = get_method(method)
    if row.online:
        return cfg.prompts_per_step * cfg.group_size
    return row.offline.sequences * cfg.batch_size


def get_method(name: str) -> Method:
    """The registry row of ``name``; an unknown name is an error listing the choices."""
    if not isinstance(name, str) or name not in METHODS:
        raise ValueError(f"unknown method {name!r}: choose from {', '.join(METHODS)}")
    return METHODS[name]
