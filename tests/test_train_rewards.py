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
