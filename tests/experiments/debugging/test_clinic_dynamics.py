"""The pieces behind the clinic's training-dynamics cases (refimpl.experiments.debugging.clinic_dynamics):
the exact per-token entropy (against a slow loop, with its gradient), the entropy bonus of
GRPOConfig.entropy_coef (0 changes nothing, > 0 raises the entropy, entropy_target makes it a
floor) and the model's optional dropout (0 changes nothing and draws no random number). The
cases themselves run broken and fixed in tests/experiments/debugging/test_clinic.py, with every registered case."""
import math
from dataclasses import replace

import pytest
import torch

from refimpl.core.logprobs import completion_logits, token_entropy, token_logprobs
from refimpl.core.model import GPT, GPTConfig, set_dropout
from refimpl.core.rollouts import sample_groups
from refimpl.core.tokenizer import CharTokenizer
from refimpl.core.training import adamw
from refimpl.methods.grpo_trainer import GRPOConfig, grpo_update, policy_logps, train_grpo

TOK = CharTokenizer("0123456789+=,|")


def tiny_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=2, n_head=2, n_embd=16, **kw))


def batch():
    p_ids, p_mask = TOK.encode_prompts(["12+3=", "7+70=", "1+2="])
    c_ids, c_mask = TOK.encode_completions(["15", "77|77", "3"])
    return p_ids, p_mask, c_ids, c_mask


# --- the exact entropy ---------------------------------------------------------------------

def test_token_entropy_matches_a_slow_loop():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 7) * 3                                    # (B, T, V)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    got = token_entropy(logits, mask)
    for b in range(3):
        for t in range(4):
            z = [float(v) for v in logits[b, t]]
            top = max(z)
            total = sum(math.exp(v - top) for v in z)
            p = [math.exp(v - top) / total for v in z]
            want = -sum(q * math.log(q) for q in p) if mask[b, t] else 0.0
            assert abs(got[b, t].item() - want) < 1e-5, (b, t)


def test_token_entropy_limits_and_gradient():
    V = 5
    uniform = torch.zeros(1, 1, V)
    sure = torch.tensor([[[30.0, 0, 0, 0, 0]]])
    one = torch.ones(1, 1, dtype=torch.bool)
    assert abs(token_entropy(uniform, one).item() - math.log(V)) < 1e-6
    assert token_entropy(sure, one).item() < 1e-9
    # dH/dz_v = -p_v (log p_v + H), the gradient an entropy bonus follows
    z = torch.tensor([[[0.3, -1.0, 2.0, 0.5, 0.0]]], requires_grad=True)
    h = token_entropy(z, one).sum()
    h.backward()
    p = torch.softmax(z.detach(), -1)
    torch.testing.assert_close(z.grad, -p * (p.log() + h.detach()), atol=1e-6, rtol=1e-5)


def test_token_entropy_refuses_bad_input():
    one = torch.ones(1, 2, dtype=torch.bool)
    with pytest.raises(ValueError, match="shape mismatch"):
        token_entropy(torch.zeros(1, 3, 4), one)
    with pytest.raises(ValueError, match="finite"):
        token_entropy(torch.tensor([[[0.0, float("nan")], [0.0, 1.0]]]), one)


# --- the entropy bonus in GRPO -------------------------------------------------------------

def test_entropy_fields_are_checked():
    GRPOConfig(entropy_coef=0.01, entropy_target=0.3).validate()
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="entropy_coef"):
            GRPOConfig(entropy_coef=bad).validate()
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="entropy_target"):
            GRPOConfig(entropy_target=bad).validate()


def test_entropy_coef_zero_leaves_a_run_unchanged(cpu_base):
    cfg = GRPOConfig(steps=2, prompts_per_step=4, group_size=4, eval_every=0)
    keys = ("reward", "loss", "kl", "grad_norm", "entropy", "clip_ratio")
    plain = train_grpo(cpu_base, cfg, progress=False).history[1:]
    zero = train_grpo(cpu_base, replace(cfg, entropy_coef=0.0), progress=False).history[1:]
    assert [[r[k] for k in keys] for r in plain] == [[r[k] for k in keys] for r in zero]
    # a vanishing bonus takes the logits path: the same log-probs, hence the same run
    tiny = train_grpo(cpu_base, replace(cfg, entropy_coef=1e-12), progress=False).history[1:]
    for a, b in zip(plain, tiny):
        for k in keys:
            assert abs(a[k] - b[k]) < 1e-4, k


