"""Bad input gets a clear error: property-based tests of every public loss, config and trainer.

Hypothesis picks an entry point, one of its arguments (or config fields) and a bad value for
it (NaN, inf, negative, out of range, wrong dtype, wrong shape, empty, wrong type), and
requires a ValueError or TypeError whose message names that argument. Everything else is a
valid call, so the test fails if a bad value slips through (the call then returns) or if it
crashes with an unrelated error. Trainers get a base that fails on any use: their configs
must be checked before the base is touched.
"""
import math
from dataclasses import replace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refimpl.core import checks
from refimpl.core.utils import get_preset
from refimpl.experiments.labs.offline_online import (OfflineOnlineConfig, dpo_logit_gradient,
                                                policy_gradient_logits, run_offline_online)
from refimpl.methods.dpo import dpo_gradient_weight, dpo_loss, dpo_loss_grad, implicit_reward
from refimpl.methods.dpo_trainer import DPOConfig, train_dpo
from refimpl.methods.grpo import (frac_reward_zero_std, group_advantages, grpo_loss,
                                  prob_uniform_group)
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.kl import kl_estimate
from refimpl.methods.ppo import ppo_loss, token_rewards
from refimpl.methods.ppo_trainer import PPOConfig, train_ppo
from refimpl.methods.prm import PRMConfig, train_prm
from refimpl.methods.reinforce import RunningBaseline, baseline, reinforce_loss
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce
from refimpl.methods.reward_model import RMConfig, bradley_terry_loss, train_reward_model

f64 = torch.float64
NAN, INF = float("nan"), float("inf")
B, G, T = 4, 2, 3                       # 4 rows = 2 prompts x 2 samples, 3 tokens
SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _lp(*shape):
    """Valid log-probs: in [-2.1, -0.1]."""
    g = torch.Generator().manual_seed(sum(shape))
    return -0.1 - 2 * torch.rand(*shape, generator=g, dtype=f64)


def _mask():
    m = torch.ones(B, T, dtype=torch.bool)
    m[0, 2] = False
    return m


# ---- bad values of each kind of argument ------------------------------------------------------

SCALARS = {
    "pos": [0.0, -1.0, NAN, INF, -INF, "0.1", None, [0.1], True],     # finite, > 0
    "nonneg": [-1e-3, -1.0, NAN, INF, "0", None, [0.0]],               # finite, >= 0
    "open01": [0.0, 1.0, -0.1, 1.5, NAN, INF, "0.2", None],           # in (0, 1)
    "unit": [-0.1, 1.5, NAN, INF, -INF, "0.5", None],                 # in [0, 1]
    "count": [1.5, -1, True, "2", NAN, None, 2.0],                     # int >= 0 (or >= 1, 2)
    "int": [1.5, True, "2", NAN, None],                               # any int
    "choice": ["bogus", 3, None, ""],
    "flag": [1, 0, "yes", None],
}


def _bad_tensors(kind, good):
    """Bad variants of the valid tensor ``good``."""
    nan, inf = good.clone(), good.clone()
    nan.view(-1)[0], inf.view(-1)[-1] = NAN, INF
    out = [nan, inf, good[..., None], good.reshape(-1)[:0], good.tolist(), good.numpy()]
    if kind != "reward":                                                # rewards may be ints
        out += [good.long()]
    if kind == "logp":
        out += [good.abs() + 0.5]                                       # positive "log-probs"
    if good.dim() >= 1 and good.shape[0] > 1:
        out += [good[:-1]]                                              # one row short
    return out


def _bad_masks(good):
    return [good.float(), good[:, :-1], torch.zeros_like(good), good.tolist(), good.long()]


def _bad_values(kind, good):
    if kind in SCALARS:
        return SCALARS[kind]
    if kind == "mask":
        return _bad_masks(good)
    return _bad_tensors(kind, good)


# ---- the public losses and helpers: (function, valid kwargs, {argument: kind}) ---------------

def _dpo_kwargs():
    return dict(policy_chosen_logps=_lp(B), policy_rejected_logps=_lp(B) - 1,
                ref_chosen_logps=_lp(B) - 0.5, ref_rejected_logps=_lp(B) - 0.7, beta=0.1)


DPO_ARGS = {k: "logp" for k in ("policy_chosen_logps", "policy_rejected_logps",
                                "ref_chosen_logps", "ref_rejected_logps")}
