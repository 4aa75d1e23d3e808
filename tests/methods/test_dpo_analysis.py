"""The worked example of notebook 01 (``pair_walkthrough``): hand-computed values, a tie,
and the gradient rows against autograd of the loss."""
import math

import pytest
import torch

from refimpl.methods.dpo import dpo_loss
from refimpl.methods.dpo_analysis import format_walkthrough, pair_walkthrough

f64 = torch.float64


def _pair(*values):
    return torch.tensor(values, dtype=f64)


def _rows(beta=0.1):
    """Two pairs: a tie (pi_theta = pi_ref) and one the policy has ordered right."""
    return {name: values for name, _, values in pair_walkthrough(
        _pair(-2.3, -1.2), _pair(-1.6, -3.6), _pair(-2.3, -2.3), _pair(-1.6, -1.6), beta)}


def test_a_tie_costs_log_2_and_gets_half_the_push():
    rows = _rows(beta=0.1)
    assert rows["margin"][0].item() == 0.0
    assert rows["loss"][0].item() == pytest.approx(math.log(2), abs=1e-15)
    assert rows["gradient weight w"][0].item() == 0.5
    assert rows["dL / d log pi_theta(y_w)"][0].item() == pytest.approx(-0.05, abs=1e-15)


def test_values_match_the_hand_computation():
    rows = _rows(beta=0.1)
    r_w, r_l = 0.1 * (-1.2 + 2.3), 0.1 * (-3.6 + 1.6)     # 0.11 and -0.20
    margin = r_w - r_l
    assert rows["implicit reward r_w"][1].item() == pytest.approx(r_w, abs=1e-12)
    assert rows["implicit reward r_l"][1].item() == pytest.approx(r_l, abs=1e-12)
    assert rows["margin"][1].item() == pytest.approx(0.31, abs=1e-12)
    assert rows["loss"][1].item() == pytest.approx(math.log1p(math.exp(-margin)), abs=1e-12)
    w = 1 / (1 + math.exp(margin))
    assert rows["gradient weight w"][1].item() == pytest.approx(w, abs=1e-12)
    assert rows["dL / d log pi_theta(y_l)"][1].item() == pytest.approx(0.1 * w, abs=1e-12)


def test_gradient_rows_equal_autograd():
    pc, pr = _pair(-2.3, -1.2, -7.0).requires_grad_(), _pair(-1.6, -3.6, -0.5).requires_grad_()
    rc, rr = _pair(-2.3, -2.3, -4.0), _pair(-1.6, -1.6, -2.0)
    losses, _ = dpo_loss(pc, pr, rc, rr, beta=0.3)
    auto_w, auto_l = torch.autograd.grad(losses.sum(), [pc, pr])
    rows = {name: v for name, _, v in pair_walkthrough(pc.detach(), pr.detach(), rc, rr, beta=0.3)}
    assert torch.allclose(rows["dL / d log pi_theta(y_w)"], auto_w, atol=1e-12, rtol=0)
    assert torch.allclose(rows["dL / d log pi_theta(y_l)"], auto_l, atol=1e-12, rtol=0)


def test_bad_inputs_are_rejected_by_the_library_checks():
    with pytest.raises(ValueError, match="beta"):
        pair_walkthrough(_pair(-1.0), _pair(-2.0), _pair(-1.0), _pair(-2.0), beta=0.0)
    with pytest.raises(ValueError):
        pair_walkthrough(_pair(1.0), _pair(-2.0), _pair(-1.0), _pair(-2.0))  # log-prob > 0


def test_table_has_one_column_per_pair():
    rows = pair_walkthrough(_pair(-2.3, -1.2), _pair(-1.6, -3.6), _pair(-2.3, -2.3), _pair(-1.6, -1.6))
    text = format_walkthrough(rows, ["start", "trained"])
    lines = text.splitlines()
    assert len(lines) == 1 + len(rows) and lines[0].split()[-2:] == ["start", "trained"]
    assert lines[8].split()[-2:] == ["0.6931", "0.5501"]          # the loss row
    with pytest.raises(ValueError, match="column names"):
        format_walkthrough(rows, ["only one"])
