"""DPO / cDPO against hand-computed numbers (pluralign.losses, policy section)."""

import math

import pytest
import torch

from pluralign.losses import cdpo_loss, dpo_loss, implicit_reward


def _t(*v):
    return torch.tensor(v, dtype=torch.float64)


def test_dpo_matches_hand_computed():
    # chosen: policy -10, ref -12 -> r = 0.5 * 2 = 1.0; rejected: policy -9, ref -8 -> r = -0.5
    losses, rc, rr = dpo_loss(_t(-10.0), _t(-9.0), _t(-12.0), _t(-8.0), beta=0.5)
    h = 1.0 - (-0.5)
    assert rc.item() == pytest.approx(1.0)
    assert rr.item() == pytest.approx(-0.5)
    assert losses.item() == pytest.approx(math.log1p(math.exp(-h)), abs=1e-12)


def test_cdpo_matches_hand_computed_and_reduces_to_dpo():
    args = (_t(-10.0, -3.0), _t(-9.0, -4.0), _t(-12.0, -3.5), _t(-8.0, -3.0))
    losses, _, _ = cdpo_loss(*args, beta=0.5, label_smoothing=0.1)
    for i, h in enumerate([1.5, 0.5 * 0.5 - 0.5 * (-1.0)]):
        want = 0.9 * math.log1p(math.exp(-h)) + 0.1 * math.log1p(math.exp(h))
        assert losses[i].item() == pytest.approx(want, abs=1e-12)
    d, _, _ = dpo_loss(*args, beta=0.5)
    c0, _, _ = cdpo_loss(*args, beta=0.5, label_smoothing=0.0)
    torch.testing.assert_close(d, c0)


def test_cdpo_gradient_is_eq_2_11():
    # d loss / d h = -(1 - eps - (1 - sigma(h)))... = sigma(h) - (1 - eps)
    pc = torch.tensor([0.3], dtype=torch.float64, requires_grad=True)
    zero = torch.zeros(1, dtype=torch.float64)
    loss, _, _ = cdpo_loss(pc, zero, zero, zero, beta=1.0, label_smoothing=0.2)
    loss.sum().backward()
    assert pc.grad.item() == pytest.approx(torch.sigmoid(torch.tensor(0.3)).item() - 0.8, abs=1e-7)


def test_rewards_are_detached_and_implicit_reward():
    pc = torch.tensor([1.0], requires_grad=True)
    _, rc, _ = dpo_loss(pc, torch.zeros(1), torch.zeros(1), torch.zeros(1), beta=0.1)
    assert not rc.requires_grad
    assert implicit_reward(_t(2.0), _t(1.0), beta=0.05).item() == pytest.approx(0.05)


@pytest.mark.parametrize("kw", [dict(beta=0.0), dict(label_smoothing=0.5), dict(label_smoothing=-0.1)])
def test_bad_knobs_raise(kw):
    with pytest.raises(ValueError):
        cdpo_loss(_t(1.0), _t(1.0), _t(1.0), _t(1.0), **kw)


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(_t(1.0, 2.0), _t(1.0), _t(1.0), _t(1.0))
