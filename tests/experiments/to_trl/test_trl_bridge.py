"""refimpl next to Hugging Face TRL 1.16: same losses, same metrics, a complete config map.

The TRL checks run only with TRL installed (``pip install -r requirements-trl.txt``); the
config-map, lazy-import and benchmark smoke tests run either way.
"""
import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from refimpl.experiments.to_trl import trl_bridge, trl_compare
from refimpl.core.tasks import get_task
from refimpl.core.tokenizer import CharTokenizer
from refimpl.methods.dpo_trainer import DPOConfig
from refimpl.methods.grpo_trainer import GRPOConfig

ROOT = Path(__file__).resolve().parents[3]
needs_trl = pytest.mark.skipif(not trl_bridge.trl_available(),
                               reason=f"TRL {trl_bridge.TRL_SERIES}.x not installed: "
                                      f"{trl_bridge.INSTALL_HINT}")


# ------------------------------------------------------------ without TRL ----------------

@pytest.mark.parametrize("cls,method", [(DPOConfig, "dpo"), (GRPOConfig, "grpo")])
def test_every_config_field_is_mapped(cls, method):
    assert trl_bridge.unmapped_fields(cls, method) == [], \
        "add the new field to trl_bridge.CONFIG_MAP and docs/TRL.md"


def test_docs_hold_the_mapping_table():
    doc = (ROOT / "docs" / "TRL.md").read_text()
    missing = [row for row in trl_bridge.mapping_markdown().splitlines() if row not in doc]
    assert missing == [], "docs/TRL.md is out of date: paste trl_bridge.mapping_markdown()"


def test_config_translation():
    kw = trl_bridge.to_trl_grpo_kwargs(GRPOConfig(prompts_per_step=8, group_size=4, clip_eps_high=0.28,
                                                  loss_agg="dr_grpo", scale="none", steps=40,
                                                  inner_updates=2), 12)
    assert kw["per_device_train_batch_size"] == 32 and kw["num_generations"] == 4   # completions
    assert (kw["epsilon"], kw["epsilon_high"], kw["loss_type"], kw["scale_rewards"]) == \
        (0.2, 0.28, "dr_grpo", "none")
    assert kw["use_bias_correction_kl"] is False and kw["max_completion_length"] == 12
    assert kw["max_steps"] == 40 * 2 and kw["num_iterations"] == 2     # TRL counts optimiser steps
    d = trl_bridge.to_trl_dpo_kwargs(DPOConfig(nll_coef=0.5))
    assert d["loss_type"] == ["sigmoid", "sft"] and d["loss_weights"] == [1.0, 0.5]
    assert d["precompute_ref_log_probs"] is True
    for bad in (dict(label_smoothing=0.1), dict(loss_type="ipo")):
        with pytest.raises(ValueError, match="TRL"):
            trl_bridge.to_trl_dpo_kwargs(DPOConfig(**bad))
    for bad in (dict(kl_estimator="k2"), dict(dynamic_sampling=True), dict(eps=1e-6)):
        with pytest.raises(ValueError, match="TRL"):
            trl_bridge.to_trl_grpo_kwargs(GRPOConfig(**bad), 12)
    with pytest.raises(ValueError, match="unknown method"):
        trl_bridge.config_map("ppo")
    v = trl_bridge.to_trl_grpo_kwargs(GRPOConfig(surrogate="cispo", clip_eps_high=5.0, loss_agg="dapo",
                                                 importance_sampling_level="sequence",
                                                 kl_importance_weight=True), 12)
    assert (v["loss_type"], v["epsilon_high"], v["importance_sampling_level"],
            v["use_bias_correction_kl"]) == ("cispo", 5.0, "sequence", True)
    assert kw["importance_sampling_level"] == "token"
    with pytest.raises(ValueError, match="TRL.*dapo"):
        trl_bridge.to_trl_grpo_kwargs(GRPOConfig(surrogate="cispo", clip_eps_high=5.0), 12)


