"""refimpl.experiments.claims_study.length_runs (claim C11b): the lengths are counted right, the same draws measure every
method, and a run spends its budget in whole steps."""
import pytest
import torch

from refimpl.core.rollouts import sample_groups
from refimpl.core.sft import load_base
from refimpl.core.utils import get_preset
from refimpl.experiments.claims_study.length_runs import (LENGTH_METHODS, LengthRunConfig, length_run,
                                             length_stats)


@pytest.fixture(scope="module")
def mixed_base():
    return load_base(get_preset("tiny", task="add_mixed"), seed=0, progress=False)


def test_length_stats_match_a_count_from_the_texts(mixed_base):
    problems = mixed_base.heldout(12)
    stats = length_stats(mixed_base.model, mixed_base, problems, 4, seed=3)
    gen = torch.Generator().manual_seed(3)
    ro = sample_groups(mixed_base.model, mixed_base.tokenizer, mixed_base.task, problems, 4,
                       generator=gen)
    eos = mixed_base.tokenizer.eos_id
    # a completion's tokens run up to and including its first EOS, or fill the row (no EOS)
    lengths = [row.index(eos) + 1 if eos in row else len(row) for row in ro.completion_ids.tolist()]
    right = [mixed_base.task.verify(p, t) == 1.0
             for p, t in zip([p for p in problems for _ in range(4)], ro.texts)]
    wrong_l = [n for n, r in zip(lengths, right) if not r]
    assert stats["mean_length"] == pytest.approx(sum(lengths) / len(lengths))
    assert stats["len_wrong"] == pytest.approx(sum(wrong_l) / len(wrong_l))
    assert stats["sampled_acc"] == pytest.approx(sum(right) / len(right))
    assert stats["short_share"] == pytest.approx(sum(t.startswith("|") for t in ro.texts) / len(ro.texts))


def test_a_run_measures_every_method_on_the_same_draws(mixed_base):
    problems = mixed_base.heldout(8)
    cfg = LengthRunConfig(budget_samples=20, prompts_per_step=2, group_size=4, samples_per_problem=2)
    runs = {m: length_run(m, mixed_base, 1e-4, cfg, problems) for m in LENGTH_METHODS}
    for r in runs.values():
        assert (r["steps"], r["samples"]) == (3, 24)                   # ceil(20 / 8) whole steps
        assert r["base_len_wrong"] == runs["grpo"]["base_len_wrong"]
        assert r["base_acc"] == runs["grpo"]["base_acc"]
    with pytest.raises(ValueError, match="unknown method"):
        length_run("agg_grpo", mixed_base, 1e-4, cfg, problems)    # GRPO's own is "grpo"
    with pytest.raises(ValueError, match="samples_per_problem"):
        length_run("grpo", mixed_base, 1e-4, LengthRunConfig(samples_per_problem=0), problems)
