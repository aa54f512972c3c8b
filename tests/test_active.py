"""Active query selection (issue 12; VPL App. B): the information-gain arithmetic against hand-worked
and Monte Carlo values, the posteriors, select_queries (determinism, bad input), the Bayes
questioner and the quick bench."""

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from pluralign.active import (NoLatentError, OptionScorer, ParticlePosterior, Pool, answer_log_likelihood,
                              ask_sequentially, bayes_gain, binary_entropy, information_gain,
                              monte_carlo_information_gain, select_queries, single_pair_gain,
                              type_log_posterior)
from pluralign.cli import app
from pluralign.eval.results import validate_results
from pluralign.rewards import build_reward_model

LN2 = math.log(2)


def h(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


# --- information gain ---------------------------------------------------------------------------

def test_information_gain_two_types_by_hand():
    # two equally likely types; the pair separates them perfectly: one answer = one bit
    p = torch.tensor([[[1.0]], [[0.0]]])  # (P=2, S=1, Q=1)
    assert information_gain(p).item() == pytest.approx(LN2)
    # noisy answers (type A says "a" 90% of the time, B 10%): H(y) - H(y|z) = ln 2 - h(0.9)
    p = torch.tensor([[[0.9]], [[0.1]]])
    assert information_gain(p).item() == pytest.approx(LN2 - h(0.9), abs=1e-6)
    # a pair both types answer the same way tells nothing
    assert information_gain(torch.tensor([[[0.8]], [[0.8]]])).item() == pytest.approx(0.0, abs=1e-7)
    # unequal prior 1/4, 3/4: the answer reveals the type, I = H(type) = h(1/4)
    log_w = torch.tensor([0.25, 0.75]).log()
    assert information_gain(torch.tensor([[[1.0]], [[0.0]]]), log_w).item() == pytest.approx(h(0.25))
    # two copies of a perfectly separating pair: the second answer is redundant, still ln 2
    assert information_gain(torch.tensor([[[1.0, 1.0]], [[0.0, 0.0]]])).item() == pytest.approx(LN2)


def test_information_gain_three_types_batch_identifies_type():
    # pair 1 separates A from {B, C}, pair 2 separates {A, B} from C: the two answers name the
    # type, so I = H(type) = ln 3 while either pair alone gives h(1/3)
    p = torch.tensor([[[1.0, 1.0]], [[0.0, 1.0]], [[0.0, 0.0]]])  # (P=3, S=1, Q=2)
    assert information_gain(p).item() == pytest.approx(math.log(3), abs=1e-6)
    assert information_gain(p[..., :1]).item() == pytest.approx(h(1 / 3), abs=1e-6)


def test_information_gain_matches_monte_carlo_and_single_pair_form():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(6, 3, generator=g)  # 6 particles, a batch of Q = 3 pairs
    log_w = torch.randn(6, generator=g)
    exact = information_gain(p[:, None, :], log_w).item()
    mc = monte_carlo_information_gain(p, log_w, 200_000, torch.Generator().manual_seed(1))
    assert exact > 0.05 and mc == pytest.approx(exact, abs=0.01)
    # Q = 1 through the enumeration equals the closed form h(E p) - E h(p), batched over users
    pp = torch.rand(4, 6, 5, generator=g)  # (users, particles, pairs)
    lw = torch.randn(4, 6, generator=g)
    assert torch.allclose(information_gain(pp.unsqueeze(-1), lw), single_pair_gain(pp, lw), atol=1e-6)
    assert binary_entropy(torch.tensor([0.0, 1.0])).abs().max() == 0


# --- models, scoring, posteriors ----------------------------------------------------------------

def tiny(name, d=3):
    torch.manual_seed(0)
    return build_reward_model(name, option_dim=d, hidden_dim=32, embed_dim=16).eval()


@pytest.mark.parametrize("name", ["np-btl", "vpl"])
def test_option_scorer_matches_model_reward(name):
    model = tiny(name)
    opts = torch.randn(40, 3)
    z = torch.randn(2, 5, model.decoder.z_dim)
    ref = torch.stack([model.reward(opts.expand(5, -1, -1), z[i]) for i in range(2)])
    scorer = OptionScorer(model, opts)
    assert scorer.fast and torch.allclose(scorer(z), ref, atol=1e-5)
    idx = torch.randint(0, 40, (2, 7))
    assert torch.allclose(scorer(z, idx), torch.gather(ref, 2, idx[:, None].expand(-1, 5, -1)), atol=1e-5)


def test_particle_weights_are_the_bradley_terry_likelihood():
    model = tiny("np-btl")
    parts = ParticlePosterior.from_contexts(model, torch.randn(8, 4, 3), torch.randn(8, 4, 3), lapse=0.1)
    c, r = torch.randn(2, 3), torch.randn(2, 3)
    rc, rr = model.reward(c.expand(8, -1, -1), parts.z), model.reward(r.expand(8, -1, -1), parts.z)
    by_hand = torch.log(0.1 + 0.8 * torch.sigmoid(rc - rr)).sum(1)
    assert torch.allclose(parts.log_weights(model, c, r), by_hand, atol=1e-5)
    assert torch.equal(parts.log_weights(model), torch.zeros(8))
    assert answer_log_likelihood(torch.tensor([-50.0]), 0.1).exp().item() == pytest.approx(0.1, rel=1e-3)



def test_particle_medoid_by_hand():
    """Three particles on a line at 0, 1, 10: under equal weights the expected distances are 11,
    10 and 19, so the medoid is the one at 1 (the weighted mean, 3.67, is no particle); weight
    piled on the one at 10 makes it the medoid."""
    parts = ParticlePosterior(torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]]))
    assert parts.medoid(torch.zeros(3)) == 1
    assert parts.medoid(torch.tensor([0.0, 0.0, 5.0])) == 2
    assert parts.medoid(torch.tensor([5.0, 0.0, 0.0])) == 0