def test_refimpl_imports_without_transformers():
    code = ("import sys, refimpl.experiments.to_trl.trl_bridge, refimpl.experiments.to_trl.trl_compare, "
            "refimpl.experiments.to_trl.trl_recipes, refimpl.experiments.to_trl.trl_defaults, refimpl.methods.dpo, refimpl.methods.grpo; "
            "bad = [m for m in ('trl', 'transformers', 'datasets') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_benchmark_runs_tiny(capsys):
    spec = importlib.util.spec_from_file_location("bench_vs_trl", ROOT / "benchmarks" / "bench_vs_trl.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.main(["--tiny", "--repeats", "1", "--prompts", "2", "--group", "2", "--pairs", "4",
                      "--threads", "1"])
    impls = {"refimpl", "trl"} if trl_bridge.trl_available() else {"refimpl"}
    for method, unit, per_step in (("grpo", "completions", 4), ("dpo", "pairs", 4)):
        res = out[method]
        assert res["unit"] == unit and res["per_step"] == per_step and set(res["per_s"]) == impls
        for n in impls:
            med = res["median_ms"][n]
            phases = sum(v for k, v in med.items() if k != "step")
            assert math.isclose(phases, med["step"], rel_tol=1e-9)        # phases partition the step
            assert res["per_s"][n] == pytest.approx(per_step / (med["step"] / 1e3))
            own = res["floor_ms"] if n == "trl" else res["floor_shared_ms"]
            assert 0 < res["floor_reached"][n] == pytest.approx(own / med["step"])
        # Sharing each prompt within its group can only remove work.
        assert 0 < res["mflop_shared"] < res["mflop_per_step"]
    assert "ratio refimpl / TRL" in capsys.readouterr().out or impls == {"refimpl"}
    # The figure of notebook 08: one panel per method, one bar segment per non-zero phase.
    from refimpl.figures.plots import plot_step_phases
    fig = plot_step_phases(out)
    assert [ax.get_title() for ax in fig.axes] == ["GRPO", "DPO"]
    for ax, method in zip(fig.axes, ("grpo", "dpo")):
        segments = sum(1 for med in out[method]["median_ms"].values()
                       for k, v in med.items() if k != "step" and v > 0)
        assert len(ax.patches) == segments


# ------------------------------------------------------------ with TRL -------------------

@pytest.fixture(scope="module")
def setup():
    task = get_task("add", digits=2)
    tok = CharTokenizer(task.alphabet)
    return task, tok


@needs_trl
def test_hf_tokenizer_has_refimpl_ids(setup):
    task, tok = setup
    hf = trl_bridge.hf_tokenizer(tok)
    p = task.problems("train", 3, seed=0)
    ids, _ = tok.encode_prompts([p[0].prompt])                                 # (1, P)
    assert hf(p[0].prompt)["input_ids"] == ids[0].tolist()                      # BOS + prompt
    full = hf(p[0].prompt + task.target(p[0]) + hf.eos_token)["input_ids"]
    c_ids, _ = tok.encode_completions([task.target(p[0])])
    assert full == ids[0].tolist() + c_ids[0].tolist()
    assert hf.decode(full, skip_special_tokens=True) == p[0].prompt + task.target(p[0])
    assert (hf.pad_token_id, hf.bos_token_id, hf.eos_token_id) == (tok.pad_id, tok.bos_id, tok.eos_id)


@needs_trl
def test_tiny_llama_size_and_left_padding(setup):
    task, tok = setup
    from refimpl.core.model import GPT, GPTConfig
    llama = trl_bridge.tiny_llama(tok, n_layer=4, n_embd=128, n_head=4)
    gpt = GPT(GPTConfig(tok.vocab_size, block_size=32, n_layer=4, n_head=4, n_embd=128))
    n_llama = sum(p.numel() for p in llama.parameters())
    # Llama's gated MLP of width 8C/3 has the 8C^2 weights of GPT's 4C MLP; only biases,
    # norms and position embeddings differ.
    assert abs(n_llama - gpt.num_params()) / gpt.num_params() < 0.02
    small = trl_bridge.tiny_llama(tok, n_layer=1, n_embd=32, n_head=2)
    probs = [task.problems("train", 1, level=lv, seed=1)[0] for lv in (0, 1, 2)]
    prompts = [p.prompt for p in probs] + ["3+4="]                               # shorter: padded
    pi, pm = tok.encode_prompts(prompts)                                        # (4, P)
    ci, cm = tok.encode_completions(["12,3|7", "5", "", "07|7"])                # (4, T)
    with torch.no_grad():
        batched = trl_bridge.hf_token_logprobs(small, pi, pm, ci, cm)           # (4, T)
        for b in range(4):
            keep = pm[b]
            one = trl_bridge.hf_token_logprobs(small, pi[b:b + 1, keep], pm[b:b + 1, keep],
                                               ci[b:b + 1], cm[b:b + 1])
            torch.testing.assert_close(batched[b:b + 1], one, atol=1e-5, rtol=1e-5)
    assert (batched[~cm] == 0).all() and (batched[cm] < 0).all()


