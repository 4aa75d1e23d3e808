"""Tests for refimpl.methods.reinforce_trainer: the REINFORCE loop and the variance probe (claim C12).

The learning test uses the cached cpu base and a fixed seed; its margin is two standard
errors of the held-out accuracy measurement. The variance probe is compared with a slow
reference that materialises every per-sample gradient and every resampled estimate.
"""
import math

import pytest
import torch

from refimpl.core.logprobs import token_logprobs
from refimpl.core.model import GPT, GPTConfig
from refimpl.core.rollouts import sample_groups
from refimpl.core.tasks import get_task
from refimpl.core.tokenizer import CharTokenizer
from refimpl.methods.reinforce import baseline, gradient_variance, per_sample_grads
from refimpl.methods.reinforce_analysis import estimator_variance, score_gram
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce


def _strip(history):
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


# ---------------------------------------------------------------- config -----

@pytest.mark.parametrize("change, match", [
    (dict(steps=0), "steps"),
    (dict(group_size=1), "baseline 'rloo' needs group_size >= 2"),
    (dict(baseline="mean"), "unknown .*baseline"),
    (dict(running_key="batch"), "unknown .*running_key"),
    (dict(kl_estimator="k4"), "unknown .*kl_estimator"),
    (dict(lr=0.0), "lr"),
    (dict(temperature=-1.0), "temperature"),
    (dict(seq_kl_coef=-0.1), "seq_kl_coef"),
    (dict(seq_kl_coef=float("nan")), "seq_kl_coef"),
    (dict(running_momentum=1.0), "running_momentum"),
    (dict(digits=9), "digits"),
    (dict(prompts_per_step=2.5), "prompts_per_step"),
])
def test_bad_config_raises(change, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ReinforceConfig(**change).validate()


def test_group_size_one_is_fine_without_a_group_baseline():
    ReinforceConfig(group_size=1, baseline="none").validate()
    ReinforceConfig(group_size=1, baseline="running").validate()


def test_train_raises_on_bad_config_and_small_pool(cpu_base):
    with pytest.raises(ValueError, match="unknown .*baseline"):
        train_reinforce(cpu_base, ReinforceConfig(baseline="avg"), progress=False)
    with pytest.raises(ValueError, match="fewer than prompts_per_step"):
        train_reinforce(cpu_base, ReinforceConfig(eval_every=0), progress=False,
                        pool=cpu_base.train_problems(3))


# ---------------------------------------------------------------- the loop -----

def test_reinforce_improves_heldout_accuracy(cpu_base):
    """15 steps of 16 prompts x 8 samples (lr 1e-4, seed 0) must beat the base by more than
    two standard errors of a 256-problem accuracy, sqrt(p (1 - p) / 256) <= 0.031."""
    heldout = cpu_base.heldout(256)
    res = train_reinforce(cpu_base, ReinforceConfig(steps=15, eval_every=15, seed=0),
                          heldout=heldout, progress=False)
    acc0, acc1 = res.history[0]["heldout_acc"], res.last("heldout_acc")
    se = math.sqrt(acc0 * (1 - acc0) / len(heldout))
    assert acc1 > acc0 + 2 * se, (acc0, acc1)
    rows = res.history[1:]
    assert [r["samples"] for r in rows] == [16 * 8 * s for s in range(1, 16)]
    for r in rows:
        assert r["reward"] == pytest.approx(r["verified"])  # the default reward is the verifier
        assert 0.0 <= r["frac_all_wrong"] <= r["frac_reward_zero_std"] <= 1.0
        assert any(k.startswith("pass_rate/level_") for k in r)


def test_same_seed_same_numbers(cpu_base):
    cfg = ReinforceConfig(steps=2, prompts_per_step=4, group_size=4, eval_every=0, seed=5)
    a = train_reinforce(cpu_base, cfg, progress=False)
    b = train_reinforce(cpu_base, cfg, progress=False)
    assert _strip(a.history) == _strip(b.history)
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    c = train_reinforce(cpu_base, ReinforceConfig(**{**cfg.__dict__, "seed": 6}), progress=False)
    assert _strip(c.history) != _strip(a.history)


def test_all_zero_rewards_leave_the_policy_unchanged(cpu_base):
    """RLOO advantages of an all-zero group are 0: no gradient, and AdamW (no decay) stays put."""
    res = train_reinforce(cpu_base, ReinforceConfig(steps=2, prompts_per_step=4, eval_every=0),
                          reward_fn=lambda problem, text: 0.0, progress=False)
    assert all(r["grad_norm"] == 0.0 and r["frac_all_wrong"] == 1.0 for r in res.history[1:])
    assert all(torch.equal(p, q) for p, q in zip(res.model.parameters(), cpu_base.model.parameters()))


def test_batched_reward_fn_gives_the_same_run(cpu_base):
    task = cpu_base.task

    def fn(problem, text):
        return task.verify(problem, text)

    def batched(problem, text):
        raise AssertionError("the trainer must use .score when it exists")
    batched.score = lambda problems, texts: [task.verify(p, t) for p, t in zip(problems, texts)]
    cfg = ReinforceConfig(steps=2, prompts_per_step=4, group_size=4, eval_every=0)
    a = train_reinforce(cpu_base, cfg, reward_fn=fn, progress=False)
    b = train_reinforce(cpu_base, cfg, reward_fn=batched, progress=False)
    assert _strip(a.history) == _strip(b.history)


@pytest.mark.parametrize("kind, key", [("running", "prompt"), ("running", "level"),
                                       ("none", "level"), ("group_mean", "level")])
def test_every_baseline_runs(cpu_base, kind, key):
    cfg = ReinforceConfig(steps=2, prompts_per_step=4, group_size=4, eval_every=0,
                               baseline=kind, running_key=key)
    res = train_reinforce(cpu_base, cfg, progress=False)
    assert all(math.isfinite(r["loss"]) for r in res.history[1:])


def test_kl_penalty_is_logged(cpu_base):
    cfg = ReinforceConfig(steps=2, prompts_per_step=4, group_size=4, eval_every=0, seq_kl_coef=0.05)
    res = train_reinforce(cpu_base, cfg, progress=False)
    assert all("kl" in r and r["kl"] >= 0 for r in res.history[1:])


def test_config_defaults_are_valid():
    """The default config passes the config's own validation, which can fail: the defaults
    with one bad field do not."""
    ReinforceConfig().validate()
    for bad, match in ((dict(baseline="avg"), "baseline"), (dict(steps=-1), "steps"),
                       (dict(kl_estimator="k9"), "kl_estimator")):
        with pytest.raises((ValueError, TypeError), match=match):
            ReinforceConfig(**bad).validate()


def test_digits_trains_on_a_harder_task(cpu_base):
    cfg = ReinforceConfig(steps=1, prompts_per_step=4, group_size=4, eval_every=1,
                               eval_problems=8, digits=4)
    res = train_reinforce(cpu_base, cfg, progress=False)
    assert "heldout_acc" in res.history[-1] and res.history[-1]["samples"] == 16


# ---------------------------------------------------------------- variance probe -----

@pytest.fixture(scope="module")
def tiny_rollout():
    torch.manual_seed(0)
    task = get_task("add", digits=2)
    tok = CharTokenizer(task.alphabet)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16))
    problems = task.problems("train", 3, seed=0)
    ro = sample_groups(model, tok, task, problems, 5, generator=torch.Generator().manual_seed(1))
    ro.rewards = torch.tensor([1., 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0])  # (15,) fixed, varied
    return model, ro


