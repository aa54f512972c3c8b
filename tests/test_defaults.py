"""Defaults that win (issue 11): presets shared by `pluralign train` and the benches, training to
convergence (step budget, early stopping, best checkpoint), VPL's β schedule following the run,
and `pluralign bench defaults` at toy size."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from pluralign.cli import app
from pluralign.data.io import write_records
from pluralign.data.populations import PopulationSpec, make_population
from pluralign.data.splits import by_split
from pluralign.data.synthetic import example43
from pluralign.data.tasks import TaskSampler
from pluralign.eval import bayes as B
from pluralign.eval.defaults_bench import DefaultsBenchConfig, eval_data, gaps, meets_target, run_defaults_bench
from pluralign.eval.results import validate_results
from pluralign.eval.synthetic_bench import SyntheticBenchConfig, model_fields
from pluralign.train.config import ConfigError
from pluralign.train.presets import PRESETS, get_preset, step_budget
from pluralign.train.rewards import RewardTrainConfig, default_train_config, resolved_train_config, train_reward_model

TINY = {"hidden_dim": 16, "embed_dim": 8}


def test_presets_resolve():
    assert get_preset(None).name == "tuned" and get_preset("paper").learning_rate == 1e-4
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("fast")
    cfg = RewardTrainConfig()  # what `pluralign train` uses with no flags
    assert cfg.preset == "tuned" and cfg.step_budget
    assert cfg.train.learning_rate == 1e-3 and cfg.train.metric_for_best_model == "nll"
    assert cfg.train.early_stopping_patience == 10 and cfg.train.load_best_model_at_end
    assert cfg.train.lr_scheduler_type == "cosine"
    assert cfg.model_fields("np-btl") == {"pooling": "sum", "pair_symmetry": "antisymmetric",
                                          "lapse": 0.05, "lapse_start": 1000}
    assert "lapse" not in cfg.model_fields("vpl")  # VPL has no lapse
    assert "lapse" not in RewardTrainConfig(preset="tuned-no-lapse").model_fields("np-btl")
    assert cfg.model_fields("vpl")["beta_max"] == 0.01 and cfg.model_fields("btl") == {}
    # Mix-BTL keeps its own defaults: the linear term won on synthetic users only (docs/defaults.md)
    assert cfg.model_fields("mix-btl") == {}
    paper = RewardTrainConfig(preset="paper")
    assert not paper.step_budget and paper.train.max_steps == 2000 and paper.train.learning_rate == 1e-4
    assert paper.train.lr_scheduler_type == "constant"
    assert paper.model_fields("np-btl") == {"pooling": "mean"} and paper.model_fields("vpl")["beta_max"] == 1.0
    # the config's own fields win over the preset's; no preset keeps the model defaults
    assert RewardTrainConfig(model={"pooling": "mean"}).model_fields("np-btl")["pooling"] == "mean"
    assert RewardTrainConfig(preset=None).model_fields("np-btl") == {}
    with pytest.raises(ConfigError, match="unknown preset"):
        RewardTrainConfig(preset="fast")
    # the synthetic bench reads the same table
    assert model_fields("np-btl", SyntheticBenchConfig(preset="paper")) == PRESETS["paper"].model_fields("np-btl")
    assert model_fields("vpl", SyntheticBenchConfig())["beta_max"] == 0.01
    assert model_fields("vpl", SyntheticBenchConfig(preset="paper"))["beta_max"] == 1.0


def test_step_budget_rule():
    # 300 passes over the training pairs at 64 tasks x 20 targets a step, within [3000, 20000]
    assert step_budget(6400) == 3000  # 1500 steps -> the floor
    assert step_budget(16000) == 3800  # 3750 rounded up to a multiple of eval_steps
    assert step_budget(40000) == 9400
    assert step_budget(10 ** 7) == 20000
    assert step_budget(16000, n_tasks=32) == 7500
    cfg = RewardTrainConfig()
    assert resolved_train_config(cfg, 16000).max_steps == 3800
    fixed = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=7), step_budget=False)
    assert resolved_train_config(fixed, 16000).max_steps == 7


def _records():
    return example43(n_pairs=300, rho=0.0, seed=2)[0]


def test_early_stopping_triggers(tmp_path):
    """A learning rate too small to move the validation NLL: the run stops after `patience`
    validations without improvement and keeps the first (best) checkpoint."""
    train = dataclasses.replace(default_train_config(), learning_rate=1e-12, max_steps=200, eval_steps=2,
                                save_steps=2, early_stopping_patience=2, early_stopping_threshold=1e-6,
                                disable_tqdm=True)
    cfg = RewardTrainConfig(model=TINY, train=train)
    cfg.tasks.n_tasks, cfg.tasks.val_tasks = 4, 16
    _, result = train_reward_model(_records(), "np-btl", cfg, tmp_path / "run")
    assert result.stopped_early and result.step == 6 and result.best_step == 2
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["result"]["stopped_early"] and run["config"]["train"]["metric_for_best_model"] == "nll"


def test_vpl_anneal_follows_the_run(tmp_path):
    train = dataclasses.replace(default_train_config(), max_steps=6, eval_steps=3, save_steps=3,
                                early_stopping_patience=None, disable_tqdm=True)
    cfg = RewardTrainConfig(model={**TINY, "latent_dim": 2}, train=train)
    cfg.tasks.n_tasks, cfg.tasks.val_tasks = 4, 8
    model, result = train_reward_model(_records(), "vpl", cfg, tmp_path / "vpl")
    assert model.config.anneal_steps == 6 == result.step
    assert model.config.beta_max == 0.01 and model.beta() == pytest.approx(0.01)  # β reached β_max
    # an explicit span is kept; the data-scaled budget sets it otherwise
    cfg2 = RewardTrainConfig(model={**TINY, "latent_dim": 2, "anneal_steps": 50}, train=train)
    cfg2.tasks.n_tasks, cfg2.tasks.val_tasks = 4, 8
    assert train_reward_model(_records(), "vpl", cfg2, tmp_path / "vpl2")[0].config.anneal_steps == 50


def test_cli_train_presets(tmp_path):
    records = _records()
    write_records(records, tmp_path / "d.jsonl")
    (tmp_path / "c.yaml").write_text("model:\n  hidden_dim: 16\n  embed_dim: 8\n  z_dim: 8\n"
                                     "tasks:\n  n_tasks: 4\n  val_tasks: 8\ntrain:\n  disable_tqdm: true\n")
    runner = CliRunner()
    for preset, pooling in (("tuned", "sum"), ("paper", "mean")):
        res = runner.invoke(app, ["train", "--data", str(tmp_path / "d.jsonl"), "--model", "np-btl",
                                  "--config", str(tmp_path / "c.yaml"), "--steps", "4", "--preset", preset,
                                  "--out", str(tmp_path / preset)])
        assert res.exit_code == 0, res.output
        run = json.loads((tmp_path / preset / "run.json").read_text())
        assert run["config"]["preset"] == preset and run["model_config"]["pooling"] == pooling
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "d.jsonl"), "--model", "np-btl",
                              "--preset", "fast", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "--preset" in res.output
    # no --model: the default model, Mix-BTL
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "d.jsonl"), "--steps", "4",
                              "--out", str(tmp_path / "plain")])
    assert res.exit_code == 0, res.output
    run = json.loads((tmp_path / "plain" / "run.json").read_text())
    assert run["model"] == "mix-btl" and run["model_config"]["n_components"] == 32
    # each model's own task convention, recorded as resolved: Mix-BTL's targets are disjoint
    # from the context, NP-BTL's contain it (NP paper App. C.1)
    assert run["config"]["tasks"]["context_in_target"] is False
    assert json.loads((tmp_path / "tuned" / "run.json").read_text())["config"]["tasks"]["context_in_target"] is True


def test_population_bayes_line_matches_closed_form():
    """Two deterministic types: the enumeration on the bench's table gives 1 - c(1-c)^N / 2."""
    records, info, pop = make_population(PopulationSpec("t", "types", k=2, dim=3, n_pairs=3000), seed=5)
    test = by_split(records)["test"]
    data = eval_data(test, pop, mc_samples=10, seed=0)
    assert data.likelihood.shape == (2, len(test))
    c = float(np.mean(data.likelihood[0] != data.likelihood[1]))
    sampler = TaskSampler(data.users, context_range=(0, 5), n_target=20, context_in_target=False, seed=1)
    for n in (0, 1, 5):
        r = B.bayes_optimal_accuracy(data.likelihood, sampler.sample(1500, step=n, n_context=n))
        se = np.std(r.item_expected) / math.sqrt(1500)
        assert abs(r.expected_accuracy - B.bayes_accuracy_conflict(c, n)) < 4 * se + 2e-3


