"""Reward-training glue: splits, model building from typed config, batch and validation fns."""

from __future__ import annotations

import pytest
import torch

from pluralign.data.synthetic import example41
from pluralign.train.config import ConfigError
from pluralign.train.loop import TrainConfig
from pluralign.train.rewards import (RewardTrainConfig, TaskConfig, build_model, make_batch_fn,
                                     make_val_fn, split_for_training, train_reward_model)


@pytest.fixture(scope="module")
def records():
    return example41(n_pairs=300, seed=0)[0]


def test_split_uses_records_or_seed(records):
    parts = split_for_training(records, (0.5, 0.25, 0.25), seed=0)
    assert sum(map(len, parts.values())) == len(records)
    stripped = [r.replace(split=None) for r in records]
    a = split_for_training(stripped, (0.6, 0.2, 0.2), seed=1)
    b = split_for_training(stripped, (0.6, 0.2, 0.2), seed=1)
    assert [r.pair_id for r in a["test"]] == [r.pair_id for r in b["test"]]
    mixed = stripped[:10] + records[10:]
    with pytest.raises(ValueError, match="give every record a split"):
        split_for_training(mixed, (0.5, 0.25, 0.25), seed=0)


def test_build_model_checks_fields():
    m = build_model("np-btl", {"hidden_dim": 8, "z_dim": 4, "embed_dim": 4}, option_dim=3)
    assert m.config.option_dim == 3
    with pytest.raises(ConfigError, match="option_dim"):
        build_model("btl", {"option_dim": 2}, option_dim=3)
    with pytest.raises(ConfigError, match="hidden_dim"):
        build_model("btl", {"hidden_dim": "8"}, option_dim=3)


def test_batches_are_deterministic_and_validation_scores(records):
    parts = split_for_training(records, (0.5, 0.25, 0.25), seed=0)
    tasks = TaskConfig(n_tasks=4, val_tasks=8, context_max=5)
    batch_fn = make_batch_fn(parts["train"], tasks)
    a, b, c = batch_fn(3, 0), batch_fn(3, 0), batch_fn(3, 1)
    assert torch.equal(a.target_index, b.target_index) and not torch.equal(a.target_index, c.target_index)
    assert a.target_chosen.shape == (4, 20, 1)
    model = build_model("btl", {"hidden_dim": 8}, option_dim=1)
    out = make_val_fn(parts["validation"], tasks)(model)
    assert set(out) == {"accuracy", "loss", "nll"} and 0 <= out["accuracy"] <= 1 and out["loss"] > 0
    assert out["nll"] == pytest.approx(out["loss"], rel=1e-4)  # BTL: its objective is the predictive NLL


def test_reward_train_config_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  max_steps: 7\ntasks:\n  n_tasks: 8\nsplit_fractions: [0.6, 0.2, 0.2]\n")
    cfg = RewardTrainConfig.from_yaml(path)  # over the default (tuned) preset
    assert cfg.train.max_steps == 7 and cfg.train.metric_for_best_model == "nll" and not cfg.step_budget
    assert RewardTrainConfig.from_yaml(path, preset="paper").train.metric_for_best_model == "accuracy"
    assert cfg.tasks.n_tasks == 8 and cfg.split_fractions == (0.6, 0.2, 0.2)
    path.write_text("tasks:\n  context_max: 30\n")
    with pytest.raises(ConfigError, match="context_max"):
        RewardTrainConfig.from_yaml(path)


def test_a_run_is_reproducible_from_its_seed(records, tmp_path):
    # the initial weights are drawn from the run's seed, not from whatever the global RNG holds
    def run(seed: int, name: str) -> dict[str, torch.Tensor]:
        torch.rand(int(torch.randint(1, 50, ()).item()))  # disturb the global RNG differently each time
        cfg = RewardTrainConfig(model={"hidden_dim": 8, "z_dim": 4, "embed_dim": 4},
                                tasks=TaskConfig(n_tasks=4, val_tasks=8, context_max=5),
                                train=TrainConfig(max_steps=3, eval_steps=3, save_steps=3, seed=seed,
                                                  disable_tqdm=True))
        model, _ = train_reward_model(records, "np-btl", cfg, tmp_path / name)
        return model.state_dict()

    a, b, c = run(0, "a"), run(0, "b"), run(1, "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_the_default_preset_chooses_mix_btl_init_scale_on_validation(records, tmp_path):
    import json

    from pluralign.rewards import RewardModel

    def cfg(**model):
        return RewardTrainConfig(model={"hidden_dim": 8, **model}, tasks=TaskConfig(n_tasks=4, val_tasks=8, context_max=5),
                                 train=TrainConfig(max_steps=4, eval_steps=2, save_steps=2, seed=0, disable_tqdm=True,
                                                   load_best_model_at_end=True))

    model, result = train_reward_model(records, "mix-btl", cfg(), tmp_path / "run")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    sel = run["selection"]
    assert sel["field"] == "init_scale" and set(sel["candidates"]) == {"1.0", "0.1"}
    assert sel["metric"] == cfg().train.metric_for_best_model and sel["split"] == "validation"
    best = min(sel["candidates"], key=sel["candidates"].get)  # a loss: lower is better
    assert sel["chosen"] == float(best) == model.config.init_scale == run["model_config"]["init_scale"]
    assert result.best_metrics[sel["metric"]] == sel["candidates"][best]
    for v in ("1.0", "0.1"):  # each candidate kept its own run
        assert (tmp_path / "run" / "select" / f"init_scale={v}" / "best").is_dir()
    again = RewardModel.from_pretrained(tmp_path / "run" / "best")  # the chosen one, where a run keeps it
    assert all(torch.equal(again.state_dict()[k], model.state_dict()[k]) for k in model.state_dict())
    # a value in the config fixes the field: one run, nothing selected
    model, _ = train_reward_model(records, "mix-btl", cfg(init_scale=0.3), tmp_path / "fixed")
    run = json.loads((tmp_path / "fixed" / "run.json").read_text())
    assert "selection" not in run and model.config.init_scale == 0.3 and not (tmp_path / "fixed" / "select").exists()
    assert "selection" not in json.loads(  # other models and other presets select nothing
        (train_reward_model(records, "btl", cfg(), tmp_path / "btl")[1].out_dir / "run.json").read_text())
