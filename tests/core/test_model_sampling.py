"""The policy, its KV cache and the sampler agree with a plain full forward pass."""
import pytest
import torch

from refimpl.core.logprobs import token_logprobs
from refimpl.core.model import GPT, GPTConfig
from refimpl.core.sampling import generate
from refimpl.core.tokenizer import CharTokenizer

TOK = CharTokenizer("0123456789+=,|")


def _model(seed=0, block=32):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=block, n_layer=2, n_head=4, n_embd=32)).eval()


def _prompts():
    return TOK.encode_prompts(["12+34=", "5+6=", "123+456=", "9="])


def test_kv_cache_logits_match_full_forward():
    model = _model()
    ids, mask = _prompts()
    B, P = ids.shape
    extra = torch.randint(3, TOK.vocab_size, (B, 6))
    full_ids = torch.cat([ids, extra], 1)
    full_mask = torch.cat([mask, torch.ones_like(extra, dtype=torch.bool)], 1)
    with torch.no_grad():
        full = model(full_ids, full_mask)                       # (B, P+6, V)
        cache = model.new_cache()
        steps = [model(ids, mask, cache)]
        for t in range(6):
            steps.append(model(extra[:, t:t + 1], full_mask[:, :P + t + 1], cache))
    cached = torch.cat(steps, 1)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)


def test_left_padding_does_not_change_a_prompt():
    model = _model()
    alone_ids, alone_mask = TOK.encode_prompts(["5+6="])
    batch_ids, batch_mask = _prompts()                          # "5+6=" is row 1, left-padded
    with torch.no_grad():
        a = model(alone_ids, alone_mask)[0, -1]
        b = model(batch_ids, batch_mask)[1, -1]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logps_equal_recomputed_and_cache_equals_no_cache(temperature):
    model = _model(1)
    ids, mask = _prompts()
    kw = dict(max_new_tokens=10, eos_id=TOK.eos_id, pad_id=TOK.pad_id, temperature=temperature)
    a = generate(model, ids, mask, generator=torch.Generator().manual_seed(3), **kw)
    b = generate(model, ids, mask, generator=torch.Generator().manual_seed(3), use_cache=False, **kw)
    assert torch.equal(a.ids, b.ids) and torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.logps, b.logps, atol=1e-5, rtol=0)
    with torch.no_grad():
        re = token_logprobs(model, ids, mask, a.ids, a.mask, temperature=temperature)
    torch.testing.assert_close(a.logps, re, atol=1e-5, rtol=0)
    assert (a.logps[~a.mask] == 0).all()


def test_completion_mask_stops_after_eos():
    model = _model(2)
    ids, mask = _prompts()
    # A random model emits EOS with probability ~1/17 per token: over 4 x 8 draws both kinds of
    # rows (stopped and never stopped) occur; check PAD and the mask after each EOS.
    out = generate(model, ids.repeat(8, 1), mask.repeat(8, 1), 12, TOK.eos_id, TOK.pad_id,
                   generator=torch.Generator().manual_seed(0))
    stopped = (out.ids == TOK.eos_id).any(1)
    assert stopped.any() and not stopped.all()
    for row_ids, row_mask in zip(out.ids, out.mask):
        eos = (row_ids == TOK.eos_id).nonzero()
        if len(eos):
            e = eos[0].item()
            assert row_mask[:e + 1].all() and not row_mask[e + 1:].any()
            assert (row_ids[e + 1:] == TOK.pad_id).all()
        else:
            assert row_mask.all()


def test_greedy_is_argmax_of_full_forward():
    model = _model(4)
    ids, mask = _prompts()
    out = generate(model, ids, mask, 5, TOK.eos_id, TOK.pad_id, greedy=True)
    with torch.no_grad():
        first = model(ids, mask)[:, -1].argmax(-1)
    assert torch.equal(out.ids[:, 0], first)


