"""Hidden checks for exercises/dpo.py: a fresh batch and beta."""
import torch

from grader.checks.dpo import _batch, _call_loss
from grader.reference import expected as reference


def check_hidden_loss(mod):
    pc, pr, rc, rr = _batch(9, 104)
    want, w_w, w_l = reference("dpo.dpo_loss", pc, pr, rc, rr, 0.7)  # before the student's call
    losses, r_w, r_l = _call_loss(mod, pc, pr, rc, rr, 0.7)
    assert torch.allclose(losses, want, atol=1e-9) and torch.allclose(r_w, w_w) and torch.allclose(r_l, w_l), (
        "losses or implicit rewards differ from the reference (beta=0.7)")


EXERCISES = {"dpo_loss": [check_hidden_loss]}
