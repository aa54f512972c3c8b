"""Mix-BTL: a finite mixture of Bradley–Terry rewards with the exact posterior over them."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pluralign.data.tasks import TaskBatch
from pluralign.losses import log_bt_prob, mixture_nll
from pluralign.rewards import RewardModel, build_reward_model

D = 3


def _model(m: int = 4, lapse: float = 0.05, **fields):
    torch.manual_seed(0)
    return build_reward_model("mix-btl", option_dim=D, hidden_dim=16, n_hidden_layers=1,
                              n_components=m, lapse=lapse, **fields).eval()


def test_posterior_is_bayes_rule_on_the_components():
    model = _model()
    with torch.no_grad():
        model.prior_logits.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    c, r = torch.randn(2, 5, D), torch.randn(2, 5, D)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])
    with torch.no_grad():
        z = model.personalize(c, r, mask)
        rc, rr = model.net(c), model.net(r)  # (B, C, M)
        log_lik = log_bt_prob(rc - rr, lapse=0.05) * mask.unsqueeze(-1)
        expected = torch.log_softmax(model.prior_logits + log_lik.sum(1), -1)
    torch.testing.assert_close(z, expected, rtol=1e-5, atol=1e-5)
    # the masked pairs change nothing; no context gives the prior
    z2 = model.personalize(c[1:, :2], r[1:, :2], mask[1:, :2])
    torch.testing.assert_close(z[1:], z2, rtol=1e-5, atol=1e-5)
    empty = model.personalize(c[:, :0], r[:, :0], mask[:, :0])
    torch.testing.assert_close(empty, torch.log_softmax(model.prior_logits, -1).expand(2, -1))


def test_prediction_is_the_posterior_predictive_and_not_one_reward_difference():
    model = _model()
    a, b = torch.randn(2, 7, D), torch.randn(2, 7, D)
    z = model.personalize(torch.randn(2, 3, D), torch.randn(2, 3, D), torch.ones(2, 3, dtype=torch.bool))
    with torch.no_grad():
        p = model.preference_prob(a, b, z)
        p_m = 0.05 + 0.9 * torch.sigmoid(model.net(a) - model.net(b))
        torch.testing.assert_close(p, (z.exp().unsqueeze(1) * p_m).sum(-1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(model.preference_prob(b, a, z), 1 - p, rtol=1e-5, atol=1e-6)
        pairwise = model.pairwise_prob(a, b, z)
        torch.testing.assert_close(torch.diagonal(pairwise, dim1=1, dim2=2), p, rtol=1e-5, atol=1e-6)


def test_three_components_in_a_condorcet_cycle_predict_the_majority():
    # rewards of 3 options for 3 equally likely types: a>b>c, b>c>a, c>a>b; with no context
    # the predictive says the majority (2 of 3) prefers a over b, b over c and c over a: no
    # single reward (and so no NP-BTL prediction) can say that
    model = build_reward_model("mix-btl", option_dim=3, n_components=3, lapse=1e-4, learn_lapse=False).eval()
    ranks = torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0]])  # rows: type, cols: option
    model.net = torch.nn.Linear(3, 3, bias=False)  # a one-hot option j -> r_m = 20 · ranks[m, j]
    with torch.no_grad():
        model.net.weight.copy_(20 * ranks)
    eye = torch.eye(3)
    a, b = eye[[0, 1, 2]].unsqueeze(0), eye[[1, 2, 0]].unsqueeze(0)
    with torch.no_grad():
        p = model.preference_prob(a, b, None)
    assert (p > 0.6).all(), p  # a ≻ b, b ≻ c and c ≻ a, each with probability 2/3


#: two opposite linear types over D = 3; each task is one user's pairs
TWO_TYPES = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])


def two_type_batch(n: int = 32, c: int = 4, t: int = 8) -> TaskBatch:
    k = torch.randint(0, 2, (n,))
    x, y = torch.randn(n, c + t, D), torch.randn(n, c + t, D)
    better = ((x - y) @ TWO_TYPES.T).gather(2, k.view(-1, 1, 1).expand(-1, c + t, 1)).squeeze(-1) > 0
    ch = torch.where(better.unsqueeze(-1), x, y)
    rj = torch.where(better.unsqueeze(-1), y, x)
    ones = lambda m: torch.ones(n, m, dtype=torch.bool)  # noqa: E731
    idx = lambda m: torch.arange(m).expand(n, m)  # noqa: E731
    return TaskBatch(ch[:, :c], rj[:, :c], ones(c), ch[:, c:], rj[:, c:], ones(t), ones(t), idx(c), idx(t), k)


def test_loss_is_the_predictive_nll_and_training_learns_two_types():
    torch.manual_seed(1)
    batch = two_type_batch
    model = build_reward_model("mix-btl", option_dim=D, hidden_dim=32, n_hidden_layers=1, n_components=4).train()
    b = batch()
    loss, metrics = model(b)
    log_w = model.personalize(b.context_chosen, b.context_rejected, b.context_mask)
    r = model.net(torch.cat([b.target_chosen, b.target_rejected], 1))
    rc, rr = r.split(8, 1)
    log_p = torch.logaddexp(torch.full_like(rc, math.log(0.05)), math.log(0.9) + torch.nn.functional.logsigmoid(rc - rr))
    torch.testing.assert_close(loss, mixture_nll(log_w, log_p, b.target_mask))
    assert 0 < metrics["lapse"] < 0.5
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(300):
        loss, _ = model(batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    test = batch(400)
    with torch.no_grad():
        acc = (model.predict(test) > 0.5).float().mean().item()
        no_context = dataclasses.replace(test, context_chosen=test.context_chosen[:, :0],
                                         context_rejected=test.context_rejected[:, :0],
                                         context_mask=test.context_mask[:, :0], context_index=test.context_index[:, :0])
        acc0 = (model.predict(no_context) > 0.5).float().mean().item()
    # four pairs leave the type known in most tasks; without them half the users disagree
    assert acc > 0.9 and acc0 < 0.75, (acc, acc0)
    assert float(model.lapse().detach()) < 0.05  # noiseless labels: the lapse shrinks


def test_nonlinear_l2_penalises_the_mlp_weights_only():
    torch.manual_seed(1)
    b = two_type_batch()
    plain = _model(linear_term=True)
    penalised = _model(linear_term=True, nonlinear_l2=0.01)  # the same weights (same seed)
    loss0, m0 = plain(b)
    loss1, m1 = penalised(b)
    mlp = penalised.net.net
    expected = 0.01 * (mlp[0].weight.pow(2).sum() + mlp[2].weight.pow(2).sum())
    torch.testing.assert_close(loss1, loss0 + expected)
    assert m1["nll"] == pytest.approx(float(loss0)) and m1["loss"] == pytest.approx(float(loss1))
    loss1.backward()  # the linear term's gradient is the NLL's alone
    loss0.backward()
    torch.testing.assert_close(penalised.net.skip.weight.grad, plain.net.skip.weight.grad)
    with pytest.raises(ValueError, match="nonlinear_l2"):
        _model(nonlinear_l2=-1.0)


def test_init_scale_shrinks_the_mlp_start_and_leaves_the_linear_term():
    plain = _model(linear_term=True)
    small = _model(linear_term=True, init_scale=0.1)  # the same draws (same seed), then scaled
    for p0, p1 in zip(plain.net.net.parameters(), small.net.net.parameters()):
        torch.testing.assert_close(p1, 0.1 * p0)
    torch.testing.assert_close(small.net.skip.weight, plain.net.skip.weight)
    with pytest.raises(ValueError, match="init_scale"):
        _model(init_scale=0.0)


@pytest.mark.parametrize("linear_term", [False, True])
def test_checkpoint_round_trip(tmp_path, linear_term):
    model = _model(linear_term=linear_term)
    assert (model.net.skip is not None) == linear_term
    model.save_pretrained(tmp_path / "m")
    again = RewardModel.from_pretrained(tmp_path / "m")
    assert again.name == "mix-btl" and again.config == model.config
    c, r = torch.randn(1, 2, D), torch.randn(1, 2, D)
    mask = torch.ones(1, 2, dtype=torch.bool)
    opts = torch.randn(1, 5, D)
    with torch.no_grad():
        torch.testing.assert_close(again.reward(opts, again.personalize(c, r, mask)),
                                   model.reward(opts, model.personalize(c, r, mask)))


def test_active_selection_asks_the_pair_the_components_disagree_on():
    from pluralign.active.select import select_queries

    model = build_reward_model("mix-btl", option_dim=2, n_components=2, lapse=0.01, learn_lapse=False).eval()
    model.net = torch.nn.Linear(2, 2, bias=False)  # component m scores feature m
    with torch.no_grad():
        model.net.weight.copy_(5 * torch.eye(2))
    # pair 0: both components prefer a; pair 1: they disagree; pair 2: both nearly indifferent
    a = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.1, 0.0]])
    b = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [0.0, 0.1]])
    assert select_queries(model, (a, b), None, 1, "info-gain").tolist() == [1]
    # the predictive is 1/2 on pairs 1 and 2 alike: uncertainty cannot tell which answer informs
    assert select_queries(model, (a, b), None, 1, "uncertainty").tolist() in ([1], [2])
    # once an answer has told the components apart, the disagreeing pair tells nothing more
    answered = (torch.tensor([[1.0, -1.0]]), torch.tensor([[-1.0, 1.0]]))
    assert select_queries(model, (a, b), answered, 1, "info-gain", exclude=[1]).tolist() != [1]