def test_population_kinds():
    for kind in ("dirichlet", "new-users"):
        spec = PopulationSpec("p", kind, k=3, dim=4, n_pairs=400, n_users=40, pairs_per_user=30, noise=0.1)
        records, info, pop = make_population(spec, seed=0)
        parts = by_split(records)
        assert info["flipped"] == round(0.1 * len(records)) and pop.types is None
        if kind == "new-users":  # test users are people the model never saw
            assert not {r.user_id for r in parts["train"]} & {r.user_id for r in parts["test"]}
        w = pop.sample_weights(5, np.random.default_rng(0))
        assert w.shape == (5, 3) and np.allclose(w.sum(1), 1)
    with pytest.raises(ValueError, match="k <= dim"):
        PopulationSpec("bad", k=5, dim=3)


def test_target_check():
    assert meets_target({"0": -0.014, "1": -0.009, "10": 0.002})
    assert not meets_target({"0": -0.016, "1": 0.0})
    assert not meets_target({"0": 0.0, "3": -0.011})


def test_bench_defaults_smoke(tmp_path):
    cfg = DefaultsBenchConfig(populations=("types-k2-d4", "dirichlet-k3-d6"), quick=True, max_steps=3,
                              n_eval_tasks=20, mc_samples=200, context_sizes=(0, 1, 3))
    summary = run_defaults_bench(cfg, tmp_path, log=lambda s: None)
    assert [r["population"] for r in summary["rows"]] == ["types-k2-d4", "dirichlet-k3-d6"]
    for name in ("types-k2-d4", "dirichlet-k3-d6"):
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        validate_results(doc)
        assert doc["runs"]["mix-btl"]["steps"] == 3 and set(gaps(doc)) == {"0", "1", "3"}
        assert doc["bayes"]["3"] > doc["bayes"]["0"] and (tmp_path / f"{name}.png").stat().st_size > 0
        # one reward per context cannot beat the posterior majority
        assert all(doc["single_reward"][n] <= doc["bayes"][n] + 1e-9 for n in doc["bayes"])
        assert set(gaps(doc, line="single_reward")) == {"0", "1", "3"}
        # the gap of record is the model's accuracy in expectation; the drawn-label one is kept
        curve = doc["models"]["mix-btl"]
        assert gaps(doc)["3"] == pytest.approx(curve["3"]["expected_accuracy"] - doc["bayes"]["3"])
        assert gaps(doc, drawn_labels=True)["3"] == pytest.approx(curve["3"]["accuracy"] - doc["bayes"]["3"])
    assert "Monte Carlo" in json.loads((tmp_path / "dirichlet-k3-d6.json").read_text())["bayes_kind"]
    assert json.loads((tmp_path / "types-k2-d4.json").read_text())["bayes_kind"].startswith("exact")
    assert (tmp_path / "summary.csv").read_text().startswith("population,model,gap_0")
    assert all("meets_target_vs_single_reward" in r and "drawn_labels_gap_3" in r for r in summary["rows"])
    with pytest.raises(ValueError, match="unknown population"):
        DefaultsBenchConfig(populations=("nope",))
    with pytest.raises(ValueError, match="split"):
        DefaultsBenchConfig(split="train")


