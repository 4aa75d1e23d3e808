"""Checks for exercises/grpo.py: group advantages, the clipped loss, k3, uniform groups, and
article exercise 2 (the zero GRPO gradient of a uniform group).

Each check receives the student's module (its functions run in the sandbox) and raises
AssertionError with a hint. References: solutions/grpo.py (grader.reference.expected) and
closed forms. Every hyper-parameter a student could hard-code (G, eps, clip_eps) takes
several values.
"""
import math

import torch

from grader.checks import property_check
from grader.reference import expected as reference

f64 = torch.float64


def _fmt(t) -> str:
    return str([round(v, 4) for v in torch.as_tensor(t).reshape(-1).tolist()])


def _batch(B: int, T: int, seed: int, spread: float = 0.3):
    """Random log-probs, a ragged right-padded mask and advantages, all float64."""
    g = torch.Generator().manual_seed(seed)
    logps = -3 * torch.rand(B, T, generator=g, dtype=f64)  # (B, T)
    old = logps + spread * torch.randn(B, T, generator=g, dtype=f64)  # (B, T)
    lengths = torch.randint(1, T + 1, (B,), generator=g)  # (B,)
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    adv = torch.randn(B, generator=g, dtype=f64)  # (B,)
    logps, old = torch.where(mask, logps, 0.0), torch.where(mask, old, 0.0)
    return logps, old, adv, mask


def _loss(mod, *args, **kwargs) -> torch.Tensor:
    out = mod.grpo_clipped_loss(*args, **kwargs)
    assert isinstance(out, torch.Tensor) and out.dim() == 0, (
        "grpo_clipped_loss must return a scalar (0-d) tensor, got "
        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


def _adv(mod, rewards, G, **kwargs) -> torch.Tensor:
    out = mod.group_advantages(rewards, G, **kwargs)
    assert isinstance(out, torch.Tensor) and tuple(out.shape) == (rewards.numel(),), (
        f"group_advantages must return a (B*G,) = ({rewards.numel()},) tensor, got "
        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    return out


# --- group_advantages ----------------------------------------------------------------------

def check_advantages_hand_built(mod):
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=f64)
    adv = _adv(mod, rewards, 4)
    expected = torch.tensor([0.75, -0.25, -0.25, -0.25], dtype=f64) / 0.5001
    biased = torch.tensor([0.75, -0.25, -0.25, -0.25], dtype=f64) / (math.sqrt(3) / 4 + 1e-4)
    assert not torch.allclose(adv, expected * 0.5001 / 0.5, atol=1e-9), (
        "you divided by the std alone; divide by (std + eps): eps keeps a uniform group "
        "(std 0) finite")
    assert not torch.allclose(adv, biased, atol=1e-6), (
        "you divided by the population std (correction=0); use the unbiased std "
        "(torch.std's default, correction=1): for [1, 0, 0, 0] it is 0.5")
    assert torch.allclose(adv, expected, atol=1e-9), (
        f"for rewards [1, 0, 0, 0] the mean is 0.25 and the unbiased std 0.5, so the "
        f"advantages are {_fmt(expected)}; got {_fmt(adv)}")


def check_advantages_per_group(mod):
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.0], dtype=f64)
    adv = _adv(mod, rewards, 2)
    expected = reference("grpo.group_advantages", rewards, 2)
    assert torch.allclose(adv, expected, atol=1e-9), (
        f"with G = 2 each pair is normalised on its own: expected {_fmt(expected)}, got "
        f"{_fmt(adv)}; reshape to (B, G) and reduce over dim=1")


def check_advantages_random(mod):
    g = torch.Generator().manual_seed(0)
    for G, eps in [(4, 1e-4), (8, 1e-4), (3, 0.1)]:
        rewards = torch.rand(5 * G, generator=g, dtype=f64)
        adv = _adv(mod, rewards, G, eps=eps)
        expected = reference("grpo.group_advantages", rewards, G, eps=eps)
        assert torch.allclose(adv, expected, atol=1e-9), (
            f"advantages differ from the reference on random rewards (G={G}, eps={eps}); "
            f"max error {(adv - expected).abs().max().item():.3g}")
        sums = adv.reshape(-1, G).sum(1)
        assert torch.allclose(sums, torch.zeros_like(sums), atol=1e-9), (
            "advantages must sum to zero within each group")


