"""Graded checks for solutions/logprobs.py: ``sequence_logprobs_from_logits``.

The reference here is deliberately slow and obvious: nested Python loops over b and t and a
log-sum-exp written with the math module, so that it shares no code (and no bug) with a
vectorised solution. The gradient is checked against its closed form,
d/dz log softmax(z)[y] = onehot(y) - softmax(z).
"""
import math

import torch

from grader.checks import assert_close, assert_tensor, get_function, property_check

NAME = "sequence_logprobs_from_logits"


def slow_sequence_logprobs(logits, ids, mask) -> list[float]:
    """sum_t mask[b][t] * (logits[b][t][ids[b][t]] - logsumexp(logits[b][t])), one float per row."""
    logits, ids, mask = logits.tolist(), ids.tolist(), mask.tolist()
    out = []
    for b in range(len(logits)):
        total = 0.0
        for t in range(len(logits[b])):
            if not mask[b][t]:
                continue
            row = logits[b][t]
            top = max(row)
            lse = top + math.log(sum(math.exp(z - top) for z in row))
            total += row[ids[b][t]] - lse
        out.append(total)
    return out


def _random_case(B: int, T: int, V: int, seed: int, scale: float = 3.0):
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(B, T, V, generator=gen)  # (B, T, V)
    ids = torch.randint(0, V, (B, T), generator=gen)  # (B, T)
    lengths = torch.randint(0, T + 1, (B,), generator=gen)  # (B,)
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T) right padding
    mask[0] = True  # one full row
    if B > 1:
        mask[1] = False  # one empty row
    return logits, ids, mask


def _call(mod, logits, ids, mask, what: str) -> torch.Tensor:
    fn = get_function(mod, NAME)
    out = fn(logits, ids, mask)
    B = logits.shape[0]
    return assert_tensor(out, f"{NAME} on {what}", shape=(B,), floating=True)


def _diagnose(out: torch.Tensor, logits, ids, mask) -> str:
    """Name a classic mistake when the result matches it."""
    logps = torch.log_softmax(logits.double(), dim=-1)  # (B, T, V)
    tok = logps.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    m = mask.double()  # (B, T)
    shifted_ids = torch.roll(ids, shifts=-1, dims=1)  # (B, T)
    shifted = logps.gather(-1, shifted_ids.unsqueeze(-1)).squeeze(-1)  # (B, T)
    variants = {
        "the mask is ignored (padding tokens are counted)": tok.sum(-1),
        "the mask is inverted": (tok * (1 - m)).sum(-1),
        "you averaged over tokens instead of summing": (tok * m).sum(-1) / m.sum(-1).clamp(min=1),
        "the tokens are shifted by one column (column t already predicts token t; do not shift)":
            (shifted * m).sum(-1),
        "you used the raw logits, not log_softmax":
            (logits.double().gather(-1, ids.unsqueeze(-1)).squeeze(-1) * m).sum(-1),
        "you used probabilities, not log-probabilities": (tok.exp() * m).sum(-1),
        "the sign is flipped (return log-probs, not negative log-likelihoods)": -(tok * m).sum(-1),
    }
    got = out.detach().double()
    for hint, value in variants.items():
        if got.shape == value.shape and torch.allclose(got, value, atol=1e-4, rtol=1e-4):
            return f" Hint: it looks like {hint}."
    return ""


def _assert_matches(out, logits, ids, mask, what: str) -> None:
    expected = torch.tensor(slow_sequence_logprobs(logits, ids, mask), dtype=torch.float64)  # (B,)
    got = out.detach().double()
    if not torch.allclose(got, expected, atol=1e-4, rtol=1e-5):
        raise AssertionError(f"{what}: expected {[round(x, 4) for x in expected.tolist()]}, got "
                             f"{[round(x, 4) for x in got.tolist()]}.{_diagnose(out, logits, ids, mask)}")


@property_check
def check_returns_a_float_tensor_of_shape_B(mod) -> None:
    logits, ids, mask = _random_case(B=3, T=4, V=6, seed=0)
    out = _call(mod, logits, ids, mask, "float32 logits of shape (3, 4, 6)")
    assert out.dtype == torch.float32, f"float32 logits should give a float32 result, got {out.dtype}"
    assert torch.isfinite(out).all(), f"the result contains NaN or inf: {out.tolist()}"


def check_uniform_logits_closed_form(mod) -> None:
    V = 5
    mask = torch.tensor([[True, True, True, False], [True, False, False, False], [True, True, True, True]])
    ids = torch.tensor([[0, 4, 2, 1], [3, 3, 0, 0], [1, 2, 3, 4]])  # (3, 4)
    logits = torch.zeros(3, 4, V)  # (B, T, V) every token has probability 1/V
    out = _call(mod, logits, ids, mask, "all-zero logits")
    expected = -mask.sum(-1).double() * math.log(V)  # (B,) -n log V
    if not torch.allclose(out.detach().double(), expected, atol=1e-5):
        raise AssertionError(f"all-zero logits: each counted token adds log(1/5), so the rows should give "
                             f"{[round(x, 4) for x in expected.tolist()]}; got "
                             f"{[round(x, 4) for x in out.tolist()]}.{_diagnose(out, logits, ids, mask)}")


