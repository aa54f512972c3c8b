"""Reward objectives in pluralign.losses against hand-computed numbers and closed forms."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from pluralign.losses import (bt_nll, categorical_preference_prob, cosine_beta, dpl_categorical_nll,
                              dpl_meanvar_nll, gaussian_kl, masked_mean, meanvar_preference_prob,
                              negative_elbo, preference_accuracy)


def test_bt_nll_hand_computed():
    rc = torch.tensor([[1.0, 0.0], [2.0, 5.0]])
    rr = torch.tensor([[0.0, 0.0], [0.0, -5.0]])
    mask = torch.tensor([[True, True], [True, False]])
    expected = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + math.exp(-2))) / 3
    assert bt_nll(rc, rr, mask).item() == pytest.approx(expected, rel=1e-6)
    assert bt_nll(rc, rr).item() == pytest.approx((3 * expected + math.log(1 + math.exp(-10))) / 4, rel=1e-6)


def test_bt_nll_with_a_lapse_is_the_mixture_and_bounds_a_flipped_label():
    margin = torch.tensor([-30.0, -2.0, 0.0, 3.0])
    eps = 0.05
    expected = -torch.log(eps + (1 - 2 * eps) * torch.sigmoid(margin)).mean()
    assert bt_nll(margin, torch.zeros(4), lapse=eps).item() == pytest.approx(expected.item(), rel=1e-6)
    assert bt_nll(margin, torch.zeros(4), lapse=0.0).item() == pytest.approx(bt_nll(margin, torch.zeros(4)).item())
    # a confidently "wrong" label: Bradley-Terry pays the whole margin, the lapse at most -log(eps)
    assert bt_nll(torch.tensor([-30.0]), torch.zeros(1)).item() == pytest.approx(30.0, rel=1e-3)
    assert bt_nll(torch.tensor([-30.0]), torch.zeros(1), lapse=eps).item() < -math.log(eps) + 1e-6
    with pytest.raises(ValueError, match="lapse"):
        bt_nll(margin, torch.zeros(4), lapse=0.5)


def test_np_btl_lapse_scales_its_probabilities_and_keeps_its_ranking():
    from pluralign.rewards.np_btl import NPBTLConfig, NPBTLRewardModel

    torch.manual_seed(0)
    plain = NPBTLRewardModel(NPBTLConfig(option_dim=3, hidden_dim=8, embed_dim=8, z_dim=4))
    lapsed = NPBTLRewardModel(NPBTLConfig(option_dim=3, hidden_dim=8, embed_dim=8, z_dim=4, lapse=0.1))
    lapsed.load_state_dict(plain.state_dict())
    a, b, z = torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.randn(2, 4)
    p, q = plain.preference_prob(a, b, z), lapsed.preference_prob(a, b, z)
    assert torch.allclose(q, 0.1 + 0.8 * p)
    assert torch.equal(p > 0.5, q > 0.5)
    with pytest.raises(ValueError, match="lapse"):
        NPBTLConfig(option_dim=3, lapse=-0.1)


def _task_batch(b: int = 2, c: int = 2, t: int = 3, d: int = 3):
    from pluralign.data.tasks import TaskBatch

    ones = lambda *shape: torch.ones(*shape, dtype=torch.bool)
    return TaskBatch(torch.randn(b, c, d), torch.randn(b, c, d), ones(b, c), torch.randn(b, t, d),
                     torch.randn(b, t, d), ones(b, t), ones(b, t), torch.zeros(b, c, dtype=torch.long),
                     torch.zeros(b, t, dtype=torch.long), torch.full((b,), -1))


def test_np_btl_lapse_start_trains_plain_bradley_terry_first_and_keeps_the_count(tmp_path):
    from pluralign.rewards.np_btl import NPBTLConfig, NPBTLRewardModel

    torch.manual_seed(0)
    small = dict(option_dim=3, hidden_dim=8, embed_dim=8, z_dim=4)
    late = NPBTLRewardModel(NPBTLConfig(**small, lapse=0.1, lapse_start=2)).train()
    plain = NPBTLRewardModel(NPBTLConfig(**small)).train()
    always = NPBTLRewardModel(NPBTLConfig(**small, lapse=0.1)).train()
    state = {k: v for k, v in late.state_dict().items() if k != "train_steps"}
    plain.load_state_dict(state)
    always.load_state_dict(state)
    batch = _task_batch()
    for step in range(4):  # steps 0 and 1 are plain Bradley-Terry, 2 and 3 carry the lapse
        expected = (plain if step < 2 else always)(batch)[0]
        assert late(batch)[0].item() == pytest.approx(expected.item(), rel=1e-6), step
        assert int(late.train_steps) == step + 1
    late.eval()
    late(batch)  # validation does not advance the schedule
    assert int(late.train_steps) == 4
    # it always scores with the lapsed choice model, so validations before and after the switch compare
    a, b, z = torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.randn(2, 4)
    assert torch.allclose(late.preference_prob(a, b, z), always.eval().preference_prob(a, b, z))
    # the count is checkpointed, so a resumed run switches at the same step
    late.save_pretrained(tmp_path / "ckpt")
    assert int(NPBTLRewardModel.from_pretrained(tmp_path / "ckpt").train_steps) == 4
    # without a switch there is no counter, so checkpoints written before the option load unchanged
    assert "train_steps" not in plain.state_dict()
    with pytest.raises(ValueError, match="lapse_start"):
        NPBTLConfig(option_dim=3, lapse=0.1, lapse_start=-1)


def test_masked_mean_of_nothing_is_zero():
    assert masked_mean(torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool)).item() == 0.0


def test_meanvar_probability_and_nll():
    p = meanvar_preference_prob(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.0), torch.tensor(1.5))
    x = 1.0 / math.sqrt(2.0)
    assert p.item() == pytest.approx(0.5 * (1 + math.erf(x / math.sqrt(2))), rel=1e-6)
    assert dpl_meanvar_nll(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([0.0]),
                           torch.tensor([1.5])).item() == pytest.approx(-math.log(p.item()), rel=1e-5)
    pl = meanvar_preference_prob(torch.tensor(1.0), torch.tensor(0.5), torch.tensor(0.0),
                                 torch.tensor(1.5), approx="logistic")
    assert pl.item() == pytest.approx(1 / (1 + math.exp(-1.702 * x)), rel=1e-6)
    assert abs(pl.item() - p.item()) < 0.01
    # far in the tail log Φ must not underflow to inf
    far = dpl_meanvar_nll(torch.tensor([-40.0]), torch.tensor([0.5]), torch.tensor([0.0]), torch.tensor([0.5]))
    assert torch.isfinite(far) and far.item() > 100


def test_categorical_probability_hand_computed_and_sums_to_one():
    pa = torch.tensor([0.2, 0.3, 0.5])
    pb = torch.tensor([0.6, 0.4, 0.0])
    # a > b: a at atom1 beats b at atom0 (0.3*0.6), a at atom2 beats b at 0,1 (0.5*1.0)
    # ties: 0.2*0.6 + 0.3*0.4 = 0.24 -> half
    expected = 0.3 * 0.6 + 0.5 * 1.0 + 0.5 * 0.24
    assert categorical_preference_prob(pa, pb).item() == pytest.approx(expected, rel=1e-6)
    g = torch.Generator().manual_seed(0)
    la, lb = torch.randn(7, 5, 11, generator=g), torch.randn(7, 5, 11, generator=g)
    s = categorical_preference_prob(la.softmax(-1), lb.softmax(-1)) + \
        categorical_preference_prob(lb.softmax(-1), la.softmax(-1))
    torch.testing.assert_close(s, torch.ones(7, 5))
    same = categorical_preference_prob(la.softmax(-1), la.softmax(-1))
    torch.testing.assert_close(same, torch.full((7, 5), 0.5))


def test_categorical_nll_and_entropy_bonus():
    la, lb = torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    assert dpl_categorical_nll(la, lb).item() == pytest.approx(math.log(2), rel=1e-6)
    # uniform over 2 atoms: entropy log 2, bonus subtracts coef * log 2
    assert dpl_categorical_nll(la, lb, entropy_coef=0.5).item() == pytest.approx(0.5 * math.log(2), rel=1e-5)


def test_gaussian_kl_closed_form_and_torch():
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(4, 6, generator=g) for _ in range(4))
    ours = gaussian_kl(mq, lq, mp, lp)
    ref = kl_divergence(Normal(mq, (0.5 * lq).exp()), Normal(mp, (0.5 * lp).exp())).sum(-1)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    # 1-D closed form: KL(N(1, 2) || N(0, 1)) = 0.5 (2 + 1 - 1 - ln 2)
    one = gaussian_kl(torch.tensor([1.0]), torch.tensor([math.log(2.0)]), torch.zeros(1), torch.zeros(1))
    assert one.item() == pytest.approx(0.5 * (2 + 1 - 1 - math.log(2)), rel=1e-6)
    assert gaussian_kl(mq, lq, mq, lq).abs().max().item() < 1e-6


def test_negative_elbo_assembly():
    nll = torch.tensor([[1.0, 2.0, 9.0], [3.0, 4.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    kl = torch.tensor([0.5, 1.5])
    assert negative_elbo(nll, kl, 0.1, mask).item() == pytest.approx((1 + 2 + 3 + 4 + 5 + 0.1 * 2.0) / 5)
    assert negative_elbo(nll, kl, 0.0).item() == pytest.approx(24 / 6)
    with pytest.raises(ValueError):
        negative_elbo(nll, kl[:1], 1.0)


def test_cosine_beta_schedule():
    assert cosine_beta(0, 100) == 0.0
    assert cosine_beta(25, 100) == pytest.approx(0.0)  # a new cycle restarts at 0
    assert cosine_beta(12.5, 100) == pytest.approx(0.5)
    assert cosine_beta(24, 100) == pytest.approx(0.5 * (1 - math.cos(math.pi * 24 / 25)))
    assert cosine_beta(100, 100, beta_max=0.3) == 0.3
    assert cosine_beta(50, 100, cycles=1) == pytest.approx(0.5)


def test_preference_accuracy_ties_half():
    p = torch.tensor([0.9, 0.1, 0.5, 0.7])
    assert preference_accuracy(p).item() == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert preference_accuracy(p, torch.tensor([True, True, False, False])).item() == pytest.approx(0.5)