@property_check
def check_advantages_uniform_group(mod):
    rewards = torch.tensor([1.0] * 4 + [0.0] * 4, dtype=f64)
    adv = _adv(mod, rewards, 4)
    assert torch.isfinite(adv).all(), "a uniform group gives 0 / 0: add eps to the std"
    assert (adv == 0).all(), f"a group whose rewards are all equal has advantages 0, got {_fmt(adv)}"


# --- grpo_clipped_loss ---------------------------------------------------------------------

def check_loss_matches_reference(mod):
    for seed, agg, eps in [(0, "grpo", 0.2), (1, "dapo", 0.2), (2, "grpo", 0.1), (3, "dapo", 0.3),
                           (10, "grpo", 0.05), (11, "dapo", 0.28)]:
        logps, old, adv, mask = _batch(6, 7, seed)
        loss = _loss(mod, logps, old, adv, mask, clip_eps=eps, loss_agg=agg)
        expected = reference("grpo.grpo_clipped_loss", logps, old, adv, mask, clip_eps=eps, loss_agg=agg)
        assert abs(loss.item() - expected.item()) < 1e-9, (
            f'loss_agg="{agg}", clip_eps={eps}: expected {expected.item():.6f}, got {loss.item():.6f} on a '
            'random batch with padding; "grpo" averages each completion\'s own tokens, then the '
            'completions; "dapo" divides the sum over all tokens by their number; the clip range is '
            '(1 - clip_eps, 1 + clip_eps), not a fixed (0.8, 1.2)')


def check_loss_empty_completion(mod):
    # a completion with no tokens at all (its mask row all False): EOS sampled first, or a
    # completion cut away by a length filter; it adds nothing, it must not turn the loss into 0 / 0
    logps, old, adv, mask = _batch(4, 5, seed=12)
    mask[1] = False
    logps, old = torch.where(mask, logps, 0.0), torch.where(mask, old, 0.0)
    for agg in ("grpo", "dapo"):
        x = logps.clone().requires_grad_(True)
        loss = _loss(mod, x, old, adv, mask, loss_agg=agg)
        want = reference("grpo.grpo_clipped_loss", logps, old, adv, mask, loss_agg=agg)
        assert math.isfinite(loss.item()), (
            f'loss_agg="{agg}": a batch with one empty completion (mask row all False) gave loss '
            f"{loss.item()}; its length |o_i| is 0, so divide by the length clamped to at least 1")
        assert abs(loss.item() - want.item()) < 1e-9, (
            f'loss_agg="{agg}": with one empty completion expected {want.item():.6f}, got {loss.item():.6f}; '
            'the empty completion still counts in "grpo"\'s mean over the B completions, with loss 0')
        (grad,) = torch.autograd.grad(loss, x)
        assert torch.isfinite(grad).all() and (grad[1] == 0).all(), (
            f'loss_agg="{agg}": the gradient must be finite, and 0 on the empty completion, got {_fmt(grad[1])}')


@property_check
def check_loss_ignores_padding(mod):
    logps, old, adv, mask = _batch(5, 6, seed=4)
    junk = torch.where(mask, 0.0, -7.0)
    for agg in ("grpo", "dapo"):
        a = _loss(mod, logps, old, adv, mask, loss_agg=agg)
        b = _loss(mod, logps + junk, old - junk, adv, mask, loss_agg=agg)
        assert abs(a.item() - b.item()) < 1e-9, (
            f'loss_agg="{agg}": changing log-probs at padded positions changed the loss '
            f"({a.item():.6f} -> {b.item():.6f}); only tokens where mask is True may count")


def check_loss_gradient_at_ratio_one(mod):
    logps, _, adv, mask = _batch(4, 5, seed=5)
    logps.requires_grad_(True)
    loss = _loss(mod, logps, logps.detach().clone(), adv, mask, loss_agg="grpo")
    (grad,) = torch.autograd.grad(loss, logps)
    lengths = mask.sum(1, keepdim=True).to(f64)  # (B, 1)
    expected = torch.where(mask, -adv[:, None] / (lengths * len(adv)), 0.0)  # (B, T)
    assert torch.allclose(grad, expected, atol=1e-12), (
        "with logps == old_logps every ratio is 1 and d loss / d logps[i, t] must be "
        "-A_i / (B |o_i|) on completion tokens and 0 on padding")


