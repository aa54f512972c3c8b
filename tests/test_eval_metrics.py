"""Evaluation against the reward-model interface, with small hand-built models whose right
answers are known: a context-blind model, an oracle that infers the user type from its context,
and a variational oracle (posterior over z) for the active-units check."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Normal

from pluralign.data.splits import by_split
from pluralign.data.synthetic import example43
from pluralign.eval.bayes import bayes_accuracy_conflict
from pluralign.eval.diagnostics import active_units
from pluralign.eval.metrics import EvalConfig, EvalData, correctness, sample_eval_tasks, summarize
from pluralign.eval.plots import plot_accuracy, plot_per_type
from pluralign.eval.results import (ResultsSchemaError, evaluate_models, format_table, read_json,
                                    to_csv, validate_results, write_csv, write_json)


class Blind(nn.Module):
    """Reward = h0 + h1 for everyone: ignores the context (a BTL stand-in)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))

    def personalize(self, cc, cr, mask):
        return cc.new_zeros(cc.shape[0], 0)

    def reward(self, options, z):
        return options @ self.w

    def preference_prob(self, a, b, z):
        return torch.sigmoid(self.reward(a, z) - self.reward(b, z))


class Oracle(Blind):
    """z = evidence for each type (sign of the context differences per coordinate); the reward
    weights the coordinate of the type the context favours, h0 + h1 when undecided."""

    def personalize(self, cc, cr, mask):
        return (torch.sign(cc - cr) * mask.unsqueeze(-1)).sum(dim=1)  # (B, 2)

    def reward(self, options, z):
        w = torch.softmax(50.0 * z, dim=-1)  # (B, 2)
        return (options * w.unsqueeze(1)).sum(-1)


class VariationalOracle(Oracle):
    """personalize returns q(z | context); the third latent unit never moves (collapsed)."""

    def personalize(self, cc, cr, mask):
        ev = super().personalize(cc, cr, mask)
        mean = torch.cat([ev, torch.zeros_like(ev[:, :1])], dim=1)
        return Normal(mean, torch.ones_like(mean))

    def reward(self, options, z):
        z = z.mean if isinstance(z, Normal) else z
        return super().reward(options, z[:, :2])


@pytest.fixture(scope="module")
def data():
    records, info = example43(n_pairs=1200, rho=0.0, seed=3)
    test = by_split(records)["test"]
    return EvalData.from_records(test), info


def test_eval_data_knows_conflicts_and_types(data):
    d, info = data
    assert d.chosen.shape == d.rejected.shape and d.chosen.shape[1] == 2
    assert set(d.types) == {0, 1} and d.likelihood.shape == (2, len(d.users))
    assert bool(d.conflict_known.all())
    assert abs(float(d.conflicting.float().mean()) - 0.5) < 0.08


def test_accuracy_curves_match_known_answers(data):
    d, _ = data
    cfg = EvalConfig(context_sizes=(0, 1, 3, 10), n_tasks=300, seed=1)
    doc = evaluate_models({"blind": Blind(), "oracle": Oracle(), "vpl-oracle": VariationalOracle()},
                          d, cfg, task="example-4.3-rho-0")
    validate_results(doc)
    c = float(d.conflicting.float().mean())
    for n in ("0", "1", "3", "10"):
        blind, oracle = doc["models"]["blind"][n], doc["models"]["oracle"][n]
        assert blind["n"] == 300 and blind["stderr"] > 0
        # blind: right on agreeing pairs, a coin flip on conflicting ones -> 1 - c/2
        assert abs(blind["accuracy"] - (1 - c / 2)) < 4 * blind["stderr"] + 0.01
        # the oracle is the Bayes predictor here (identifies the type from one conflicting pair)
        assert abs(oracle["accuracy"] - doc["bayes"][n]) < 4 * oracle["stderr"] + 0.01
        closed = float(bayes_accuracy_conflict(c, int(n)))
        assert abs(doc["bayes"][n] - closed) < 0.03
    assert doc["models"]["oracle"]["10"]["accuracy"] > 0.99
    # per user type: both types present, each with its own task count
    per = doc["per_type"]["oracle"]
    assert set(per) == {"0", "1"} and per["0"]["3"]["n"] + per["1"]["3"]["n"] == 300