def test_bayes_line_from_recorded_labels_says_what_it_is():
    from pluralign.eval.metrics import EvalData

    data = EvalData.from_records(by_split(_records())["test"])
    assert "oracle" in data.bayes_kind and "deterministic" in data.bayes_kind


def _summary(run, seed, gaps_by_pop, split="test", model="mix-btl", drawn=True):
    rows = [{"population": p, "model": model, **{f"gap_{n}": g for n, g in zip(("0", "1", "10"), gs)},
             **({f"drawn_labels_gap_{n}": g - 0.5 for n, g in zip(("0", "1", "10"), gs)} if drawn else {})}
            for p, gs in gaps_by_pop.items()]
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"config": {"seed": seed, "split": split, "context_sizes": [0, 1, 10]},
                                                  "rows": rows}))
    return run


def test_defaults_seeds_mean_interval_and_target(tmp_path):
    from typer.testing import CliRunner

    from pluralign.cli import app
    from pluralign.eval.defaults_seeds import aggregate_defaults

    a = _summary(tmp_path / "s9", 9, {"k2": [-1.4, -0.5, -0.2], "k3": [0.0, -1.2, -0.9]})
    b = _summary(tmp_path / "s10", 10, {"k2": [-1.2, -0.7, -0.4], "k3": [0.2, -0.6, -0.9]})
    res = aggregate_defaults([a, b], tmp_path / "agg", log=lambda s: None)
    cell = {(r["population"], r["n_context"]): r for r in res["gap_to_bayes"]}
    assert cell[("k2", 0)]["mean"] == pytest.approx(-1.3) and cell[("k2", 0)]["seeds"] == 2
    assert cell[("k2", 0)]["t_low"] < -1.3 < cell[("k2", 0)]["t_high"]
    assert cell[("k3", 1)]["mean"] == pytest.approx(-0.9) and cell[("k3", 1)]["meets_target_on_mean"]
    assert not cell[("k3", 1)]["meets_target_every_seed"]  # seed 9 alone misses it (-1.2)
    verdict = {v["population"]: v for v in res["targets"]}
    assert verdict["k2"] == {"model": "mix-btl", "population": "k2", "meets_target_on_mean": True,
                             "meets_target_every_seed": True}
    assert verdict["k3"]["meets_target_on_mean"] and not verdict["k3"]["meets_target_every_seed"]
    assert (tmp_path / "agg" / "table.md").is_file() and (tmp_path / "agg" / "targets.json").is_file()
    drawn = {(r["population"], r["n_context"]): r["mean"] for r in res["gap_to_bayes_drawn_labels"]}
    assert drawn[("k2", 0)] == pytest.approx(-1.8)  # kept beside the gap of record, not judged
    # a summary from before the model was scored in expectation does not mix with newer ones
    old = _summary(tmp_path / "s13", 13, {"k2": [0, 0, 0], "k3": [0, 0, 0]}, drawn=False)
    with pytest.raises(ValueError, match="two ways"):
        aggregate_defaults([a, old], tmp_path / "x", log=lambda s: None)
    assert "drawn labels" in aggregate_defaults([old], tmp_path / "x", log=lambda s: None)["gap"]
    # the same seed twice, a validation run or a population one seed lacks: refused, by the CLI too
    with pytest.raises(ValueError, match="repeat a seed"):
        aggregate_defaults([a, a], tmp_path / "x", log=lambda s: None)
    c = _summary(tmp_path / "v", 11, {"k2": [0, 0, 0], "k3": [0, 0, 0]}, split="validation")
    with pytest.raises(ValueError, match="test-split"):
        aggregate_defaults([a, c], tmp_path / "x", log=lambda s: None)
    d = _summary(tmp_path / "s12", 12, {"k2": [0, 0, 0]})
    with pytest.raises(ValueError, match="k3 is missing from the runs of seeds \\[12\\]"):
        aggregate_defaults([a, d], tmp_path / "x", log=lambda s: None)
    out = CliRunner().invoke(app, ["bench", "defaults-seeds", str(a), str(tmp_path / "none"), "--out", str(tmp_path / "y")])
    assert out.exit_code == 1 and "summary.json" in out.output
    out = CliRunner().invoke(app, ["bench", "defaults-seeds", str(a), str(b), "--out", str(tmp_path / "y")])
    assert out.exit_code == 0 and "mix-btl on k3: target met on the mean; missed on some seed" in out.output