def sampled_batch(base):
    """4 prompts x 4 samples of the base, every reward set to 0 (no policy gradient)."""
    ro = sample_groups(base.model, base.tokenizer, base.task, base.train_problems(4, seed=0), 4,
                       generator=torch.Generator().manual_seed(0))
    ro = replace(ro, rewards=torch.zeros_like(ro.rewards))
    return ro, (ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask)


def mean_entropy(policy, args) -> float:
    with torch.no_grad():
        ent = token_entropy(completion_logits(policy, *args, group_size=4), args[3])
    return (ent.sum() / args[3].sum()).item()


def test_an_entropy_bonus_raises_the_policys_entropy(cpu_base):
    """Updates with the bonus alone (every advantage 0) raise the exact mean entropy of the
    policy on the batch's completions; the same updates without it change nothing."""
    ro, args = sampled_batch(cpu_base)
    before = mean_entropy(cpu_base.model, args)
    for coef, moved in ((0.1, True), (0.0, False)):
        policy = cpu_base.policy()
        cfg = GRPOConfig(group_size=4, beta=0.0, inner_updates=3, entropy_coef=coef, lr=1e-3)
        grpo_update(policy, None, adamw(policy.parameters(), cfg.lr), ro, cfg)
        assert (mean_entropy(policy, args) > before + 0.01) == moved, coef


def test_an_entropy_target_is_a_floor(cpu_base):
    """policy_logps' bonus equals entropy_coef x the mean entropy below the target, and is
    constant (no gradient) once the mean entropy is above it."""
    ro, args = sampled_batch(cpu_base)
    h = mean_entropy(cpu_base.model, args)
    policy = cpu_base.policy()
    for target, active in ((h + 1.0, True), (h / 2, False)):
        cfg = GRPOConfig(group_size=4, entropy_coef=0.5, entropy_target=target)
        policy.zero_grad(set_to_none=True)
        logps, bonus = policy_logps(policy, args, cfg, 4)
        torch.testing.assert_close(logps, token_logprobs(policy, *args, group_size=4))
        assert abs(bonus.item() - 0.5 * min(h, target)) < 1e-4
        bonus.backward()
        grad = sum(p.grad.abs().sum().item() for p in policy.parameters() if p.grad is not None)
        assert (grad > 0) == active, target


# --- dropout -------------------------------------------------------------------------------

def test_default_model_has_no_dropout_and_draws_no_random_number():
    model = tiny_gpt().train()
    p_ids, p_mask, c_ids, c_mask = batch()
    state = torch.get_rng_state()
    train_lp = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    assert torch.equal(torch.get_rng_state(), state), "a forward pass drew random numbers"
    eval_lp = token_logprobs(model.eval(), p_ids, p_mask, c_ids, c_mask)
    assert torch.equal(train_lp, eval_lp)
    assert not any("drop" in k for k in model.state_dict()), "dropout must add no state"


def test_set_dropout_makes_training_passes_noisy_and_zero_undoes_it():
    model = set_dropout(tiny_gpt(), 0.3)
    assert model.config.dropout == 0.3
    p_ids, p_mask, c_ids, c_mask = batch()
    eval_lp = token_logprobs(model.eval(), p_ids, p_mask, c_ids, c_mask)
    model.train()
    a = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    b = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    assert not torch.equal(a, b) and not torch.equal(a, eval_lp)
    set_dropout(model, 0.0)
    torch.testing.assert_close(token_logprobs(model, p_ids, p_mask, c_ids, c_mask), eval_lp)
    torch.testing.assert_close(token_logprobs(tiny_gpt(dropout=0.0).eval(), p_ids, p_mask,
                                              c_ids, c_mask), eval_lp)


def test_dropout_probability_is_checked():
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="dropout"):
            tiny_gpt(dropout=bad)
        with pytest.raises(ValueError, match="dropout"):
            set_dropout(tiny_gpt(), bad)

