"""Notebook 08's scripts: the arena's base exported to transformers, the verifier as a TRL reward
function, a run's dashboard table, and TRL 1.16's GRPO defaults against the paper's on one batch.

The reward, dataset-free and table checks run without TRL; the rest need it
(``pip install -r requirements-trl.txt``)."""
import math

import pytest
import torch

from refimpl.core.model import GPT, GPTConfig
from refimpl.core.tasks import get_task
from refimpl.core.tokenizer import CharTokenizer
from refimpl.experiments.to_trl import trl_bridge, trl_defaults, trl_recipes
from refimpl.methods.grpo import group_advantages

needs_trl = pytest.mark.skipif(not trl_bridge.trl_available(),
                               reason=f"TRL {trl_bridge.TRL_SERIES}.x not installed: "
                                      f"{trl_bridge.INSTALL_HINT}")


@pytest.fixture(scope="module")
def arena():
    task = get_task("add")
    tok = CharTokenizer(task.alphabet)
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(tok.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=32)).eval()
    return task, tok, gpt


# ------------------------------------------------------------ without TRL ----------------

def test_verifier_reward_is_the_verifier_and_refuses_unknown_prompts(arena):
    task, _, _ = arena
    probs = task.problems("train", 3, seed=0)
    reward = trl_recipes.VerifierReward(task, probs)
    right, wrong = task.target(probs[0]), task.target(probs[1])
    prompts = [probs[0].prompt, probs[0].prompt, probs[1].prompt, probs[2].prompt]
    completions = [right, wrong, "junk", task.target(probs[2])]
    assert reward(prompts=prompts, completions=completions, completion_ids=None) == [1.0, 0.0, 0.0, 1.0]
    assert reward.__name__ == "verifier"                         # TRL's metric: rewards/verifier/mean
    with pytest.raises(ValueError, match="not among"):
        reward(prompts=["1+1="], completions=["02|2"])


def test_arena_prompts_have_one_length_and_the_check_can_fail(arena):
    task, _, _ = arena
    assert trl_recipes.equal_prompt_lengths(task.problems("train", 500, seed=1))
    assert not trl_recipes.equal_prompt_lengths(get_task("add", digits=2).problems("train", 200) +
                                                task.problems("train", 3))


def test_dashboard_prints_logged_steps_and_marks_missing_metrics():
    log = [{"step": 1, "loss": 0.5, "kl": 0.0}, {"step": 2, "loss": 0.25},
           {"train_runtime": 3.0}]                                # the final summary row
    lines = trl_recipes.dashboard(log, ("loss", "kl")).splitlines()
    assert len(lines) == 3 and lines[0].split() == ["step", "loss", "kl"]
    assert lines[1].split() == ["1", "0.5000", "0.0000"] and lines[2].split() == ["2", "0.2500", "-"]
    with pytest.raises(ValueError, match="no logged step"):
        trl_recipes.dashboard(log, ("reward",))


def test_gpt2_names_cover_every_refimpl_weight_once(arena):
    _, _, gpt = arena
    sd = trl_recipes.gpt2_state_dict(gpt)
    assert sum(v.numel() for v in sd.values()) == gpt.num_params()   # the head is tied to wte
    assert sd["transformer.h.0.mlp.c_fc.weight"].shape == (32, 128)  # Conv1D: (in, out)


# ------------------------------------------------------------ with TRL -------------------

@needs_trl
def test_gpt2_export_has_refimpl_logprobs_and_loads_from_its_folder(arena, tmp_path):
    task, tok, gpt = arena
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from refimpl.core.logprobs import token_logprobs
    probs = task.problems("heldout", 6, seed=2)
    args = (*tok.encode_prompts([p.prompt for p in probs]),
            *tok.encode_completions([task.target(p) for p in probs]))
    path = trl_recipes.export_gpt2(gpt, tok, tmp_path / "m")
    hf = AutoModelForCausalLM.from_pretrained(path).eval()
    with torch.no_grad():
        ours, theirs = token_logprobs(gpt, *args), trl_bridge.hf_token_logprobs(hf, *args)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-5)
    hf_tok = AutoTokenizer.from_pretrained(path)
    assert hf_tok(probs[0].prompt)["input_ids"] == args[0][0].tolist()          # BOS + prompt
    # Left padding moves GPT-2's positions but not refimpl's: the limit export_gpt2 states.
    short = tok.encode_prompts(["1+2=", probs[0].prompt])
    c = tok.encode_completions(["03|3", task.target(probs[0])])
    with torch.no_grad():
        gap = (token_logprobs(gpt, *short, *c) - trl_bridge.hf_token_logprobs(hf, *short, *c))[0]
    assert gap.abs().max() > 1e-3