def check_loss_clipping(mod):
    # positive A with ratio 1.5 > 1.2: clipped, zero gradient; ratio 0.5 < 0.8: not clipped
    # negative A with ratio 0.5 < 0.8: clipped, zero gradient; ratio 1.5: not clipped
    logps = torch.zeros(2, 2, dtype=f64, requires_grad=True)
    old = -torch.tensor([[math.log(1.5), math.log(0.5)]] * 2, dtype=f64)
    mask = torch.ones(2, 2, dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0], dtype=f64)
    (grad,) = torch.autograd.grad(_loss(mod, logps, old, adv, mask, clip_eps=0.2), logps)
    expected = torch.tensor([[0.0, -0.5 / 4], [1.5 / 4, 0.0]], dtype=f64)
    assert torch.allclose(grad, expected, atol=1e-12), (
        f"gradient {_fmt(grad)}, expected {_fmt(expected)}: the clip must stop the gradient "
        "only where it limits the objective (ratio > 1 + eps with A > 0, ratio < 1 - eps "
        "with A < 0); take min(ratio * A, clip(ratio) * A), not clip(ratio) * A alone")


def check_loss_clip_range_follows_clip_eps(mod):
    # ratios 1.15 and 0.85: clipped (zero gradient) with clip_eps = 0.1, not with 0.2 or 0.3
    logps = torch.zeros(2, 2, dtype=f64, requires_grad=True)
    old = -torch.tensor([[math.log(1.15), math.log(0.85)]] * 2, dtype=f64)
    mask = torch.ones(2, 2, dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0], dtype=f64)
    for eps, clipped in [(0.1, True), (0.2, False), (0.3, False)]:
        (grad,) = torch.autograd.grad(_loss(mod, logps, old, adv, mask, clip_eps=eps), logps)
        expected = torch.tensor([[0.0 if clipped else -1.15 / 4, -0.85 / 4],
                                 [1.15 / 4, 0.0 if clipped else 0.85 / 4]], dtype=f64)
        assert torch.allclose(grad, expected, atol=1e-12), (
            f"clip_eps={eps}: gradient {_fmt(grad)}, expected {_fmt(expected)}; clip the ratio to "
            "(1 - clip_eps, 1 + clip_eps) with the clip_eps argument")


@property_check
def check_loss_treats_old_as_constant(mod):
    logps, _, adv, mask = _batch(3, 4, seed=6)
    logps.requires_grad_(True)
    (grad,) = torch.autograd.grad(_loss(mod, logps, logps, adv, mask, loss_agg="dapo"), logps)
    assert grad.abs().sum() > 0, (
        "passing old_logps=logps (not detached) gave a zero gradient: pi_old is the sampling "
        "policy, a constant; use old_logps.detach() in the ratio")


# --- kl_k3 ---------------------------------------------------------------------------------

def check_k3_hand_built(mod):
    logps = torch.log(torch.tensor([[0.5, 0.25, 0.1]], dtype=f64))
    ref = torch.log(torch.tensor([[0.25, 0.25, 0.4]], dtype=f64))
    got = mod.kl_k3(logps, ref)
    expected = torch.tensor([[0.5 - 1 + math.log(2), 0.0, 4 - 1 - math.log(4)]], dtype=f64)
    assert isinstance(got, torch.Tensor) and got.shape == logps.shape, (
        "kl_k3 returns one estimate per token, shape (B, T); do not reduce")
    assert torch.allclose(got, expected, atol=1e-9), (
        f"k3 = exp(ref - logp) - 1 - (ref - logp): expected {_fmt(expected)}, got {_fmt(got)}; "
        "check the sign of the log-ratio (ref_logps - logps)")


def check_k3_random_and_nonnegative(mod):
    g = torch.Generator().manual_seed(7)
    logps = -5 * torch.rand(4, 9, generator=g, dtype=f64)
    ref = -5 * torch.rand(4, 9, generator=g, dtype=f64)
    got = mod.kl_k3(logps, ref)
    expected = reference("grpo.kl_k3", logps, ref)
    assert torch.allclose(got, expected, atol=1e-9), (
        f"k3 differs from the reference; max error {(got - expected).abs().max().item():.3g}")
    assert (got >= 0).all(), "k3 must never be negative"


def check_k3_gradient(mod):
    logps = torch.tensor([[-1.0, -2.0]], dtype=f64, requires_grad=True)
    ref = torch.tensor([[-1.5, -1.0]], dtype=f64)
    (grad,) = torch.autograd.grad(mod.kl_k3(logps, ref).sum(), logps)
    expected = 1 - torch.exp(ref - logps.detach())  # d k3 / d logp = 1 - pi_ref / pi_theta
    assert torch.allclose(grad, expected, atol=1e-12), (
        f"d k3 / d logps should be 1 - exp(ref - logps) = {_fmt(expected)}, got {_fmt(grad)}")


