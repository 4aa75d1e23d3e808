"""Checks for exercises/clinic.py, the bug clinic: each function ships with one silent bug.

Every check here fails on the shipped (buggy) version, so the untouched file scores 0, and
passes once the bug is fixed. References: solutions/clinic.py (grader.reference.expected),
float64 closed forms and properties the docstrings state.
"""
import math

import torch

from grader.checks import assert_close, assert_tensor, get_function
from grader.reference import expected as reference

f64 = torch.float64


def _logps(B: int, T: int, seed: int, spread: float = 0.5):
    g = torch.Generator().manual_seed(seed)
    logps = -3 * torch.rand(B, T, generator=g, dtype=f64)  # (B, T)
    ref = logps + spread * torch.randn(B, T, generator=g, dtype=f64)  # (B, T)
    mask = torch.arange(T)[None, :] < torch.randint(1, T + 1, (B,), generator=g)[:, None]  # (B, T)
    return logps, ref, mask


# --- kl_penalized_rewards ------------------------------------------------------------------

def check_kl_penalty_values(mod):
    fn = get_function(mod, "kl_penalized_rewards")
    for seed, beta in [(0, 0.1), (1, 0.05)]:
        logps, ref, mask = _logps(4, 6, seed)
        rewards = torch.tensor([1.0, 0.0, 1.0, 0.0], dtype=f64)
        got = assert_tensor(fn(rewards, logps, ref, mask, beta), "kl_penalized_rewards(...)", shape=(4,))
        assert_close(got, reference("clinic.kl_penalized_rewards", rewards, logps, ref, mask, beta),
                     f"penalised rewards (beta={beta})", atol=1e-9)


def check_kl_penalty_punishes_drift(mod):
    fn = get_function(mod, "kl_penalized_rewards")
    ref = torch.log(torch.full((1, 3), 0.25, dtype=f64))  # (1, 3)
    drifted = torch.log(torch.full((1, 3), 0.9, dtype=f64))  # the policy now samples these far more often
    mask = torch.ones(1, 3, dtype=torch.bool)
    got = fn(torch.ones(1, dtype=f64), drifted, ref, mask, 0.1)
    want = 1 - 0.1 * 3 * math.log(0.9 / 0.25)
    assert_close(got, [want], "a policy far more likely than the reference on its own samples must be "
                 "penalised: KL = sum of log pi_theta - log pi_ref > 0, reward r - beta * KL", atol=1e-9)


# --- group_mean_baseline -------------------------------------------------------------------

def check_group_mean_hand_built(mod):
    fn = get_function(mod, "group_mean_baseline")
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0], dtype=f64)  # groups (1,1) (0,0) (1,0)
    assert_close(fn(rewards, 2), [1.0, 1.0, 0.0, 0.0, 0.5, 0.5],
                 "3 prompts x 2 completions, prompt-major: rewards[b*G:(b+1)*G] is one group", atol=1e-12)


def check_group_mean_random(mod):
    fn = get_function(mod, "group_mean_baseline")
    g = torch.Generator().manual_seed(2)
    for B, G in [(3, 4), (5, 2), (2, 8)]:
        rewards = torch.rand(B * G, generator=g, dtype=f64)
        assert_close(fn(rewards, G), reference("clinic.group_mean_baseline", rewards, G),
                     f"group means of random rewards (B={B}, G={G})", atol=1e-12)


# --- stable_k3 -----------------------------------------------------------------------------

def _k3_exact(logps, ref):
    """k3 in float64. exp(x) - 1 cancels there too, but its absolute error stays near 1e-16,
    far inside the tolerance of the checks below (1% of the value, plus 1e-9)."""
    x = (ref.double() - logps.double())  # (B, T)
    return torch.exp(x) - 1 - x  # (B, T)


def check_k3_small_ratios_float32(mod):
    fn = get_function(mod, "stable_k3")
    g = torch.Generator().manual_seed(3)
    logps = (-2 * torch.rand(4, 16, generator=g)).float()  # (4, 16) float32
    for scale in (1e-3, 1e-4):
        ref = (logps.double() + scale * torch.randn(4, 16, generator=g, dtype=f64)).float()
        got = assert_tensor(fn(logps, ref), "stable_k3(float32 ...)", shape=(4, 16), dtype=torch.float32)
        truth = _k3_exact(logps, ref)  # (4, 16) float64; float32 cannot resolve below ~1e-9 here
        err = ((got.double() - truth).abs() - 1e-2 * truth).max().item()
        assert err < 1e-9, (f"log-ratios of size {scale:g} in float32: error {err:.3g} beyond 1% of the "
                            "float64 value (exp(x) - 1 cancels catastrophically; torch.expm1 does not)")


