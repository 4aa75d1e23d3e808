"""refimpl.experiments.claims_study.dpo_runs (claims C4, C5): the run measures the truly right completions even when
labels are flipped, applies the method's loss settings, and names bad arguments."""
import math

import pytest

from refimpl.experiments.claims_study.dpo_runs import DPO_METHODS, DpoRunConfig, dpo_run

SMALL = DpoRunConfig(n_prompts=48, steps=3, batch_size=8, seed=0)


def test_methods_share_the_data_and_differ_only_in_loss_and_labels(cpu_base):
    problems = cpu_base.heldout(8)
    runs = {m: dpo_run(m, cpu_base, 5e-5, SMALL, problems) for m in DPO_METHODS}
    assert len({r["pairs"] for r in runs.values()}) == 1            # the same pairs for all
    assert len({r["base_acc"] for r in runs.values()}) == 1
    assert runs["dpo"]["flipped"] == runs["rpo"]["flipped"] == 0
    assert runs["rpo_flip"]["flipped"] == runs["crpo_flip"]["flipped"] > 0
    assert runs["rpo_flip"]["chosen_logp_change"] != runs["crpo_flip"]["chosen_logp_change"]
    assert runs["dpo"]["samples"] == 48 * 8 and runs["dpo"]["steps"] == 3
    assert dpo_run("rpo", cpu_base, 5e-5, SMALL, problems) == runs["rpo"]   # same seed, same run


@pytest.mark.parametrize("kw, match", [
    (dict(method="ipo"), "unknown method"), (dict(method="nll"), "unknown method"), (dict(lr=-1.0), "lr"), (dict(problems=[]), "no problems"),
    (dict(cfg=DpoRunConfig(flip_eps=0.5)), "flip_eps"),
])
def test_bad_arguments_are_named(cpu_base, kw, match):
    args = dict(method="rpo", lr=1e-4, cfg=SMALL, problems=cpu_base.heldout(2))
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        dpo_run(args["method"], cpu_base, args["lr"], args["cfg"], args["problems"])


def test_the_implicit_reward_picks_are_measured_only_when_asked(cpu_base):
    """C4a's values: the pick by the implicit reward and a random pick, on fresh samples of the
    first ``rerank_problems`` problems; the same numbers as the notebook's re-ranking would give
    for the same policy and seed (one function computes both)."""
    from dataclasses import replace
    problems = cpu_base.heldout(8)
    plain = dpo_run("dpo", cpu_base, 5e-5, SMALL, problems)
    assert "pick_acc" not in plain
    run = dpo_run("dpo", cpu_base, 5e-5, replace(SMALL, rerank_problems=6, rerank_samples=4), problems)
    assert {k: run[k] for k in plain} == plain                      # the run itself is unchanged
    assert 0 <= run["pick_acc"] <= run["oracle_acc"] <= 1 and 0 <= run["random_acc"] <= run["oracle_acc"]
    assert run["pick_acc"] * 6 == round(run["pick_acc"] * 6)        # a share of 6 problems
    assert math.isfinite(run["pick_ref_logp_shift"])
    with pytest.raises(ValueError, match="rerank_samples"):
        dpo_run("dpo", cpu_base, 5e-5, replace(SMALL, rerank_problems=6, rerank_samples=1), problems)