# --- prob_uniform_group --------------------------------------------------------------------

def check_prob_uniform_values(mod):
    for p, G, expected in [(0.5, 2, 0.5), (0.5, 4, 0.125), (0.0, 5, 1.0), (1.0, 3, 1.0),
                           (0.2, 3, 0.008 + 0.512)]:
        got = mod.prob_uniform_group(p, G)
        assert abs(float(got) - expected) < 1e-12, (
            f"p={p}, G={G}: P(all agree) = p^G + (1-p)^G = {expected}, got {got}")


def check_prob_uniform_enumeration(mod):
    # sum the probability of every outcome in {0, 1}^G whose entries all agree
    for p, G in [(0.3, 4), (0.9, 6), (0.05, 8)]:
        total = 0.0
        for k in range(2**G):
            bits = [(k >> j) & 1 for j in range(G)]
            if len(set(bits)) == 1:
                total += math.prod(p if b else 1 - p for b in bits)
        got = float(mod.prob_uniform_group(p, G))
        assert abs(got - total) < 1e-12, f"p={p}, G={G}: expected {total:.6f}, got {got:.6f}"


def check_prob_uniform_tensor(mod):
    p = torch.linspace(0, 1, 11, dtype=f64)
    got = mod.prob_uniform_group(p, 8)
    assert isinstance(got, torch.Tensor) and got.shape == p.shape, (
        "a tensor of probabilities must give a tensor of the same shape")
    assert torch.allclose(got, reference("grpo.prob_uniform_group", p, 8), atol=1e-12), "wrong on a tensor of p"


# --- article exercise 2: zero gradient for uniform groups ---------------------------------

def _student_grad(mod, rewards, G, agg, seed):
    adv = _adv(mod, rewards, G).to(f64)
    B, T = rewards.numel(), 5
    g = torch.Generator().manual_seed(seed)
    logps = (-torch.rand(B, T, generator=g, dtype=f64)).requires_grad_(True)
    old = logps.detach() + 0.1 * torch.randn(B, T, generator=g, dtype=f64)  # ratios != 1
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[::2, 3:] = False
    loss = _loss(mod, logps, old, adv, mask, loss_agg=agg)
    (grad,) = torch.autograd.grad(loss, logps)
    return loss, grad


@property_check
def check_zero_gradient_uniform_groups(mod):
    G = 4
    rewards = torch.tensor([1.0] * G + [0.0] * G + [0.5] * G, dtype=f64)
    for agg in ("grpo", "dapo"):
        loss, grad = _student_grad(mod, rewards, G, agg, seed=8)
        assert loss.item() == 0 and (grad == 0).all(), (
            f'loss_agg="{agg}": a batch of uniform groups (all correct, all wrong, all 0.5) '
            f"must give loss 0 and exactly zero gradient; got loss {loss.item():.3g} and "
            f"max |grad| {grad.abs().max().item():.3g}")


def check_zero_only_where_uniform(mod):
    G = 4
    rewards = torch.tensor([1.0] * G + [0.0, 1.0, 0.0, 0.0] + [0.0] * G + [1.0, 1.0, 0.0, 1.0],
                           dtype=f64)
    uniform = torch.tensor([True, False, True, False]).repeat_interleave(G)  # (B,)
    for agg in ("grpo", "dapo"):
        _, grad = _student_grad(mod, rewards, G, agg, seed=9)
        assert (grad[uniform] == 0).all(), (
            f'loss_agg="{agg}": completions of uniform groups must get exactly zero gradient')
        assert (grad[~uniform].abs().sum(1) > 0).all(), (
            f'loss_agg="{agg}": every completion of a mixed group must get a gradient')


EXERCISES = {
    "group_advantages": [check_advantages_hand_built, check_advantages_per_group,
                         check_advantages_random, check_advantages_uniform_group],
    "grpo_clipped_loss": [check_loss_matches_reference, check_loss_empty_completion, check_loss_ignores_padding,
                          check_loss_gradient_at_ratio_one, check_loss_clipping,
                          check_loss_clip_range_follows_clip_eps, check_loss_treats_old_as_constant],
    "kl_k3": [check_k3_hand_built, check_k3_random_and_nonnegative, check_k3_gradient],
    "prob_uniform_group": [check_prob_uniform_values, check_prob_uniform_enumeration,
                           check_prob_uniform_tensor],
    "grpo_zero_gradient": [check_zero_gradient_uniform_groups, check_zero_only_where_uniform],
}