@needs_trl
def test_dpo_loss_and_metrics_equal_trl(setup):
    task, tok = setup
    model = trl_bridge.tiny_llama(tok, n_layer=1, n_embd=32, n_head=2, seed=1)
    probs = task.problems("train", 12, seed=0)
    rows = [{"prompt": p.prompt, "chosen": task.target(p),
             "rejected": task.target(probs[(i + 1) % len(probs)])} for i, p in enumerate(probs)]
    res = trl_compare.compare_dpo(model, tok, rows, beta=0.1, steps=3, lr=3e-2)
    assert [r["step"] for r in res] == [1, 2, 3]
    first = res[0]
    assert first["loss/trl"] == pytest.approx(math.log(2), abs=1e-6)           # policy == reference
    assert first["rewards/margins/trl"] == 0.0 and first["rewards/accuracies/trl"] == 0.0
    for r in res:
        assert r["loss/refimpl"] == pytest.approx(r["loss/trl"], rel=1e-5, abs=1e-6)
        for k in trl_compare.DPO_METRICS:
            assert r[f"{k}/refimpl"] == pytest.approx(r[f"{k}/trl"], rel=1e-5, abs=1e-5), (r["step"], k)
    # The model really moved, so later steps compare non-trivial numbers.
    assert res[-1]["rewards/margins/trl"] > 0.01 and res[-1]["loss/trl"] < math.log(2) - 1e-3


def _grpo(tok, task, loss_type="grpo", scale="group", bias_kl=False, B=3, G=4, **overrides):
    model = trl_bridge.tiny_llama(tok, n_layer=1, n_embd=32, n_head=2, seed=2)
    prompts = [p.prompt for p in task.problems("train", B, seed=3)]
    reward = trl_compare.ScriptedReward()
    kwargs = dict(per_device_train_batch_size=B * G, num_generations=G, max_completion_length=6,
                  beta=0.04, loss_type=loss_type, scale_rewards=scale, epsilon=0.2,
                  epsilon_high=0.28, use_bias_correction_kl=bias_kl, max_steps=1)
    trainer = trl_compare.make_grpo_trainer(model, tok, prompts, reward, **{**kwargs, **overrides})
    # Rewards with a uniform group (zero advantage), a binary and a continuous one.
    gen = torch.Generator().manual_seed(0)
    rewards = torch.cat([torch.ones(G), torch.tensor([1.0, 0.0, 0.0, 1.0])[:G], torch.rand(G, generator=gen)])
    reward.rewards = rewards
    batch = trl_compare.trl_grpo_batch(trainer, prompts)
    with torch.no_grad():                      # move the policy off the reference: KL > 0
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return trainer, batch, rewards


@needs_trl
@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_advantages_and_loss_equal_trl(setup, scale):
    task, tok = setup
    trainer, batch, rewards = _grpo(tok, task, scale=scale)
    for loss_type in ("grpo", "dapo", "dr_grpo"):
        res = trl_compare.compare_grpo(trainer, batch, rewards, logratio_noise=0.3, loss_type=loss_type)
        torch.testing.assert_close(res["advantages/trl"], res["advantages/refimpl"], atol=1e-6, rtol=1e-6)
        assert res["loss/refimpl"] == pytest.approx(res["loss/trl"], rel=1e-5, abs=1e-7), loss_type
        assert res["clip_ratio/refimpl"] == pytest.approx(res["clip_ratio/trl"], abs=1e-7)
        assert res["kl/refimpl"] == pytest.approx(res["kl/trl"], rel=1e-5)
    assert res["clip_ratio/trl"] > 0 and res["kl/trl"] > 0       # the clip and the KL both acted
    assert (res["advantages/trl"][:4] == 0).all()                  # the uniform group