@pytest.fixture(scope="module")
def grpo_run(arena, tmp_path_factory):
    """A GRPOTrainer on the exported model, moved off its reference, and one scored batch whose
    groups have completions of two lengths (3- and 4-digit answers)."""
    if not trl_bridge.trl_available():
        pytest.skip("TRL not installed")
    task, tok, gpt = arena
    trl = trl_bridge.require_trl()
    probs = task.problems("train", 200, seed=4)
    probs = [p for p in probs if p.answer < 1000][:2] + [p for p in probs if p.answer >= 1000][:2]
    path = trl_recipes.export_gpt2(gpt, tok, tmp_path_factory.mktemp("grpo") / "m")
    args = trl_bridge.trl_args(trl.GRPOConfig, per_device_train_batch_size=16, num_generations=4,
                               max_completion_length=6, beta=0.04, loss_type="grpo",
                               use_bias_correction_kl=False, max_steps=1)
    with trl_bridge.quiet():
        trainer = trl_bridge.silence(trl.GRPOTrainer(
            model=path, reward_funcs=trl_recipes.VerifierReward(task, probs), args=args,
            train_dataset=trl_recipes.prompt_dataset(probs)))
    batch, _ = trl_defaults.scored_batch(trainer, [p.prompt for p in probs])
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():                      # move the policy off the reference: KL > 0
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    # A random model never solves the task: score the batch with rewards that vary in groups.
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0] * 4)
    batch = dict(batch, advantages=group_advantages(rewards, 4, eps=1e-4))
    return trainer, batch, rewards


@needs_trl
def test_trl_defaults_are_the_three_that_differ_from_the_paper():
    assert trl_defaults.trl_grpo_defaults() == {"loss_type": "dapo", "beta": 0.0,
                                                "use_bias_correction_kl": True}
    last = dict(trl_defaults.SETTINGS)["TRL 1.16 defaults (all three)"]
    assert {**trl_defaults.PAPER, **last} == trl_defaults.trl_grpo_defaults()


@needs_trl
def test_each_default_on_one_batch(grpo_run):
    trainer, batch, rewards = grpo_run
    before = (trainer.loss_type, trainer.beta, trainer.args.use_bias_correction_kl)
    rows = {r["setting"]: r for r in trl_defaults.defaults_on_one_batch(trainer, batch, rewards)}
    assert (trainer.loss_type, trainer.beta, trainer.args.use_bias_correction_kl) == before
    for r in rows.values():                                        # TRL computes refimpl's loss
        assert r["loss/refimpl"] == pytest.approx(r["loss/trl"], rel=1e-5, abs=1e-7), r["setting"]
        assert r["grad_change/refimpl"] == pytest.approx(r["grad_change/trl"], abs=1e-4)
    paper, dapo = rows["paper GRPO"], rows["loss_type='dapo'"]
    no_kl, bias = rows["beta=0.0"], rows["use_bias_correction_kl=True"]
    assert paper["grad_change/trl"] == 0 and paper["kl/trl"] > 0
    assert dapo["grad_change/trl"] > 1e-3                          # groups of two lengths
    assert no_kl["kl/trl"] is None and no_kl["grad_change/trl"] > 1e-3
    # On-policy the ratio is 1: the same value, another gradient.
    assert math.isclose(bias["loss/trl"], paper["loss/trl"], rel_tol=1e-6, abs_tol=1e-9)
    assert bias["grad_change/trl"] > 1e-6
    with pytest.raises(ValueError, match="advantages"):
        trl_defaults.defaults_on_one_batch(trainer, batch, 1 - rewards)
    table = trl_defaults.defaults_table(list(rows.values())).splitlines()
    assert len(table) == 1 + len(trl_defaults.SETTINGS) and "-" in table[3].split()
    assert trl_defaults._fixed(-1e-9) == "0.000000" and trl_defaults._fixed(-0.25) == "-0.250000"


@needs_trl
def test_setting_needs_a_reference(grpo_run):
    trainer, _, _ = grpo_run
    trainer.beta = 0.0
    try:
        with pytest.raises(ValueError, match="no reference"):
            with trl_defaults.grpo_setting(trainer, "grpo", 0.04, False):
                pass
    finally:
        trainer.beta = 0.04
