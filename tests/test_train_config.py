"""TrainConfig validation and the typed YAML loader."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from pluralign.train import ConfigError, TrainConfig, config_from_dict, load_yaml


@pytest.mark.parametrize("bad", [
    {"max_steps": 0}, {"learning_rate": 0.0}, {"gradient_accumulation_steps": 0},
    {"lr_scheduler_type": "step"}, {"optim": "sgd"}, {"warmup_steps": 3, "warmup_ratio": 0.1},
    {"early_stopping_patience": 0}, {"max_steps": 2.5}, {"mixed_precision": "fp8"},
    {"adam_beta2": 1.0}, {"greater_is_better": "yes"},
])
def test_invalid_train_config(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_warmup_ratio():
    assert TrainConfig(max_steps=200, warmup_ratio=0.1).num_warmup_steps == 20
    assert TrainConfig(warmup_steps=7).num_warmup_steps == 7


@dataclass
class Inner:
    size: int = 2
    names: tuple[str, ...] = ("a",)


@dataclass
class Outer:
    rate: float = 0.1
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)


def test_yaml_roundtrip_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 1e-4\n  max_steps: 50\n  early_stopping_patience: null\n"
                    "model:\n  hidden: 3\n")
    cfg = load_yaml(path, TrainConfig, section="train")
    assert cfg.learning_rate == 1e-4 and isinstance(cfg.learning_rate, float)  # '1e-4' parsed
    assert cfg.max_steps == 50 and cfg.early_stopping_patience is None
    assert load_yaml(path, TrainConfig, section="absent") == TrainConfig()


def test_yaml_rejects_unknown_keys_and_none_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 1.0e-3\nmax_step: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['max_step'\]") as err:
        load_yaml(path, TrainConfig)
    assert str(path) in str(err.value)
    path.write_text("early_stopping_patience: 'None'\n")
    with pytest.raises(ConfigError, match="write null"):
        load_yaml(path, TrainConfig)
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level"):
        load_yaml(path, TrainConfig)
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "missing.yaml", TrainConfig)


def test_nested_dataclasses_and_types():
    cfg = config_from_dict(Outer, {"rate": 1, "limit": 3, "inner": {"size": 4, "names": ["x", "y"]}})
    assert cfg == Outer(rate=1.0, limit=3, inner=Inner(size=4, names=("x", "y")))
    with pytest.raises(ConfigError, match=r"Outer.inner.size: expected an integer"):
        config_from_dict(Outer, {"inner": {"size": "4"}})
    with pytest.raises(ConfigError, match="Outer.inner: unknown key"):
        config_from_dict(Outer, {"inner": {"sise": 4}})
    with pytest.raises(ConfigError, match="null is not allowed"):
        config_from_dict(Outer, {"rate": None})
    with pytest.raises(ConfigError, match="expected an integer"):
        config_from_dict(Outer, {"limit": True})