def test_score_gram_matches_per_sample_grads(tiny_rollout):
    model, ro = tiny_rollout
    seq = token_logprobs(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids,
                         ro.completion_mask).sum(1)  # (15,)
    S = per_sample_grads(list(seq), list(model.parameters())).double()  # (15, D)
    torch.testing.assert_close(score_gram(model, ro), S @ S.T, rtol=1e-4, atol=1e-6)


def test_estimator_variance_matches_explicit_resamples(tiny_rollout):
    """Slow reference: build every resampled estimate g (D,) explicitly, then take its variance."""
    model, ro = tiny_rollout
    B, N, G, S_res = 3, 5, 3, 300
    seq = token_logprobs(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids,
                         ro.completion_mask).sum(1)  # (15,)
    S = per_sample_grads(list(seq), list(model.parameters())).double()  # (15, D)
    R = ro.rewards.double().view(B, N)  # (3, 5)
    fast = estimator_variance(S @ S.T, R, G, resamples=S_res, generator=torch.Generator().manual_seed(7))
    idx = torch.randint(0, N, (S_res, B, G), generator=torch.Generator().manual_seed(7))  # same draws
    for kind in ("none", "rloo", "group_mean", "running"):
        gs = []
        for s in range(S_res):
            r = torch.stack([R[b, idx[s, b]] for b in range(B)])  # (B, G)
            if kind == "running":
                bl = R.mean(1, keepdim=True).expand(B, G)  # (B, G)
            else:
                bl = baseline(r.reshape(-1), G, kind).view(B, G)  # (B, G)
            g = sum((r[b, i] - bl[b, i]) * S[b * N + idx[s, b, i]] for b in range(B) for i in range(G))
            gs.append(g / (B * G))
        slow = gradient_variance(torch.stack(gs))
        assert fast[kind] == pytest.approx(slow, rel=1e-6), kind


def test_estimator_variance_bad_inputs(tiny_rollout):
    model, ro = tiny_rollout
    K = torch.eye(15, dtype=torch.float64)
    with pytest.raises(ValueError, match="does not match"):
        estimator_variance(K[:14, :14], ro.rewards.view(3, 5), 2)
    with pytest.raises(ValueError, match="group_size >= 2"):
        estimator_variance(K, ro.rewards.view(3, 5), 1)


def test_positive_only_keeps_only_positive_rloo_advantages(cpu_base):
    """positive_only: the advantage r - b is max(r - b_RLOO, 0) sample by sample."""
    import torch

    from refimpl.core.rewards import make_reward_fn
    from refimpl.methods.reinforce import baseline
    from refimpl.methods.reinforce_trainer import collect_groups
    problems = cpu_base.heldout(8)
    outs = []
    for positive in (False, True):
        cfg = ReinforceConfig(group_size=4, positive_only=positive)
        outs.append(collect_groups(cpu_base.policy(), cpu_base.tokenizer, cpu_base.task, problems,
                                   cfg, make_reward_fn(cpu_base.task), None,
                                   torch.Generator().manual_seed(0)))
    (ro, b), (ro_pos, b_pos) = outs
    assert torch.equal(ro.rewards, ro_pos.rewards)
    rloo = baseline(ro.rewards, 4, "rloo")
    assert torch.allclose(ro.rewards - b_pos, (ro.rewards - rloo).clamp(min=0))
    assert (ro.rewards - b < 0).any()                 # the check can fail: RLOO has negatives
