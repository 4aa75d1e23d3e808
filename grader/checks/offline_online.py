"""Graded checks for solutions/offline_online.py (article exercise 3): the DPO logit gradient,
the exact on-policy gradient and the gradient mass outside the data.

Each check receives the student's module and raises AssertionError with a hint when a
function disagrees with autograd, with a closed form or with solutions/offline_online.py.
"""
import torch
import torch.nn.functional as F

from grader.checks import assert_close, assert_tensor, get_function, property_check
from grader.reference import expected as reference


def _random_case(N: int, M: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(N, generator=gen, dtype=torch.float64)  # (N,)
    ref_logits = torch.randn(N, generator=gen, dtype=torch.float64)  # (N,)
    pairs = []
    while len(pairs) < M:
        w, l = torch.randint(0, N, (2,), generator=gen).tolist()
        if w != l:
            pairs.append((w, l))
    return logits, ref_logits, pairs


def _autograd_dpo(logits, pairs, beta, ref_logits):
    z = logits.clone().requires_grad_(True)  # (N,)
    lp, lr = torch.log_softmax(z, 0), torch.log_softmax(ref_logits, 0)  # (N,) each
    w = torch.tensor([p[0] for p in pairs])  # (M,)
    l = torch.tensor([p[1] for p in pairs])  # (M,)
    h = beta * ((lp[w] - lr[w]) - (lp[l] - lr[l]))  # (M,)
    (grad,) = torch.autograd.grad(-F.logsigmoid(h).mean(), z)
    return grad


# ----------------------------------------------------------------------------- dpo_logit_gradient


def check_dpo_hand_built(mod) -> None:
    fn = get_function(mod, "dpo_logit_gradient")
    logits = torch.zeros(3, dtype=torch.float64)  # (3,) policy = reference: h = 0, sigmoid = 1/2
    got = assert_tensor(fn(logits, [(0, 1)], 0.5, logits.clone()), "dpo_logit_gradient(...)", shape=(3,),
                        floating=True, finite=True)
    # -(beta) * sigmoid(0) * (e_0 - e_1) = [-0.25, 0.25, 0]
    assert_close(got, [-0.25, 0.25, 0.0], "one pair (0 over 1), policy = reference, beta = 0.5 "
                 "(hint: -beta * sigmoid(-h) * (e_w - e_l) with h = 0)")


def check_dpo_matches_autograd(mod) -> None:
    fn = get_function(mod, "dpo_logit_gradient")
    for N, M, beta, seed in [(4, 1, 0.1, 0), (6, 3, 0.5, 1), (9, 7, 2.0, 2)]:
        logits, ref_logits, pairs = _random_case(N, M, seed)
        got = assert_tensor(fn(logits.clone(), pairs, beta, ref_logits.clone()), "dpo_logit_gradient(...)",
                            shape=(N,), floating=True, finite=True)
        assert_close(got, _autograd_dpo(logits, pairs, beta, ref_logits),
                     f"gradient of the MEAN DPO loss over {M} random pairs (N={N}, beta={beta}) vs autograd",
                     atol=1e-8)


def check_dpo_zero_outside_pairs(mod) -> None:
    fn = get_function(mod, "dpo_logit_gradient")
    logits, ref_logits, _ = _random_case(8, 0, 3)
    pairs = [(0, 2), (5, 2), (0, 7)]
    got = fn(logits, pairs, 0.3, ref_logits)
    for i in (1, 3, 4, 6):
        assert float(got[i]) == 0.0, (f"response {i} is in no pair, so its logit must get exactly zero "
                                      f"gradient; got {float(got[i]):.3g}")
    assert abs(float(got.sum())) < 1e-12, ("each pair adds +g to the rejected and -g to the chosen logit, "
                                           f"so the gradient must sum to 0; got {float(got.sum()):.3g}")
    assert_close(got, reference("offline_online.dpo_logit_gradient", logits, pairs, 0.3, ref_logits),
                 "gradient vs the reference", atol=1e-10)


@property_check
def check_dpo_errors(mod) -> None:
    fn = get_function(mod, "dpo_logit_gradient")
    z = torch.zeros(3)
    for args, why in [((z, [(0, 1)], 0.0, z), "beta = 0"), ((z, [(0, 1)], -1.0, z), "beta < 0"),
                      ((z, [], 0.1, z), "an empty list of pairs"), ((z, [(0, 0)], 0.1, z), "a pair (0, 0)"),
                      ((z, [(0, 3)], 0.1, z), "an index out of range"),
                      ((z, [(0, 1)], 0.1, torch.zeros(4)), "ref_logits of another shape")]:
        try:
            fn(*args)
        except ValueError:
            continue
        except Exception as e:  # noqa: BLE001 - the wrong kind of error
            raise AssertionError(f"dpo_logit_gradient must raise ValueError for {why}, "
                                 f"got {type(e).__name__}: {e}") from e
        raise AssertionError(f"dpo_logit_gradient must raise ValueError for {why}")


# ----------------------------------------------------------------------------- policy_gradient_logits


def check_pg_matches_autograd(mod) -> None:
    fn = get_function(mod, "policy_gradient_logits")
    for N, seed in [(2, 0), (5, 1), (10, 2)]:
        gen = torch.Generator().manual_seed(seed)
        logits = torch.randn(N, generator=gen, dtype=torch.float64)  # (N,)
        rewards = (torch.rand(N, generator=gen) < 0.5).double()  # (N,)
        z = logits.clone().requires_grad_(True)
        (expected,) = torch.autograd.grad(-(torch.softmax(z, 0) * rewards).sum(), z)
        got = assert_tensor(fn(logits.clone(), rewards), "policy_gradient_logits(...)", shape=(N,),
                            floating=True, finite=True)
        assert_close(got, expected, f"exact gradient of -E_pi[r] (N={N}) vs autograd", atol=1e-8)
        assert_close(got, reference("offline_online.policy_gradient_logits", logits, rewards), "vs the reference",
                     atol=1e-8)


def check_pg_closed_form(mod) -> None:
    fn = get_function(mod, "policy_gradient_logits")
    logits = torch.log(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))  # (3,)
    rewards = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)  # (3,) E_pi[r] = 0.5
    # -pi * (r - E r) = -[0.5 * 0.5, 0.25 * -0.5, 0.25 * -0.5]
    assert_close(fn(logits, rewards), [-0.25, 0.125, 0.125],
                 "pi = [1/2, 1/4, 1/4], r = [1, 0, 0] (hint: -pi * (r - E_pi[r]))")
    shifted = fn(logits, rewards + 3.0)
    assert_close(shifted, [-0.25, 0.125, 0.125], "adding a constant to every reward must not change the gradient")
    uniform = fn(logits, torch.full((3,), 0.7, dtype=torch.float64))
    assert_close(uniform, [0.0, 0.0, 0.0], "equal rewards everywhere must give a zero gradient")