# --- select_queries -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["np-btl", "vpl"])
@pytest.mark.parametrize("strategy", ["info-gain", "uncertainty", "random"])
def test_select_queries_deterministic_and_valid(name, strategy):
    model = tiny(name)
    pool = torch.randn(60, 2, 3)
    parts = ParticlePosterior.from_contexts(model, torch.randn(16, 5, 3), torch.randn(16, 5, 3))
    answered = (torch.randn(2, 3), torch.randn(2, 3))
    for k, search in ((1, "sample"), (3, "sample"), (3, "greedy")):
        kw = dict(k=k, strategy=strategy, seed=7, exclude=[0, 1], particles=parts, batch_search=search)
        a = select_queries(model, pool, answered, **kw)
        assert torch.equal(a, select_queries(model, pool, answered, **kw))
        assert len(set(a.tolist())) == k and not {0, 1} & set(a.tolist())


def test_info_gain_asks_the_pair_that_tells_particles_apart():
    model = tiny("np-btl", d=1)
    parts = ParticlePosterior.from_contexts(model, torch.randn(32, 4, 1), torch.randn(32, 4, 1), lapse=0.0)
    pool = Pool(torch.rand(50, 1) * 4 - 2, torch.rand(50, 1) * 4 - 2)
    ra, rb = parts.pool_rewards(model, pool)
    gains = single_pair_gain(torch.sigmoid(ra - rb))
    best = select_queries(model, pool, k=1, particles=parts, n_candidates=50)
    assert gains[best].item() == pytest.approx(gains.max().item())
    # sequential mode asks distinct questions and conditions on the answers
    asked = ask_sequentially(model, pool, lambda i: bool(ra[0, i] > rb[0, i]), 5, particles=parts)
    assert len({i for i, _ in asked}) == 5


def test_bad_input_gets_clear_errors():
    model = tiny("vpl")
    with pytest.raises(ValueError, match="empty"):
        select_queries(model, torch.zeros(0, 2, 3))
    with pytest.raises(ValueError, match="4 features but the model takes option_dim=3"):
        select_queries(model, torch.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"\(M, 2, D\)"):
        select_queries(model, torch.randn(5, 3))
    with pytest.raises(ValueError, match="k=6 questions asked for, but the pool holds only 5"):
        select_queries(model, torch.randn(5, 2, 3), k=6)
    with pytest.raises(ValueError, match=r"answered chosen must be \(C, 3\)"):
        select_queries(model, torch.randn(5, 2, 3), (torch.randn(2, 4), torch.randn(2, 4)))
    with pytest.raises(ValueError, match="unknown strategy"):
        select_queries(model, torch.randn(5, 2, 3), strategy="psychic")
    for name in ("btl", "dpl"):
        with pytest.raises(NoLatentError, match="needs a latent model"):
            select_queries(build_reward_model(name, option_dim=3), torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="particles=ParticlePosterior"):
        select_queries(tiny("np-btl"), torch.randn(5, 2, 3))


# --- the Bayes-optimal questioner ---------------------------------------------------------------

def test_bayes_questioner_asks_the_conflicting_pair():
    # two deterministic types agree on pairs 0-2 and disagree on pair 3
    L = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    log_post = type_log_posterior(L, torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 0, dtype=torch.bool))
    gain = bayes_gain(L, log_post, torch.arange(4)[None])
    assert gain.argmax().item() == 3 and gain[0, 3].item() == pytest.approx(LN2)
    post = type_log_posterior(L, torch.tensor([[3]]), torch.tensor([[False]])).exp()
    assert post[0].tolist() == pytest.approx([0.0, 1.0])


# --- the bench ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_bench_active_quick_cli(tmp_path):
    out = tmp_path / "active"
    result = CliRunner().invoke(app, [
        "bench", "active", "--quick", "--steps", "3", "--task", "example-4.1", "--n-pairs", "400",
        "--eval-tasks", "16", "--pool-size", "30", "--n-particles", "16", "--n-candidates", "8",
        "--robust-task", "example-4.1", "--noise", "0.25", "--out", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "example-4.1.json").read_text())
    validate_results(doc)
    assert doc["context_sizes"] == list(range(11))
    assert {"np-btl/info-gain", "vpl/random", "bayes/bayes-active"} <= set(doc["models"])
    # one conflicting pair names an Example 4.1 type: the Bayes questioner is right from question 1
    assert doc["models"]["bayes/bayes-active"]["1"]["accuracy"] == 1.0
    assert doc["questions_to_95"]["bayes/bayes-active"] == 1
    for f in ("example-4.1.csv", "example-4.1.png", "example-4.1-noise-0.25.json", "robustness.png", "summary.json"):
        assert (out / f).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert {r["model"] for r in summary["targets"]} == {"np-btl", "vpl"}
    assert "info-gain@2" in result.output
    bad = CliRunner().invoke(app, ["bench", "active", "--task", "nope", "--out", str(out)])
    assert bad.exit_code != 0 and "unknown tasks" in bad.output