def check_matches_slow_reference(mod) -> None:
    for B, T, V, seed in [(4, 6, 7, 1), (2, 1, 3, 2), (5, 9, 11, 3)]:
        logits, ids, mask = _random_case(B, T, V, seed)
        out = _call(mod, logits, ids, mask, f"random logits (B={B}, T={T}, V={V})")
        _assert_matches(out, logits, ids, mask, f"random case B={B}, T={T}, V={V}, mask {mask.int().tolist()}")


def check_masked_positions_do_not_contribute(mod) -> None:
    # Hand-built masks: right padding after EOS, a prompt-like masked prefix, empty, full.
    mask = torch.tensor([[True, True, True, False, False],
                         [False, False, True, True, True],
                         [False, False, False, False, False],
                         [True, True, True, True, True],
                         [True, False, True, False, True]])  # (5, 5)
    B, T, V = 5, 5, 6
    gen = torch.Generator().manual_seed(4)
    logits = torch.randn(B, T, V, generator=gen)  # (B, T, V)
    ids = torch.randint(0, V, (B, T), generator=gen)  # (B, T)
    before = _call(mod, logits.clone(), ids.clone(), mask.clone(), "hand-built masks")
    _assert_matches(before, logits, ids, mask, "hand-built masks")
    junk_logits = logits.clone()
    junk_logits[~mask] = 40.0 * torch.randn(int((~mask).sum()), V, generator=gen)  # only masked positions
    junk_ids = torch.where(mask, ids, (ids + 1 + torch.randint(0, V - 1, (B, T), generator=gen)) % V)  # (B, T)
    after = _call(mod, junk_logits, junk_ids, mask.clone(),
                  "hand-built masks with other logits and ids at masked positions")
    assert torch.allclose(after.detach().double(), before.detach().double(), atol=1e-5), (
        "changing the logits and ids at masked positions (padding / prompt) changed the result from "
        f"{[round(x, 4) for x in before.tolist()]} to {[round(x, 4) for x in after.tolist()]}: "
        "masked positions must contribute nothing")


def check_large_logits_are_stable(mod) -> None:
    logits, ids, mask = _random_case(B=3, T=5, V=8, seed=5, scale=300.0)
    out = _call(mod, logits, ids, mask, "large logits (scale 300)")
    assert torch.isfinite(out).all(), (
        f"large logits gave {out.tolist()}: use torch.log_softmax (stable), not log(softmax(...))")
    _assert_matches(out, logits, ids, mask, "large logits (scale 300)")


def check_gradient_flows_to_logits(mod) -> None:
    logits, ids, mask = _random_case(B=3, T=4, V=5, seed=6)
    logits.requires_grad_(True)
    out = _call(mod, logits, ids, mask, "logits that require grad")
    assert out.requires_grad, (
        "the result is detached from the graph: do not call .detach(), .item() or torch.no_grad()")
    (grad,) = torch.autograd.grad(out.sum(), logits)  # (B, T, V)
    onehot = torch.nn.functional.one_hot(ids, 5).double()  # (B, T, V)
    expected = (onehot - torch.softmax(logits.detach().double(), -1)) * mask[..., None].double()  # (B, T, V)
    assert torch.isfinite(grad).all(), "the gradient with respect to the logits contains NaN or inf"
    assert torch.all(grad[~mask] == 0), "gradient reached the logits at masked positions (they must not contribute)"
    assert_close(grad, expected, "d(sum of outputs)/d logits, which should be onehot(id) - softmax(logits) "
                                 "at counted positions and 0 elsewhere", atol=1e-5)


@property_check
def check_inputs_are_not_modified(mod) -> None:
    logits, ids, mask = _random_case(B=3, T=5, V=4, seed=7)
    copies = (logits.clone(), ids.clone(), mask.clone())
    _call(mod, logits, ids, mask, "a random batch")
    for name, t, c in zip(("logits", "completion_ids", "completion_mask"), (logits, ids, mask), copies):
        assert torch.equal(t, c), f"{name} was modified in place; compute on new tensors instead"


EXERCISES = {
    NAME: [check_returns_a_float_tensor_of_shape_B, check_uniform_logits_closed_form, check_matches_slow_reference,
           check_masked_positions_do_not_contribute, check_large_logits_are_stable, check_gradient_flows_to_logits,
           check_inputs_are_not_modified],
}
