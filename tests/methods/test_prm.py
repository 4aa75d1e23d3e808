"""Tests for refimpl.methods.prm: the learned process reward model (claim C13).

The PRM is trained on completions sampled from the cached cpu base, labelled by the exact
step verifier; its accuracy is measured on steps of held-out PROMPTS and must beat the
majority-class rate by more than two standard errors of that measurement.
"""
import math

import pytest
import torch

from refimpl.core.rollouts import sample_groups
from refimpl.core.tasks import Problem
from refimpl.methods.prm import (PRMConfig, ProcessRewardModel, step_labels, step_positions,
                                 train_prm)

P = Problem(prompt="347+285=", answer=632, level=2, operands=(347, 285))


@pytest.fixture(scope="module")
def samples(cpu_base):
    problems = cpu_base.train_problems(80, seed=4)
    ro = sample_groups(cpu_base.model, cpu_base.tokenizer, cpu_base.task, problems, 8,
                       generator=torch.Generator().manual_seed(0))
    return [problems[i // 8] for i in range(ro.num_samples)], ro.texts


@pytest.fixture(scope="module")
def trained(cpu_base, samples):
    res = train_prm(cpu_base, PRMConfig(steps=100), problems=samples[0], texts=samples[1])
    return res.model, res.history[-1]


# ---------------------------------------------------------------- step positions -----

@pytest.mark.parametrize("text, expected", [
    ("12,13,06|632", [2, 5, 8, 12]),      # the delimiters after each column sum, then EOS
    ("12,13,06", [2, 5, 8, 8]),           # no answer: the last step is closed by EOS
    ("12,13", [2, 5, None, 5]),           # missing third step
    ("", [None, None, None, 0]),
    ("1,22,333|4", [1, 4, 8, 10]),        # ragged fields
])
def test_step_positions(text, expected):
    assert step_positions(text, 3) == expected


def test_step_labels_are_the_verifiers():
    from refimpl.core.tasks import get_task
    task = get_task("add")
    y = step_labels(task, [P, P], ["12,13,06|632", "12,99,06|633"])
    assert y.tolist() == [[1, 1, 1, 1], [1, 0, 1, 0]]


# ---------------------------------------------------------------- the trained PRM -----

def test_heldout_step_accuracy_beats_majority_class(trained):
    _, m = trained
    n = m["n_heldout"]
    se = math.sqrt(m["majority_rate"] * (1 - m["majority_rate"]) / n)
    assert n > 250
    assert m["step_accuracy"] > m["majority_rate"] + 2 * se, m
    assert 0.0 <= m["false_positive_rate"] <= 1.0 and 0.0 <= m["false_negative_rate"] <= 1.0


def test_metrics_are_consistent_with_predictions(cpu_base, samples, trained):
    """step_accuracy recomputed from step_probs on the held-out prompts' steps."""
    prm, m = trained
    problems, texts = samples
    probs = prm.step_probs([q.prompt for q in problems], texts).cpu()  # (N, 4)
    labels = step_labels(cpu_base.task, problems, texts)  # (N, 4)
    present = torch.tensor([[q is not None for q in step_positions(t, 3)] for t in texts])
    right = ((probs > 0.5) == labels.bool()) & present  # (N, 4)
    # train + held-out accuracy, weighted by their counts, must equal the overall rate
    overall = right.sum().item() / present.sum().item()
    combined = (m["step_accuracy"] * m["n_heldout"] + m["train_accuracy"] * m["n_train"]) / (
        m["n_heldout"] + m["n_train"])
    assert overall == pytest.approx(combined, abs=1e-6)


def test_absent_steps_score_zero_and_rewards_are_in_unit_interval(trained):
    prm, _ = trained
    probs = prm.step_probs([P.prompt] * 3, ["12,13", "", "12,13,06|632"]).cpu()  # (3, 4)
    assert probs[0, 2] == 0 and (probs[1, :3] == 0).all()
    assert ((probs >= 0) & (probs <= 1)).all()
    score = prm.score([P.prompt] * 3, ["12,13", "", "12,13,06|632"], reduce="min")
    assert score[0] == 0 and score[1] == 0


def test_reward_fn_single_and_batch_agree_and_never_raise(trained):
    prm, _ = trained
    fn = prm.reward_fn()
    texts = ["12,13,06|632", "12,99,06|632", "", "|||", "9" * 40, "abc", None, "12,13,06|632\n"]
    batch = fn.score([P] * len(texts), texts)
    for text, b in zip(texts, batch):
        single = fn(P, text)
        assert isinstance(single, float) and 0.0 <= single <= 1.0
        assert single == pytest.approx(b, abs=1e-6), text
    assert fn(P, "abc") == 0.0 and fn(P, "9" * 40) == 0.0  # not encodable / too long


def test_same_seed_same_prm(cpu_base, samples):
    problems, texts = samples[0][:200], samples[1][:200]
    m1 = train_prm(cpu_base, PRMConfig(steps=20, seed=3), problems=problems, texts=texts).history
    m2 = train_prm(cpu_base, PRMConfig(steps=20, seed=3), problems=problems, texts=texts).history
    assert m1 == m2


def test_bad_inputs_raise(cpu_base, samples):
    problems, texts = samples
    with pytest.raises(ValueError, match="one problem per text"):
        train_prm(cpu_base, problems=problems[:3], texts=texts[:4])
    with pytest.raises(ValueError, match="heldout_frac"):
        train_prm(cpu_base, PRMConfig(heldout_frac=1.0), problems=problems[:8], texts=texts[:8])
    with pytest.raises(ValueError, match="window"):
        ProcessRewardModel(cpu_base.model, cpu_base.tokenizer, cpu_base.task, window=0)
    prm = ProcessRewardModel(cpu_base.model, cpu_base.tokenizer, cpu_base.task)
    with pytest.raises(ValueError, match="unknown reduce"):
        prm.reward_fn("max")