def test_models_are_also_scored_in_expectation_under_the_true_posterior(data):
    """With the user types known, each model is scored against q = p(stored chosen | context)
    too: the Bayes predictor's expected accuracy is the Bayes line exactly (paired, no spread),
    and a context-blind model's expected score has a smaller spread than its drawn-label one."""
    d, _ = data
    cfg = EvalConfig(context_sizes=(0, 1, 3), n_tasks=200, seed=4, flip_test=False, active_units=False)
    doc = evaluate_models({"blind": Blind(), "oracle": Oracle()}, d, cfg)
    validate_results(doc)
    c = float(d.conflicting.float().mean())
    for n in ("0", "1", "3"):
        oracle, blind = doc["models"]["oracle"][n], doc["models"]["blind"][n]
        assert oracle["expected_accuracy"] == pytest.approx(doc["bayes"][n], abs=1e-9)
        assert oracle["gap_stderr"] == pytest.approx(0.0, abs=1e-9)
        assert abs(blind["expected_accuracy"] - (1 - c / 2)) < 3 * blind["expected_stderr"] + 0.01
        assert blind["expected_stderr"] < blind["stderr"]
    # at N^C = 0 every type is equally likely: a conflicting pair is a coin flip for anyone
    assert doc["models"]["blind"]["0"]["expected_accuracy"] == pytest.approx(doc["bayes"]["0"], abs=1e-9)
    assert doc["models"]["blind"]["3"]["expected_accuracy"] < doc["bayes"]["3"] - 0.05
    table = format_table(doc, expected=True).splitlines()
    row = table[table.index(next(r for r in table if r.startswith("oracle"))) + 1]
    assert row.startswith("  in expectation") and f"{100 * doc['bayes']['3']:.1f} ±" in row
    assert "in expectation" not in format_table(doc)  # other commands print what they printed


def test_flip_test_and_active_units(data):
    d, _ = data
    cfg = EvalConfig(context_sizes=(0, 10), n_tasks=200, seed=2)
    doc = evaluate_models({"blind": Blind(), "oracle": Oracle(), "vpl-oracle": VariationalOracle()},
                          d, cfg)
    flip = doc["flip_test"]
    assert set(flip["blind"]) == {"10"}  # nothing to flip at N^C = 0
    assert flip["blind"]["10"]["unchanged"] == 1.0
    assert flip["blind"]["10"]["unchanged_conflicting"] == 1.0
    # flipping the context makes the oracle believe the other type: every conflicting target flips
    assert flip["oracle"]["10"]["unchanged_conflicting"] < 0.01
    assert flip["oracle"]["10"]["n_conflicting"] > 1000
    assert flip["oracle"]["10"]["unchanged"] < 0.6
    act = doc["active_units"]
    assert set(act) == {"vpl-oracle"}  # deterministic models have no posterior
    assert act["vpl-oracle"]["active"] == 2 and act["vpl-oracle"]["latent_dim"] == 3
    assert act["vpl-oracle"]["variance"][2] == 0.0


def test_tasks_are_disjoint_and_fixed_size(data):
    d, _ = data
    tasks = sample_eval_tasks(d, EvalConfig(context_sizes=(0, 5), n_tasks=50))
    for n, items in tasks.items():
        for it in items:
            assert len(it.context) == n and len(it.target) == 20 and it.unseen.all()
            assert not set(it.context.tolist()) & set(it.target.tolist())


def test_summaries_and_ties():
    s = summarize(np.array([1.0, 0.5, 0.0, np.nan]))
    assert s["n"] == 3 and s["accuracy"] == 0.5 and math.isclose(s["stderr"], 0.5 / math.sqrt(3))
    assert correctness(torch.tensor([0.7, 0.5, 0.2])).tolist() == [1.0, 0.5, 0.0]
    assert active_units(torch.tensor([[0.0, 1.0], [0.0, -1.0], [0.0, 0.5]]))["active"] == 1


def test_writers_table_and_plots(tmp_path, data):
    d, _ = data
    doc = evaluate_models({"blind": Blind(), "oracle": Oracle()}, d,
                          EvalConfig(context_sizes=(0, 1, 5), n_tasks=40), task="toy")
    write_json(doc, tmp_path / "results.json")
    again = read_json(tmp_path / "results.json")
    assert again["models"] == json.loads(json.dumps(doc["models"]))
    write_csv(doc, tmp_path / "results.csv")
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0] == "task,model,n_context,accuracy,stderr,n,bayes" and len(lines) == 1 + 2 * 3
    table = format_table(doc)
    assert "bayes-optimal" in table and "N^C=5" in table and "context-flip" in table
    png = plot_accuracy(doc, tmp_path / "acc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_per_type(doc, tmp_path / "types.png").stat().st_size > 1000
    assert "toy" in to_csv(doc)


def test_schema_violations_are_named():
    good = {"task": "t", "context_sizes": [0, 1], "bayes": None,
            "models": {"m": {"0": {"accuracy": 0.7, "stderr": 0.01, "n": 10}}}}
    validate_results(good)
    with pytest.raises(ResultsSchemaError, match="lack"):
        validate_results({"task": "t"})
    with pytest.raises(ResultsSchemaError, match="fraction"):
        validate_results({**good, "bayes": {"0": 75.0}})
    with pytest.raises(ResultsSchemaError, match="malformed"):
        validate_results({**good, "models": {"m": {"0": {"accuracy": 70.0, "stderr": 1.0, "n": 10}}}})
    with pytest.raises(ResultsSchemaError, match="context sizes"):
        validate_results({**good, "models": {"m": {"7": {"accuracy": 0.7, "stderr": 0.0, "n": 1}}}})
