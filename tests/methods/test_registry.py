"""The method registry (refimpl.methods.registry) and the helpers every trainer shares (refimpl.core.training,
refimpl.core.model.eval_mode): each row is complete and consistent, and the helpers do what their
docstrings say."""
import dataclasses
import inspect
import time

import pytest
import torch

from refimpl.experiments.head_to_head import compare
from refimpl.methods import registry
from refimpl.core.model import eval_mode
from refimpl.core.training import Clock, TrainResult, eval_due, log_heldout
from refimpl.core.utils import PRESETS


def test_every_row_is_complete_and_named_by_its_key():
    assert set(registry.METHODS) == {"dpo", "rpo", "online_dpo", "grpo", "reinforce", "ppo"}
    for name, m in registry.METHODS.items():
        assert m.name == name and m.label and m.signal
        assert dataclasses.is_dataclass(m.config)
        assert "heldout" in inspect.signature(m.trainer).parameters
        assert registry.LABELS[name] == m.label


def test_offline_methods_take_their_data_by_keyword_and_online_ones_take_none():
    for m in registry.METHODS.values():
        params = inspect.signature(m.trainer).parameters
        assert m.online == (m.offline is None), m.name
        if not m.online:
            assert params[m.offline.arg].kind is inspect.Parameter.KEYWORD_ONLY, m.name


def test_study_fields_are_fields_of_the_config_and_overrides_apply():
    cc = compare.config_for_preset("tiny", tuned=False, overrides={"grpo": {"lr": 3e-5}})
    for name, m in registry.METHODS.items():
        fields = {f.name for f in dataclasses.fields(m.config)}
        assert set(m.study_fields(cc)) <= fields, name
        cfg = compare.method_config(name, cc, seed=3, steps=5, eval_every=2)
        assert isinstance(cfg, m.config) and (cfg.seed, cfg.steps, cfg.eval_every) == (3, 5, 2)
    assert compare.method_config("grpo", cc, 0, 1, 1).lr == 3e-5
    assert compare.method_config("rpo", cc, 0, 1, 1).nll_coef == cc.rpo_nll_coef > 0
    assert compare.method_config("dpo", cc, 0, 1, 1).nll_coef == 0.0
    assert compare.method_config("reinforce", cc, 0, 1, 1).baseline == "rloo"


def test_unknown_method_names_the_choices():
    with pytest.raises(ValueError, match="unknown method 'sft': choose from dpo, rpo"):
        registry.get_method("sft")
    with pytest.raises(ValueError, match="unknown method"):
        registry.get_method(None)


def test_the_study_defaults_of_each_preset_live_with_the_head_to_head():
    """compare.PRESET_DEFAULTS holds the head-to-head's defaults at each preset's size (a preset
    itself holds only the model and its SFT, which is all the base's cache key reads)."""
    from refimpl.core.sft import _cache_paths
    assert set(compare.PRESET_DEFAULTS) == set(PRESETS)
    for d in compare.PRESET_DEFAULTS.values():
        assert {"budget_samples", "eval_problems", "prompts_per_step", "group_size"} <= set(d)
    cpu = PRESETS["cpu"]
    assert _cache_paths(cpu, 0) != _cache_paths(dataclasses.replace(cpu, sft_lr=1e-3), 0)
    cc = compare.config_for_preset("gpu")
    assert (cc.budget_samples, cc.prompts_per_step) == (20480, 64)
    assert compare.config_for_preset("tiny").evals == 1
    with pytest.raises(ValueError, match="unknown preset"):
        compare.config_for_preset("huge")


def test_eval_due_every_eval_every_steps_and_at_the_end():
    cfg = type("C", (), {"eval_every": 3, "steps": 7})
    assert [s for s in range(8) if eval_due(s, cfg)] == [0, 3, 6, 7]
    cfg.eval_every = 0
    assert not any(eval_due(s, cfg) for s in range(8))


def test_log_heldout_runs_off_the_training_clock():
    cfg = type("C", (), {"eval_every": 2, "steps": 4})
    clock = Clock()

    def evaluate():
        time.sleep(0.05)
        return {"heldout_acc": 0.5}

    row, skipped = {"step": 2}, {"step": 1}
    assert log_heldout(row, cfg, clock, evaluate) and row["heldout_acc"] == 0.5
    assert not log_heldout(skipped, cfg, clock, evaluate) and "heldout_acc" not in skipped
    assert clock.excluded >= 0.05 and clock() < 0.05


def test_eval_mode_restores_each_modules_mode_even_after_an_error():
    a, b = torch.nn.Dropout(0.5).train(), torch.nn.Dropout(0.5).eval()
    with pytest.raises(RuntimeError):
        with eval_mode(a, b):
            assert not a.training and not b.training
            raise RuntimeError("inside the block")
    assert a.training and not b.training


def test_every_trainer_returns_a_train_result_with_the_shared_history(cpu_base):
    cc = compare.config_for_preset("cpu", tuned=False, prompts_per_step=4, group_size=4,
                                   eval_problems=4)
    heldout = cpu_base.heldout(4)
    pairs = compare.make_data("dpo", cpu_base, cc, 0, 16)[0]
    for name, m in registry.METHODS.items():
        cfg = compare.method_config(name, cc, seed=0, steps=2, eval_every=1)
        res = m.train(cpu_base, cfg, heldout=heldout, data=pairs)
        assert isinstance(res, TrainResult), name
        assert [r["step"] for r in res.history] == [0, 1, 2], name
        assert all({"time_s", "samples", "heldout_acc"} <= set(r) for r in res.history), name