@needs_trl
def test_trl_default_kl_correction_same_value_only_on_policy(setup):
    task, tok = setup
    trainer, batch, rewards = _grpo(tok, task, bias_kl=True)
    on = trl_compare.compare_grpo(trainer, batch, rewards, logratio_noise=0.0)
    off = trl_compare.compare_grpo(trainer, batch, rewards, logratio_noise=0.3)
    assert on["loss/refimpl"] == pytest.approx(on["loss/trl"], rel=1e-5, abs=1e-7)
    # Off-policy TRL weights k3 by pi/pi_old: a different number (by beta * mean((ratio-1) k3)).
    assert abs(off["loss/refimpl"] - off["loss/trl"]) > 1e-6


GSPO_EPS = dict(epsilon=0.05, epsilon_high=0.05)   # s_i stays near 1: a narrow clip still acts


@needs_trl
@pytest.mark.parametrize("variant", [
    dict(importance_sampling_level="sequence", **GSPO_EPS),              # GSPO
    dict(loss_type="cispo", epsilon_high=1.1),                           # CISPO, a cap that acts
    dict(bias_kl=True),                                                  # TRL's default KL
    dict(bias_kl=True, importance_sampling_level="sequence", **GSPO_EPS),  # s_i weights the KL
], ids=["gspo", "cispo", "k3_weighted", "gspo_k3_weighted"])
def test_grpo_variants_loss_and_gradient_equal_trl(setup, variant):
    task, tok = setup
    trainer, batch, rewards = _grpo(tok, task, **variant)
    res = trl_compare.compare_grpo(trainer, batch, rewards, logratio_noise=0.3, grads=True,
                                   kl_importance_weight=variant.get("bias_kl", False))
    assert res["loss/refimpl"] == pytest.approx(res["loss/trl"], rel=1e-5, abs=1e-7)
    assert res["clip_ratio/refimpl"] == pytest.approx(res["clip_ratio/trl"], abs=1e-7)
    assert res["kl/refimpl"] == pytest.approx(res["kl/trl"], rel=1e-5)
    g_trl, g_ref = res["grad/trl"], res["grad/refimpl"]
    assert g_trl.abs().max() > 1e-4                                # a real gradient
    torch.testing.assert_close(g_ref, g_trl, rtol=1e-4, atol=1e-6 * g_trl.abs().max().item())
    assert res["clip_ratio/trl"] > 0 and res["kl/trl"] > 0


@needs_trl
def test_refimpl_variants_differ_from_plain_grpo_in_gradient(setup):
    # the comparison above would also pass if neither side applied the variant
    task, tok = setup
    trainer, batch, rewards = _grpo(tok, task)
    plain = trl_compare.compare_grpo(trainer, batch, rewards, logratio_noise=0.3, grads=True)
    trainer.importance_sampling_level = "sequence"
    gspo = trl_compare.compare_grpo(trainer, batch, rewards, logratio_noise=0.3, grads=True)
    torch.testing.assert_close(gspo["grad/refimpl"], gspo["grad/trl"], rtol=1e-4, atol=1e-7)
    assert (gspo["grad/trl"] - plain["grad/trl"]).abs().max() > 1e-4


@needs_trl
def test_translated_configs_are_accepted_by_trl():
    from trl import DPOConfig as TRLDPO
    from trl import GRPOConfig as TRLGRPO
    ours = GRPOConfig(prompts_per_step=16, group_size=8, beta=0.04, loss_agg="grpo", clip_eps=0.2)
    g = trl_bridge.trl_args(TRLGRPO, **trl_bridge.to_trl_grpo_kwargs(ours, 16))
    assert (g.num_generations, g.per_device_train_batch_size, g.beta, g.loss_type, g.epsilon) == \
        (8, 128, 0.04, "grpo", 0.2)
    cispo = GRPOConfig(surrogate="cispo", clip_eps_high=5.0, loss_agg="dapo",
                       importance_sampling_level="sequence", kl_importance_weight=True)
    c = trl_bridge.trl_args(TRLGRPO, **trl_bridge.to_trl_grpo_kwargs(cispo, 16))
    assert (c.loss_type, c.epsilon_high, c.importance_sampling_level, c.use_bias_correction_kl) == \
        ("cispo", 5.0, "sequence", True)
    d = trl_bridge.trl_args(TRLDPO, **trl_bridge.to_trl_dpo_kwargs(DPOConfig(beta=0.1, batch_size=32, lr=1e-4)))
    assert (d.beta, d.per_device_train_batch_size, d.loss_type, d.learning_rate) == (0.1, 32, ["sigmoid"], 1e-4)
