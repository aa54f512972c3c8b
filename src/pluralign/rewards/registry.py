"""Reward models by name, and the builder that turns a name + config into a model."""

from __future__ import annotations

from typing import Any

from .base import RewardConfig, RewardModel
from .btl import BTLRewardModel
from .dpl import DPLRewardModel
from .mixture import MixBTLRewardModel
from .np_btl import NPBTLRewardModel
from .vpl import VPLRewardModel

MODELS: dict[str, type[RewardModel]] = {
    m.name: m for m in (BTLRewardModel, DPLRewardModel, NPBTLRewardModel, VPLRewardModel,
                       MixBTLRewardModel)}


def config_class(name: str) -> type[RewardConfig]:
    if name not in MODELS:
        raise ValueError(f"unknown reward model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[name].config_class


def build_reward_model(name: str, config: RewardConfig | dict[str, Any] | None = None,
                       **overrides: Any) -> RewardModel:
    """Build the model ``name`` (``btl``, ``dpl``, ``np-btl``, ``vpl``).

    ``config``: that model's config dataclass, or a dict of its fields (unknown fields are an
    error), or None for the defaults; ``overrides`` replace single fields, e.g.
    ``build_reward_model("np-btl", option_dim=2, pooling="sum")``.
    """
    cls = config_class(name)
    if config is None:
        values: dict[str, Any] = {}
    elif isinstance(config, RewardConfig):
        if not isinstance(config, cls):
            raise TypeError(f"model {name!r} needs a {cls.__name__}, got {type(config).__name__}")
        values = config.to_dict()
    elif isinstance(config, dict):
        values = dict(config)
    else:
        raise TypeError(f"config must be a {cls.__name__}, a dict or None, got {type(config).__name__}")
    values.update(overrides)
    return MODELS[name](cls.from_dict(values))


def reward_step(model: RewardModel, batch: Any) -> tuple[Any, dict[str, float]]:
    """``step_fn`` for :func:`pluralign.train.loop.fit`: the model's own objective."""
    return model(batch)