# ----------------------------------------------------------------------------- gradient_mass_outside


def check_mass_outside(mod) -> None:
    fn = get_function(mod, "gradient_mass_outside")
    grad = torch.tensor([0.5, -0.25, 0.0, -1.0, 2.0])  # (5,)
    for support, expected in [({0, 1}, 3.0), ({3, 4}, 0.75), (set(), 3.75), ({0, 1, 2, 3, 4}, 0.0), ([4], 1.75)]:
        got = fn(grad, support)
        assert isinstance(got, float), f"gradient_mass_outside must return a Python float, got {type(got).__name__}"
        assert abs(got - expected) < 1e-9, (f"support {sorted(support)}: expected {expected} (sum of |grad| "
                                             f"outside the support), got {got}")


def check_offline_vs_online(mod) -> None:
    dpo, pg, mass = (get_function(mod, n) for n in ("dpo_logit_gradient", "policy_gradient_logits",
                                                     "gradient_mass_outside"))
    logits = torch.log(torch.tensor([0.2, 0.1, 0.2, 0.15, 0.2, 0.15], dtype=torch.float64))  # (6,)
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)  # (6,)
    pairs = [(0, 2), (0, 3)]
    off = mass(dpo(logits, pairs, 0.1, logits.clone()), {0, 2, 3})
    on = mass(pg(logits, rewards), {0, 2, 3})
    assert off == 0.0, f"the DPO gradient must put no mass outside the pairs' responses, got {off}"
    # pi * |r - E r| on responses 1, 4, 5: 0.1 * 0.7 + 0.2 * 0.3 + 0.15 * 0.3
    assert abs(on - 0.175) < 1e-9, f"the on-policy gradient's mass outside {{0, 2, 3}} should be 0.175, got {on}"


EXERCISES = {
    "dpo_logit_gradient": [check_dpo_hand_built, check_dpo_matches_autograd, check_dpo_zero_outside_pairs,
                           check_dpo_errors],
    "policy_gradient_logits": [check_pg_matches_autograd, check_pg_closed_form],
    "gradient_mass_outside": [check_mass_outside, check_offline_vs_online],
}