def test_bad_input_errors():
    model = _model()
    ids, mask = _prompts()
    with pytest.raises(ValueError, match="temperature"):
        generate(model, ids, mask, 4, TOK.eos_id, TOK.pad_id, temperature=0.0)
    with pytest.raises(ValueError, match="context"):
        generate(model, ids, mask, 40, TOK.eos_id, TOK.pad_id)
    with pytest.raises(ValueError, match="same shape"):
        generate(model, ids, mask[:, 1:], 4, TOK.eos_id, TOK.pad_id)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="not in the tokenizer"):
        TOK.encode("12-3")


def test_tokenizer_round_trip():
    ids, mask = TOK.encode_completions(["12,13,06|632", "1|1"])
    assert TOK.decode_completions(ids) == ["12,13,06|632", "1|1"]
    assert mask.sum(1).tolist() == [13, 4]           # characters + EOS
    p_ids, p_mask = TOK.encode_prompts(["1+2=", "10+20="])
    assert p_ids[0, 0] == TOK.pad_id and p_ids[0, 2] == TOK.bos_id and p_mask[0].sum() == 5


def test_shared_prompt_sampling_equals_repeated_prompts():
    """num_samples=G encodes each prompt once; it must sample exactly what G copies would."""
    model = _model(5)
    ids, mask = _prompts()
    kw = dict(max_new_tokens=8, eos_id=TOK.eos_id, pad_id=TOK.pad_id)
    shared = generate(model, ids, mask, num_samples=4, generator=torch.Generator().manual_seed(7), **kw)
    repeated = generate(model, ids.repeat_interleave(4, 0), mask.repeat_interleave(4, 0),
                        generator=torch.Generator().manual_seed(7), **kw)
    assert torch.equal(shared.ids, repeated.ids) and torch.equal(shared.mask, repeated.mask)
    torch.testing.assert_close(shared.logps, repeated.logps, atol=1e-5, rtol=0)
    no_cache = generate(model, ids, mask, num_samples=4, use_cache=False,
                        generator=torch.Generator().manual_seed(7), **kw)
    assert torch.equal(shared.ids, no_cache.ids)
    with pytest.raises(ValueError, match="num_samples"):
        generate(model, ids, mask, num_samples=0, **kw)


def test_cpu_attention_formula_matches_fused_kernel():
    """refimpl's CPU attention (the plain formula) equals PyTorch's fused kernel, masks included."""
    import torch.nn.functional as F

    from refimpl.core.model import attention
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 2, 4, 8, generator=g, requires_grad=True)
    k, v = (torch.randn(3, 2, 6, 8, generator=g, requires_grad=True) for _ in range(2))
    allowed = torch.rand(3, 1, 4, 6, generator=g) < 0.6
    allowed[..., 0] = True                                         # every query sees some key
    ours = attention(q, k, v, allowed)
    fused = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(ours, fused, atol=1e-6, rtol=1e-5)
    g_ours = torch.autograd.grad(ours.square().sum(), (q, k, v))
    g_fused = torch.autograd.grad(fused.square().sum(), (q, k, v))
    for a, b in zip(g_ours, g_fused):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_kv_cache_carries_gradients_to_the_prompt():
    """A cached prompt pass stays in the autograd graph: the gradient through the cache equals
    the gradient of the same logits computed in one full pass."""
    model = _model().train()
    ids, mask = _prompts()
    extra = torch.randint(3, TOK.vocab_size, (ids.shape[0], 3), generator=torch.Generator().manual_seed(1))
    full_mask = torch.cat([mask, torch.ones_like(extra, dtype=torch.bool)], 1)
    full = model(torch.cat([ids, extra], 1), full_mask)[:, -3:]             # (B, 3, V)
    g_full = torch.autograd.grad(full.logsumexp(-1).sum(), list(model.parameters()))
    cache = model.new_cache()
    model(ids, mask, cache)
    cached = model(extra, full_mask, cache)                                   # (B, 3, V)
    g_cached = torch.autograd.grad(cached.logsumexp(-1).sum(), list(model.parameters()))
    for a, b in zip(g_full, g_cached):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