LOSSES = {
    "dpo_loss": (dpo_loss, lambda: dict(_dpo_kwargs(), loss_type="sigmoid", label_smoothing=0.1),
                 dict(DPO_ARGS, beta="pos", loss_type="choice", label_smoothing="unit")),
    "dpo_loss_grad": (dpo_loss_grad, lambda: dict(_dpo_kwargs(), label_smoothing=0.1),
                      dict({k: "finite" for k in DPO_ARGS}, beta="pos", label_smoothing="unit")),
    "implicit_reward": (implicit_reward,
                        lambda: dict(policy_logps=_lp(B), ref_logps=_lp(B) - 1, beta=0.1),
                        dict(policy_logps="logp", ref_logps="logp", beta="pos")),
    "dpo_gradient_weight": (dpo_gradient_weight,
                            lambda: dict(chosen_rewards=_lp(B), rejected_rewards=_lp(B) + 3),
                            dict(chosen_rewards="finite", rejected_rewards="finite")),
    "group_advantages": (group_advantages,
                         lambda: dict(rewards=torch.tensor([1.0, 0.0, 0.5, 0.5]), group_size=G,
                                      scale="group", eps=1e-4),
                         dict(rewards="reward", group_size="count", scale="choice",
                              eps="nonneg")),
    "frac_reward_zero_std": (frac_reward_zero_std,
                             lambda: dict(rewards=torch.tensor([1.0, 0.0, 0.5, 0.5]),
                                          group_size=G),
                             dict(rewards="reward", group_size="count")),
    "prob_uniform_group": (prob_uniform_group, lambda: dict(p=0.3, G=4),
                           dict(p="unit", G="count")),
    "grpo_loss": (grpo_loss,
                  lambda: dict(logps=_lp(B, T), old_logps=_lp(B, T) + 0.1,
                               advantages=torch.tensor([1.0, -1.0, 0.5, -0.5], dtype=f64),
                               mask=_mask(), clip_eps=0.2, clip_eps_high=0.28,
                               ref_logps=_lp(B, T) - 0.2, beta=0.04, kl_estimator="k3",
                               loss_agg="dr_grpo", max_tokens=5),
                  dict(logps="logp", old_logps="finite", advantages="finite", mask="mask",
                       clip_eps="open01", clip_eps_high="pos", ref_logps="logp", beta="nonneg",
                       kl_estimator="choice", loss_agg="choice", max_tokens="count")),
    "kl_estimate": (kl_estimate, lambda: dict(logps=_lp(B, T), ref_logps=_lp(B, T) - 1,
                                              estimator="k3"),
                    dict(logps="logp", ref_logps="logp", estimator="choice")),
    "baseline": (baseline, lambda: dict(rewards=torch.tensor([1.0, 0.0, 1.0, 1.0]),
                                        group_size=G, kind="rloo"),
                 dict(rewards="reward", group_size="count", kind="choice")),
    "reinforce_loss": (reinforce_loss,
                       lambda: dict(logps=_lp(B, T), rewards=torch.tensor([1.0, 0.0, 1.0, 1.0]),
                                    baselines=torch.full((B,), 0.5), ref_logps=_lp(B, T) - 1,
                                    seq_kl_coef=0.1, group_size=G, mask=_mask(),
                                    kl_estimator="k3"),
                       dict(logps="logp", rewards="reward", baselines="reward",
                            ref_logps="logp", seq_kl_coef="nonneg", group_size="count",
                            mask="mask", kl_estimator="choice")),
    "token_rewards": (token_rewards,
                      lambda: dict(scores=torch.tensor([1.0, 0.0, 1.0, 0.0]),
                                   mask=torch.ones(B, T, dtype=torch.bool),
                                   kl=_lp(B, T), reward_kl_coef=0.1),
                      dict(scores="finite", kl="finite", reward_kl_coef="nonneg")),
    "ppo_loss": (ppo_loss,
                 lambda: dict(logps=_lp(B, T), old_logps=_lp(B, T), advantages=_lp(B, T) + 1,
                              values=_lp(B, T), old_values=_lp(B, T), returns=_lp(B, T),
                              mask=torch.ones(B, T, dtype=torch.bool), clip_eps=0.2,
                              clip_range_value=0.2, vf_coef=0.5),
                 dict(logps="logp", clip_eps="open01", vf_coef="nonneg")),
    "bradley_terry_loss": (bradley_terry_loss,
                           lambda: dict(chosen_rewards=_lp(B), rejected_rewards=_lp(B) + 1),
                           dict(chosen_rewards="finite", rejected_rewards="finite")),
    "dpo_logit_gradient": (dpo_logit_gradient,
                           lambda: dict(logits=_lp(4), pairs=[(0, 1), (2, 3)], beta=0.1,
                                        ref_logits=_lp(4) - 1),
                           dict(logits="finite", beta="pos", ref_logits="finite")),
    "policy_gradient_logits": (policy_gradient_logits,
                               lambda: dict(logits=_lp(4), rewards=torch.tensor([1.0, 0, 0, 1])),
                               dict(logits="finite", rewards="reward")),
    "RunningBaseline": (RunningBaseline, lambda: dict(momentum=0.9, init=0.0),
                        dict(momentum="unit_open_high", init="finite_real")),
}
SCALARS["unit_open_high"] = [-0.1, 1.0, 1.5, NAN, INF, "0.5"]        # in [0, 1) or None
SCALARS["finite_real"] = [NAN, INF, -INF, "0", [0.0]]


