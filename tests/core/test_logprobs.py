"""Masking: log-probs count completion tokens only, never prompt or padding."""
import math

import pytest
import torch

from refimpl.core.logprobs import gather_token_logprobs, sequence_logprobs, token_logprobs
from refimpl.core.model import GPT, GPTConfig
from refimpl.core.tokenizer import CharTokenizer

TOK = CharTokenizer("0123456789+=,|")


def test_gather_matches_hand_computed_values():
    logits = torch.tensor([[[0.0, math.log(3.0)], [2.0, 2.0]]])   # (1, 2, 2)
    ids = torch.tensor([[1, 0]])
    mask = torch.tensor([[True, False]])
    out = gather_token_logprobs(logits, ids, mask)
    torch.testing.assert_close(out, torch.tensor([[math.log(0.75), 0.0]]))


def test_sequence_logprob_is_slow_loop_sum():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()
    p_ids, p_mask = TOK.encode_prompts(["12+3=", "7="])
    c_ids, c_mask = TOK.encode_completions(["15", "7|7"])
    got = sequence_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    for b, (prompt, comp) in enumerate([("12+3=", "15"), ("7=", "7|7")]):
        seq = [TOK.bos_id] + TOK.encode(prompt)
        total = 0.0
        for y in TOK.encode(comp) + [TOK.eos_id]:             # no padding at all: one row alone
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([seq]))[0, -1], -1)
            total += logp[y].item()
            seq.append(y)
        assert abs(got[b].item() - total) < 1e-4


def test_padding_and_prompt_do_not_contribute():
    torch.manual_seed(1)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()
    p_ids, p_mask = TOK.encode_prompts(["1+2=", "11+22="])
    c_ids, c_mask = TOK.encode_completions(["3", "33|33"])
    base = token_logprobs(model, p_ids, p_mask, c_ids, c_mask)
    junk = c_ids.clone()
    junk[~c_mask] = 5                                        # change the padded completion tokens
    junk_p = p_ids.clone()
    junk_p[~p_mask] = 7                                      # change the prompt padding
    again = token_logprobs(model, junk_p, p_mask, junk, c_mask)
    torch.testing.assert_close(base, again, atol=1e-6, rtol=0)
    assert (base[~c_mask] == 0).all()


def test_shape_errors():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=16))
    p_ids, p_mask = TOK.encode_prompts(["1+2="])
    c_ids, c_mask = TOK.encode_completions(["3"])
    with pytest.raises(ValueError, match="completion_mask"):
        token_logprobs(model, p_ids, p_mask, c_ids, c_mask[:, :1])
    with pytest.raises(ValueError, match="batch sizes"):
        token_logprobs(model, p_ids.repeat(2, 1), p_mask.repeat(2, 1), c_ids, c_mask)
    with pytest.raises(ValueError, match="shape mismatch"):
        gather_token_logprobs(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long),
                              torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"):
        token_logprobs(model, p_ids, p_mask, c_ids, c_mask, temperature=-1)


def _grouped_batch(G=3, T_max=5, seed=0):
    """Three prompts of different lengths (so left-padded), G completions each, group-major."""
    g = torch.Generator().manual_seed(seed)
    prompts = ["12+3=", "7=", "111+222="]
    texts = ["".join(str(int(d)) for d in torch.randint(0, 10, (int(n),), generator=g))
             for n in torch.randint(0, T_max, (len(prompts) * G,), generator=g)]
    p_ids, p_mask = TOK.encode_prompts([p for p in prompts for _ in range(G)])   # (3G, P)
    c_ids, c_mask = TOK.encode_completions(texts)                               # (3G, T)
    return p_ids, p_mask, c_ids, c_mask


@pytest.mark.parametrize("G", [2, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_shared_prompt_pass_matches_plain_pass(G, temperature):
    """group_size=G runs each prompt once: same log-probs and same gradients as G full rows."""
    torch.manual_seed(2)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=2, n_head=2, n_embd=16))
    batch = _grouped_batch(G)
    grads = []
    for group_size in (1, G):
        model.zero_grad()
        lp = token_logprobs(model, *batch, temperature=temperature, group_size=group_size)
        (lp * torch.linspace(-1, 1, lp.numel()).view_as(lp)).sum().backward()  # any weighting
        grads.append([p.grad.clone() for p in model.parameters()])
        if group_size == 1:
            plain = lp.detach()
    torch.testing.assert_close(lp.detach(), plain, atol=1e-5, rtol=0)
    assert (lp[~batch[3]] == 0).all()
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_shared_prompt_pass_with_one_token_completions():
    torch.manual_seed(3)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=16)).eval()
    p_ids, p_mask = TOK.encode_prompts(["1+2=", "1+2=", "33="  , "33="])
    c_ids = torch.tensor([[5], [6], [7], [TOK.eos_id]])
    c_mask = torch.ones_like(c_ids, dtype=torch.bool)
    torch.testing.assert_close(token_logprobs(model, p_ids, p_mask, c_ids, c_mask, group_size=2),
                               token_logprobs(model, p_ids, p_mask, c_ids, c_mask), atol=1e-6, rtol=0)


def test_shared_prompt_errors_name_the_problem():
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, n_layer=1, n_head=2, n_embd=16))
    p_ids, p_mask, c_ids, c_mask = _grouped_batch(G=2)
    with pytest.raises(ValueError, match="share one prompt"):        # groups of 3 straddle prompts
        token_logprobs(model, p_ids[:6], p_mask[:6], c_ids[:6], c_mask[:6], group_size=3)
    with pytest.raises(ValueError, match="divide"):
        token_logprobs(model, p_ids, p_mask, c_ids, c_mask, group_size=4)
    with pytest.raises(ValueError, match="divide"):
        token_logprobs(model, p_ids, p_mask, c_ids, c_mask, group_size=0)


def test_gather_refuses_an_out_of_range_id_even_where_masked():
    from refimpl.core.logprobs import gather_token_logprobs
    logits = torch.zeros(1, 2, 5)
    mask = torch.tensor([[True, False]])
    for bad in (5, -1):
        with pytest.raises(ValueError, match=r"ids must lie in \[0, 5\)"):
            gather_token_logprobs(logits, torch.tensor([[0, bad]]), mask)
    with pytest.raises(TypeError, match="integer tensor"):
        gather_token_logprobs(logits, torch.zeros(1, 2), mask)
    out = gather_token_logprobs(logits, torch.tensor([[1, 4]]), mask)
    torch.testing.assert_close(out, torch.tensor([[-torch.log(torch.tensor(5.0)).item(), 0.0]]))
