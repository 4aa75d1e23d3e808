"""One name per concept across the trainers (docs/ARCHITECTURE.md, "Terms and symbols" and
"Conventions"): one trainer signature and one result type, one validation form, ``samples``
always counting generated completions, one name for mu, KL weights named by what they weigh,
and each registry row declared beside its trainer."""
import dataclasses
import importlib
import inspect
import pkgutil
import sys
import typing
from dataclasses import replace

import pytest

import refimpl
from refimpl.core.preferences import build_pairs
from refimpl.core.sft import load_base
from refimpl.core.training import TrainResult
from refimpl.methods import registry
from refimpl.methods.dpo_trainer import DPOConfig, train_dpo
from refimpl.methods.grpo_trainer import GRPOConfig, train_grpo
from refimpl.methods.online_dpo import OnlineDPOConfig, train_online_dpo
from refimpl.methods.ppo_trainer import PPOConfig, train_ppo
from refimpl.methods.prm import PRMConfig, train_prm
from refimpl.methods.reinforce_trainer import ReinforceConfig, train_reinforce
from refimpl.methods.reward_model import RMConfig, train_reward_model

POLICY_TRAINERS = (train_dpo, train_grpo, train_online_dpo, train_ppo, train_reinforce)
TRAINERS = {train_dpo: DPOConfig, train_grpo: GRPOConfig, train_online_dpo: OnlineDPOConfig,
            train_ppo: PPOConfig, train_reinforce: ReinforceConfig,
            train_reward_model: RMConfig, train_prm: PRMConfig}


def _modules():
    """Every module of the refimpl package (imported)."""
    for info in pkgutil.walk_packages(refimpl.__path__, "refimpl."):
        if info.name != "refimpl.__main__":
            yield importlib.import_module(info.name)


@pytest.mark.parametrize("train", list(TRAINERS), ids=lambda f: f.__name__)
def test_every_trainer_has_the_one_signature_and_returns_a_train_result(train):
    params = list(inspect.signature(train).parameters.values())
    assert [p.name for p in params[:2]] == ["base", "cfg"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:2]) and params[1].default is None
    assert all(p.kind is p.KEYWORD_ONLY for p in params[2:]), [p.name for p in params[2:]]
    assert typing.get_type_hints(train)["return"] is TrainResult
    assert typing.get_type_hints(train)["cfg"] == TRAINERS[train] | None
    if train in POLICY_TRAINERS:
        names = [p.name for p in params]
        assert {"policy", "progress", "heldout"} <= set(names)
        assert names[-2:] == ["progress", "heldout"], train.__name__


def test_one_result_type_with_the_model_field():
    fields = [f.name for f in dataclasses.fields(TrainResult)]
    assert fields == ["model", "history", "critic"]
    assert not any(hasattr(m, "PPOResult") for m in _modules())


def test_every_config_validates_with_its_method_and_no_module_function_exists():
    for cls in TRAINERS.values():
        assert callable(getattr(cls, "validate", None)), cls.__name__
        cls().validate()
    assert {m.config for m in registry.METHODS.values()} <= set(TRAINERS.values())
    with_function = [m.__name__ for m in _modules() if hasattr(m, "validate_config")]
    assert not with_function, with_function


def test_one_config_per_method():
    """REINFORCE's loss takes plain arguments; its one config sits beside its trainer."""
    from refimpl.methods import reinforce
    assert not hasattr(reinforce, "ReinforceConfig")
    assert not hasattr(sys.modules["refimpl.methods.reinforce_trainer"], "ReinforceTrainConfig")


def test_mu_is_inner_updates_and_kl_weights_say_what_they_weigh():
    fields = {cls: {f.name for f in dataclasses.fields(cls)} for cls in TRAINERS.values()}
    for cls, names in fields.items():
        assert "updates_per_step" not in names and "kl_coef" not in names, cls.__name__
    for cls in (GRPOConfig, PPOConfig, OnlineDPOConfig):
        assert "inner_updates" in fields[cls], cls.__name__
    assert "beta" in fields[GRPOConfig]                # per-token KL in the loss (TRL's name)
    assert "seq_kl_coef" in fields[ReinforceConfig] and "beta" not in fields[ReinforceConfig]
    assert "reward_kl_coef" in fields[PPOConfig] and "beta" not in fields[PPOConfig]


def test_each_registry_row_is_declared_in_its_trainers_module():
    for name, row in registry.METHODS.items():
        module = sys.modules[row.trainer.__module__]
        rows = getattr(module, "METHODS", None) or (module.METHOD,)
        assert any(r is row for r in rows), name
        assert row.config.__module__ == row.trainer.__module__, name
        assert row.flops.__module__ == row.trainer.__module__, name
        assert row.online or row.offline.make.__module__ == row.trainer.__module__, name


@pytest.fixture(scope="module")
def tiny():
    return load_base("tiny", progress=False)


@pytest.mark.parametrize("name", [n for n, m in registry.METHODS.items() if m.online])
def test_online_samples_count_the_completions_generated(tiny, name):
    row = registry.METHODS[name]
    B, G, steps = 2, 4, 3
    cfg = replace(row.config(), steps=steps, prompts_per_step=B, group_size=G, eval_every=0,
                  train_pool=16)
    res = row.train(tiny, cfg, heldout=None)
    assert isinstance(res, TrainResult)
    assert [r["samples"] for r in res.history] == [s * B * G for s in range(steps + 1)]


def test_dpo_logs_the_pairs_it_consumed_and_the_completions_behind_them(cpu_base):
    n_prompts, G = 16, 8
    pairs = build_pairs(cpu_base.model, cpu_base.tokenizer, cpu_base.task,
                        cpu_base.train_problems(n_prompts, seed=0), G, 2, seed=0)
    B = min(4, len(pairs))
    cfg = DPOConfig(steps=2, batch_size=B, eval_every=2, eval_problems=4)
    res = train_dpo(cpu_base, cfg, pairs=pairs, progress=False)
    assert isinstance(res, TrainResult)
    assert [r["pairs"] for r in res.history] == [0, B, 2 * B]
    assert [r["samples"] for r in res.history] == [n_prompts * G] * 3