def _cases():
    return [(name, arg, i) for name, (_, good, args) in LOSSES.items()
            for arg, kind in args.items() for i in range(len(_bad_values(kind, good()[arg])))]


CASES = _cases()


def _is_valid_anyway(name, arg, bad):
    """Values that are bad in general but valid for this particular argument."""
    return arg in ("max_tokens", "clip_eps_high") and bad is None     # None: T / clip_eps


def _assert_clear_error(call, arg):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert arg in str(info.value), f"the message does not name {arg!r}: {info.value}"


@settings(max_examples=400, **SETTINGS)
@given(st.sampled_from(CASES))
def test_every_loss_names_its_bad_argument(case):
    name, arg, i = case
    fn, good, args = LOSSES[name]
    kwargs = good()
    bad = _bad_values(args[arg], kwargs[arg])[i]
    if _is_valid_anyway(name, arg, bad):
        return
    kwargs[arg] = bad
    _assert_clear_error(lambda: fn(**kwargs), arg)


def test_the_valid_calls_pass():
    for name, (fn, good, _) in LOSSES.items():
        fn(**good())


def test_running_baseline_update_wrong_key_count():
    rb = RunningBaseline()
    with pytest.raises(ValueError, match="keys"):
        rb.update(["a", "b", "c"], torch.ones(4))
    with pytest.raises(ValueError, match="rewards"):
        rb.update(["a", "b"], torch.tensor([1.0, NAN, 0.0, 1.0]))


# ---- configs and trainers ---------------------------------------------------------------------

class _Untouchable:
    """A base that fails on any use: configs must be checked before the base is touched."""

    def __getattr__(self, name):
        raise AssertionError(f"the trainer used base.{name} before checking its config")


COMMON = {"steps": "count", "lr": "pos", "seed": "int", "eval_problems": "count"}
ONLINE = dict(COMMON, prompts_per_step="count", group_size="count", temperature="pos",
              max_grad_norm="pos", train_pool="count", eval_every="int", level="count")
CONFIGS = {
    DPOConfig: (lambda b, c: train_dpo(b, c),
                dict(COMMON, beta="pos", batch_size="count", label_smoothing="unit",
                     loss_type="choice", nll_coef="nonneg", max_grad_norm="pos",
                     eval_every="count", n_prompts="count", group_size="count",
                     pairs_per_prompt="count", temperature="pos")),
    GRPOConfig: (lambda b, c: train_grpo(b, c),
                 dict(ONLINE, clip_eps="open01", clip_eps_high="pos", beta="nonneg",
                      kl_estimator="choice", loss_agg="choice", scale="choice", eps="nonneg",
                      inner_updates="count", dynamic_sampling="flag",
                      max_sampling_rounds="count", surrogate="choice",
                      importance_sampling_level="choice", kl_importance_weight="flag")),
    PPOConfig: (lambda b, c: train_ppo(b, c),
                dict(ONLINE, critic_lr="pos", clip_eps="open01", clip_range_value="pos",
                     vf_coef="nonneg", reward_kl_coef="nonneg", gamma="unit", lam="unit",
                     whiten_advantages="flag", inner_updates="count",
                     critic_warmup_steps="count", mc_every="count", mc_samples="count")),
    ReinforceConfig: (lambda b, c: train_reinforce(b, c),
                      dict(ONLINE, baseline="choice", running_momentum="unit_open_high",
                           running_init="finite_real", seq_kl_coef="nonneg",
                           kl_estimator="choice", running_key="choice", digits="count")),
    RMConfig: (lambda b, c: train_reward_model(b, c),
               dict(lr="pos", batch_size="count", steps="count", eval_every="count",
                    seed="int", n_prompts="count", heldout_prompts="count",
                    group_size="count", pairs_per_prompt="count")),
    PRMConfig: (lambda b, c: train_prm(b, c, problems=[], texts=[]),
                dict(hidden="count", window="count", steps="count", lr="pos",
                     weight_decay="nonneg", heldout_frac="open01", seed="int")),
    OfflineOnlineConfig: (lambda b, c: run_offline_online(b, c),
                          dict(n_prompts="count", group_size="count", dpo_steps="count",
                               online_steps="count", dpo_lr="pos", dpo_beta="pos",
                               eval_problems="count", seed="int")),
}
OPTIONAL = {"clip_eps_high", "clip_range_value", "level", "running_momentum", "digits"}
FIELD_CASES = [(cls, f, i) for cls, (_, fields) in CONFIGS.items() for f, kind in fields.items()
               for i in range(len(SCALARS[kind]))]


