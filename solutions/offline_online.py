"""Exercise 3: why an offline method cannot fix a failure mode its data does not cover.

Take a policy over N possible responses to one prompt, a softmax of a logit vector z (N,):
pi = softmax(z). Two facts carry the whole argument:

    grad_z log pi(y) = e_y - pi                                    (e_y: one-hot of y)

so the DPO loss of one pair (w chosen, l rejected, reference logits zref),

    l = -log sigmoid(h),   h = beta * [(log pi(w) - log pi(l)) - (log pi_ref(w) - log pi_ref(l))],

depends on z only through z_w - z_l (the normaliser cancels), and the on-policy objective
J = E_{y ~ pi}[r(y)] has gradient sum_y pi(y) r(y) (e_y - pi).

Write the three functions below with plain torch (no autograd needed, but you may use it to
check yourself). Your written answer goes in solutions/exercise3_offline_vs_online.md; the
reference implementation is refimpl/experiments/labs/offline_online.py (do not import it here).
"""
import torch


def dpo_logit_gradient(logits: torch.Tensor, pairs, beta: float, ref_logits: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean DPO loss over ``pairs`` with respect to the policy logits.

    Args:
        logits: (N,) policy logits z; pi = softmax(z).
        pairs: a list of M pairs (w, l) of response indices, w chosen and l rejected.
        beta: the DPO temperature, > 0.
        ref_logits: (N,) logits of the frozen reference policy.

    Returns:
        (N,) tensor: d/dz of (1/M) sum_k -log sigmoid(h_k), which equals
        -(beta / M) * sum_k sigmoid(-h_k) * (e_{w_k} - e_{l_k}).
        (Gradient descent moves z along minus this: up for chosen, down for rejected.)

    Raises:
        ValueError: if beta <= 0, if pairs is empty, if an index is out of range or w == l,
            or if logits and ref_logits differ in shape.
    """
    # BEGIN SOLUTION
    N = logits.numel()
    if ref_logits.shape != logits.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and ref_logits {tuple(ref_logits.shape)} differ")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if len(pairs) == 0:
        raise ValueError("pairs is empty")
    log_pi = torch.log_softmax(logits, dim=0)                       # (N,)
    log_ref = torch.log_softmax(ref_logits, dim=0)                  # (N,)
    grad = torch.zeros_like(logits)                                 # (N,)
    for w, l in pairs:
        if not (0 <= w < N and 0 <= l < N) or w == l:
            raise ValueError(f"bad pair ({w}, {l})")
        h = beta * ((log_pi[w] - log_ref[w]) - (log_pi[l] - log_ref[l]))
        weight = beta * torch.sigmoid(-h) / len(pairs)
        grad[w] -= weight
        grad[l] += weight
    return grad
    # END SOLUTION


def policy_gradient_logits(logits: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
    """Exact gradient of the on-policy loss -E_{y ~ pi}[r(y)] with respect to the logits.

    Args:
        logits: (N,) policy logits z; pi = softmax(z).
        rewards: (N,) reward r(y) of every response.

    Returns:
        (N,) tensor: -sum_y pi(y) r(y) (e_y - pi), which simplifies to -pi * (r - E_pi[r]).
        (Subtracting any constant baseline b from r changes nothing.)
    """
    # BEGIN SOLUTION
    pi = torch.softmax(logits, dim=0)                               # (N,)
    r = rewards.to(pi.dtype)                                        # (N,)
    return -pi * (r - (pi * r).sum())
    # END SOLUTION


def gradient_mass_outside(grad: torch.Tensor, support) -> float:
    """How much of a logit gradient falls on responses outside ``support``.

    Args:
        grad: (N,) a gradient on the logits.
        support: a set (or list) of response indices, e.g. every index that appears in a pair.

    Returns:
        A Python float: sum of |grad_i| over the indices i in 0..N-1 that are NOT in support.
        For dpo_logit_gradient and the indices of its pairs this is exactly 0.
    """
    # BEGIN SOLUTION
    inside = set(int(i) for i in support)
    return float(sum(abs(grad[i].item()) for i in range(grad.numel()) if i not in inside))
    # END SOLUTION
