"""Graded checks for solutions/reinforce.py: `reinforce_loss` and `rloo_baseline`.

Each check receives the student's module and raises AssertionError with a hint when the
function disagrees with solutions/reinforce.py or with a closed form.
"""
import torch

from grader.checks import property_check
from grader.reference import expected as reference


def _assert_close(got, expected, what: str, atol: float = 1e-6) -> None:
    got = torch.as_tensor(got, dtype=torch.float64)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    assert got.shape == expected.shape, f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    assert torch.allclose(got, expected, atol=atol, rtol=1e-5), (
        f"{what}: expected {expected.tolist()}, got {got.tolist()}"
    )


def _random_batch(B: int, G: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    seq_logps = -5 * torch.rand(B * G, generator=gen)  # (B*G,)
    rewards = (torch.rand(B * G, generator=gen) < 0.4).float()  # (B*G,)
    baselines = torch.rand(B * G, generator=gen)  # (B*G,)
    return seq_logps, rewards, baselines


# ---------------------------------------------------------------- reinforce_loss


def check_loss_hand_built(mod) -> None:
    seq_logps = torch.tensor([-1.0, -2.0, -0.5, -3.0])  # (4,)
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0])  # (4,)
    baselines = torch.full((4,), 0.5)  # (4,)
    # -mean((r - b) * logp) = -(0.5*-1 + -0.5*-2 + 0.5*-0.5 + -0.5*-3) / 4 = -1.75 / 4
    loss = mod.reinforce_loss(seq_logps, rewards, baselines)
    assert isinstance(loss, torch.Tensor), "reinforce_loss must return a tensor (the scalar loss), not a tuple or float"
    assert loss.dim() == 0, f"the loss must be a scalar (0-dim) tensor, got shape {tuple(loss.shape)}"
    _assert_close(loss, -0.4375, "loss on a hand-built batch (hint: the MEAN over samples of -(r - b) * logp)")


def check_loss_matches_reference(mod) -> None:
    for B, G, seed in [(1, 2, 0), (3, 4, 1), (5, 8, 2)]:
        seq_logps, rewards, baselines = _random_batch(B, G, seed)
        expected = reference("reinforce.reinforce_loss", seq_logps, rewards, baselines)
        _assert_close(mod.reinforce_loss(seq_logps, rewards, baselines), expected,
                      f"loss on a random batch (B={B}, G={G})")


def check_loss_gradient(mod) -> None:
    seq_logps, rewards, baselines = _random_batch(3, 4, 3)
    seq_logps.requires_grad_(True)
    loss = mod.reinforce_loss(seq_logps, rewards, baselines)
    assert loss.requires_grad, "the loss must stay attached to seq_logps (do not detach the log-probs)"
    (grad,) = torch.autograd.grad(loss, seq_logps)
    expected = -(rewards - baselines) / rewards.numel()  # (B*G,)
    _assert_close(grad, expected, "d loss / d seq_logps (should be -(r - b) / N for each sample)")


@property_check
def check_loss_advantage_detached(mod) -> None:
    seq_logps, rewards, baselines = _random_batch(2, 4, 4)
    seq_logps.requires_grad_(True)
    rewards.requires_grad_(True)
    baselines.requires_grad_(True)
    mod.reinforce_loss(seq_logps, rewards, baselines).backward()
    for name, t in (("rewards", rewards), ("baselines", baselines)):
        assert t.grad is None or torch.all(t.grad == 0), (
            f"a gradient reached the {name}: detach the advantage (r - b) before multiplying by seq_logps"
        )
    assert seq_logps.grad is not None, "no gradient reached seq_logps"


# ---------------------------------------------------------------- rloo_baseline


def check_rloo_hand_built(mod) -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])  # (2*4,)
    expected = [1 / 3, 2 / 3, 2 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 1.0]
    _assert_close(mod.rloo_baseline(rewards, 4), expected,
                  "RLOO baseline of two hand-built groups of 4 (each sample: mean of the OTHER three)")


def check_rloo_groups_are_consecutive(mod) -> None:
    rewards = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # groups (1,1) (0,0) (1,0)
    _assert_close(mod.rloo_baseline(rewards, 2), [1.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                  "RLOO with G=2: rows b*G .. b*G+G-1 form one group (reshape to (B, G), not (G, B))")


def check_rloo_matches_reference(mod) -> None:
    gen = torch.Generator().manual_seed(5)
    for B, G in [(1, 2), (4, 3), (3, 8)]:
        rewards = torch.rand(B * G, generator=gen)  # (B*G,)
        _assert_close(mod.rloo_baseline(rewards, G), reference("reinforce.rloo_baseline", rewards, G),
                      f"RLOO baseline of random rewards (B={B}, G={G})")


def check_rloo_excludes_self(mod) -> None:
    G = 4
    rewards = torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0])  # (2*4,)
    before = mod.rloo_baseline(rewards.clone(), G)
    changed = rewards.clone()
    changed[1] += 3.0
    after = mod.rloo_baseline(changed, G)
    _assert_close(after[1], before[1], "b_1 after changing r_1: a sample's own reward must not enter its baseline")
    for j in (0, 2, 3):
        _assert_close(after[j], before[j] + 3.0 / (G - 1),
                      f"b_{j} after raising r_1 by 3 (should rise by 3 / (G - 1))")
    _assert_close(after[G:], before[G:], "baselines of the other prompt after changing r_1 (groups are independent)")


@property_check
def check_rloo_leaves_input_alone(mod) -> None:
    rewards = torch.tensor([1.0, 0.0, 1.0, 1.0])  # (4,)
    copy = rewards.clone()
    mod.rloo_baseline(rewards, 2)
    assert torch.equal(rewards, copy), "rloo_baseline modified its input in place"


@property_check
def check_rloo_errors(mod) -> None:
    for rewards, G, why in [(torch.ones(4), 1, "group_size=1 (no other sample to average)"),
                            (torch.ones(5), 2, "5 rewards with group_size=2 (not a multiple)")]:
        try:
            mod.rloo_baseline(rewards, G)
        except ValueError:
            continue
        except Exception as e:  # noqa: BLE001 - any other error is the wrong kind
            raise AssertionError(f"rloo_baseline must raise ValueError for {why}, "
                                 f"got {type(e).__name__}: {e}") from e
        raise AssertionError(f"rloo_baseline must raise ValueError for {why}")


EXERCISES = {
    "reinforce_loss": [check_loss_hand_built, check_loss_matches_reference, check_loss_gradient,
                       check_loss_advantage_detached],
    "rloo_baseline": [check_rloo_hand_built, check_rloo_groups_are_consecutive, check_rloo_matches_reference,
                      check_rloo_excludes_self, check_rloo_leaves_input_alone, check_rloo_errors],
}