@settings(max_examples=400, **SETTINGS)
@given(st.sampled_from(FIELD_CASES))
def test_every_trainer_names_its_bad_config_field(case):
    cls, name, i = case
    train, fields = CONFIGS[cls]
    bad = SCALARS[fields[name]][i]
    if bad is None and name in OPTIONAL:
        return                                                        # None is allowed there
    cfg = replace(cls(), **{name: bad})
    _assert_clear_error(lambda: train(_Untouchable(), cfg), f"{cls.__name__}.{name}")


@pytest.mark.parametrize("cls", list(CONFIGS))
def test_trainers_take_only_their_own_config(cls):
    train, _ = CONFIGS[cls]
    for wrong in ({"steps": 1}, "cfg", 3, OfflineOnlineConfig() if cls is not OfflineOnlineConfig
                  else DPOConfig()):
        _assert_clear_error(lambda: train(_Untouchable(), wrong), "cfg")


def test_train_dpo_refuses_empty_or_foreign_pairs():
    for pairs in ([], (), "pairs"):
        _assert_clear_error(lambda: train_dpo(_Untouchable(), DPOConfig(), pairs=pairs), "pairs")


@pytest.mark.parametrize("cls", [GRPOConfig, PPOConfig])
def test_pool_smaller_than_a_step(cls):
    cfg = cls(prompts_per_step=16, train_pool=8)
    _assert_clear_error(lambda: CONFIGS[cls][0](_Untouchable(), cfg), "train_pool")


@pytest.mark.parametrize("helper, value, args", [
    (checks.positive, NAN, ()), (checks.positive, -0.0, ()), (checks.interval, NAN, (0, 1)),
    (checks.count, 3.0, ()), (checks.probability, 1.0000001, ()), (checks.real, "1", ()),
])
def test_checks_refuse_nan_and_near_misses(helper, value, args):
    _assert_clear_error(lambda: helper("x", value, *args), "x")


def test_log_probs_allow_float_error_but_not_more():
    checks.logprobs("lp", torch.tensor([-1.0, 0.0, checks.LOGP_TOL / 2]))
    _assert_clear_error(lambda: checks.logprobs("lp", torch.tensor([-1.0, 2 * checks.LOGP_TOL])),
                        "lp")
    assert math.isinf(checks.logprobs("lp", torch.tensor([-INF, -1.0]),
                                      allow_zero_prob=True)[0].item())


@pytest.mark.parametrize("train", [lambda b, f: train_grpo(b, reward_fn=f),
                                   lambda b, f: train_ppo(b, reward_fn=f),
                                   lambda b, f: train_reinforce(b, reward_fn=f),
                                   lambda b, f: train_dpo(b, reward_fn=f)])
def test_reward_fn_must_be_callable(train):
    _assert_clear_error(lambda: train(_Untouchable(), "verify"), "reward_fn")


@settings(max_examples=60, **SETTINGS)
@given(st.sampled_from(["sft_lr", "sft_target_acc", "n_layer", "n_head", "block_size",
                        "sft_batch_size", "digits"]),
       st.sampled_from([0, -1, NAN, INF, 1.5, "2", None]))
def test_presets_name_their_bad_field(name, bad):
    if name.startswith("sft_") and name != "sft_batch_size" and bad == 1.5:
        return                                                        # a valid float
    _assert_clear_error(lambda: get_preset("cpu", **{name: bad}), f"Preset.{name}")
