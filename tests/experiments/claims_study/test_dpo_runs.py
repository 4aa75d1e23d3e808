"""refimpl.experiments.claims_study.dpo_runs (claims C4, C5): the run measures the truly right completions even when
labels are flipped, applies the method's loss settings, and names bad arguments."""
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