def check_k3_never_negative_float32(mod):
    fn = get_function(mod, "stable_k3")
    g = torch.Generator().manual_seed(4)
    logps = (-3 * torch.rand(8, 64, generator=g)).float()  # (8, 64)
    ref = (logps.double() + 1e-4 * torch.randn(8, 64, generator=g, dtype=f64)).float()
    got = fn(logps, ref)
    assert (got >= 0).all(), (f"k3 must never be negative, got min {got.min().item():.3g} for log-ratios "
                              "near 1e-4 in float32 (rounding of exp(x) - 1)")
    assert_close(got, reference("clinic.stable_k3", logps, ref), "k3 for log-ratios near 1e-4 in float32",
                 atol=1e-12, rtol=1e-3)


# --- whiten_kept -----------------------------------------------------------------------------

def check_whiten_hand_built(mod):
    fn = get_function(mod, "whiten_kept")
    adv = torch.tensor([1.0, 3.0, 100.0, 5.0, -50.0], dtype=f64)
    keep = torch.tensor([True, True, False, True, False])
    # kept values 1, 3, 5: mean 3, unbiased std 2
    assert_close(fn(adv, keep), [-1.0, 0.0, 0.0, 1.0, 0.0],
                 "kept advantages (1, 3, 5) whitened by their own mean 3 and std 2, the filtered ones 0",
                 atol=1e-6)


def check_whiten_random(mod):
    fn = get_function(mod, "whiten_kept")
    g = torch.Generator().manual_seed(5)
    adv = 3 * torch.randn(20, generator=g, dtype=f64) + 1
    keep = torch.rand(20, generator=g) < 0.6
    got = fn(adv, keep)
    assert_close(got, reference("clinic.whiten_kept", adv, keep), "whitened advantages of a random batch", atol=1e-9)
    assert abs(got[keep].mean().item()) < 1e-9, "the kept advantages must have mean 0 after whitening"


# --- micro_batches_per_step ------------------------------------------------------------------

def check_micro_batches_values(mod):
    fn = get_function(mod, "micro_batches_per_step")
    for prompts, G, micro, want in [(8, 4, 8, 4), (16, 8, 32, 4), (3, 4, 6, 2), (64, 16, 128, 8)]:
        got = fn(prompts, G, micro)
        assert isinstance(got, int) and got == want, (
            f"{prompts} prompts x {G} completions in micro-batches of {micro} completions: {want} "
            f"micro-batches, got {got!r}")


def check_micro_batches_divisibility(mod):
    fn = get_function(mod, "micro_batches_per_step")
    for prompts, G, micro, want in [(3, 4, 6, 2), (5, 2, 10, 1)]:  # the completions split, the prompts do not
        try:
            got = fn(prompts, G, micro)
        except ValueError as exc:
            raise AssertionError(f"{prompts} prompts x {G} = {prompts * G} completions split into {want} "
                                 f"micro-batches of {micro}, but it raised ValueError: {exc}") from None
        assert got == want, f"({prompts}, {G}, {micro}): expected {want}, got {got!r}"
    for prompts, G, micro in [(4, 3, 8), (5, 2, 4)]:  # 12 and 10 completions do not split evenly
        try:
            got = fn(prompts, G, micro)
        except ValueError:
            continue
        raise AssertionError(f"{prompts * G} completions do not split into micro-batches of {micro}: "
                             f"expected ValueError, got {got!r}")


# --- length_unbiased_loss ---------------------------------------------------------------------

def check_length_loss_values(mod):
    fn = get_function(mod, "length_unbiased_loss")
    logps, _, mask = _logps(5, 7, seed=6)
    per_token = -logps  # (5, 7)
    got = fn(per_token, mask, 10)
    assert_close(got, reference("clinic.length_unbiased_loss", per_token, mask, 10),
                 "masked token losses summed and divided by B * max_tokens", atol=1e-12)


def check_length_loss_same_gradient_per_token(mod):
    fn = get_function(mod, "length_unbiased_loss")
    per_token = torch.ones(2, 8, dtype=f64, requires_grad=True)  # (2, 8) a short and a long wrong answer
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :2], mask[1, :8] = True, True
    (grad,) = torch.autograd.grad(fn(per_token, mask, 8), per_token)
    assert_close(grad[mask], torch.full((10,), 1 / 16, dtype=f64),
                 "every counted token gets the same gradient 1 / (B * max_tokens), whatever its answer's "
                 "length (dividing by each answer's length pushes long answers down less)", atol=1e-12)


EXERCISES = {
    "kl_penalized_rewards": [check_kl_penalty_values, check_kl_penalty_punishes_drift],
    "group_mean_baseline": [check_group_mean_hand_built, check_group_mean_random],
    "stable_k3": [check_k3_small_ratios_float32, check_k3_never_negative_float32],
    "whiten_kept": [check_whiten_hand_built, check_whiten_random],
    "micro_batches_per_step": [check_micro_batches_values, check_micro_batches_divisibility],
    "length_unbiased_loss": [check_length_loss_values, check_length_loss_same_gradient_per_token],
}
