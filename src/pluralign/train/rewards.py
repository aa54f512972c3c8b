"""Training a reward model on preference records: the glue between records, task sampling and
:func:`pluralign.train.loop.fit`, used by ``pluralign train`` and the benchmarks.

Training batches follow the NP paper (App. C.1): ``n_tasks`` tasks a batch, each a random user
with N^C ~ U[context_min, context_max] context pairs drawn *inside* its N^T target pairs; the loss
is the model's own objective on the targets (``model(batch)``). Validation uses fixed tasks from
the validation split with the context *disjoint* from the targets and scores those unseen
pairs (accuracy and predictive NLL); the preset's metric picks the best checkpoint and stops
early (:mod:`pluralign.train.presets`; ``tuned``: NLL, a data-scaled step budget). Every random stream has its own seed: the
training sampler ``tasks.seed``, the validation tasks ``tasks.seed + 1``, the loop ``train.seed``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..atomic import write_text_atomic
from ..data.records import PreferenceRecord
from ..data.splits import by_split, split_records
from ..data.tables import option_vectors, user_ids, user_types
from ..data.tasks import TaskSampler, collate, collate_arrays
from ..losses import preference_correct
from .config import ConfigError, TrainConfig, check_types, config_from_dict, read_yaml
from .loop import FitResult, fit
from .presets import BUDGET_MIN_STEPS, DEFAULT_PRESET, PRESETS, get_preset, step_budget

RUN_FILE = "run.json"


@dataclass
class TaskConfig:
    """n_tasks: tasks per batch and process (NP paper: 64). context_min/context_max: N^C range
    (paper: 0-10). n_target: N^T (paper: 20). val_tasks: fixed validation tasks. seed: the
    training sampler's seed (validation tasks use seed + 1). context_in_target: draw each
    training task's context inside its targets (the NP paper's convention, App. C.1) or, when
    False, disjoint from them as at evaluation; None (the default): the model's own convention
    (``RewardModel.train_context_in_target``: inside for the papers' models, disjoint for
    Mix-BTL)."""

    n_tasks: int = 64
    context_min: int = 0
    context_max: int = 10
    n_target: int = 20
    val_tasks: int = 256
    seed: int = 0
    context_in_target: bool | None = None

    def __post_init__(self) -> None:
        check_types(self)
        if self.n_tasks < 1 or self.n_target < 1 or self.val_tasks < 1:
            raise ConfigError(f"TaskConfig: n_tasks, n_target and val_tasks must be >= 1, got "
                              f"{self.n_tasks}, {self.n_target}, {self.val_tasks}")
        if not 0 <= self.context_min <= self.context_max <= self.n_target:
            raise ConfigError(f"TaskConfig: need 0 <= context_min <= context_max <= n_target, got "
                              f"{self.context_min}, {self.context_max}, {self.n_target}")


def default_train_config(preset: str | None = DEFAULT_PRESET) -> TrainConfig:
    """The training settings of ``preset`` (:mod:`pluralign.train.presets`): its learning
    rate, validation every ``eval_steps``, the best checkpoint by its metric, early stopping.
    ``max_steps`` is the preset's fixed budget or, for data-scaled presets, the budget's
    lower bound (:func:`train_reward_model` replaces it when ``step_budget`` is on).
    ``None``: the NP paper's optimisation (Adam, lr 1e-4, 2,000 steps, best by accuracy).
    bf16 autocast where the hardware runs it natively (``mixed_precision: no`` for fp32
    everywhere); the next batch built in a background thread (the sampler is pure)."""
    p = get_preset("paper" if preset is None else preset)
    return TrainConfig(learning_rate=p.learning_rate, max_steps=p.max_steps or BUDGET_MIN_STEPS,
                       eval_steps=p.eval_steps, save_steps=p.eval_steps,
                       metric_for_best_model=p.metric, greater_is_better=p.greater_is_better,
                       early_stopping_patience=p.early_stopping_patience,
                       lr_scheduler_type=p.lr_scheduler_type,
                       load_best_model_at_end=True, mixed_precision="auto", prefetch_batches=True)


@dataclass
class RewardTrainConfig:
    """Everything ``pluralign train`` reads from its YAML file (sections of the same names).

    preset: where unset settings come from (:mod:`pluralign.train.presets`; default ``tuned``;
    None: no preset — the model config's own defaults and ``train`` exactly as given).
    model: fields of the chosen model's config (``pluralign.rewards.config_class(name)``), over
    the preset's; ``option_dim`` is taken from the data. train: the loop's settings (default:
    the preset's, :func:`default_train_config`). step_budget: replace ``train.max_steps`` by
    :func:`pluralign.train.presets.step_budget` of the training split (default: on when
    ``train`` comes from a data-scaled preset, off when ``train`` or its ``max_steps`` is
    given). split_fractions / split_seed: the seeded train/validation/test split used when
    the records carry no ``split``.
    """

    model: dict[str, Any] = field(default_factory=dict)
    tasks: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig | None = None
    split_fractions: tuple[float, float, float] = (0.5, 0.25, 0.25)
    split_seed: int = 0
    preset: str | None = DEFAULT_PRESET
    step_budget: bool | None = None

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"preset: unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
        if self.step_budget is None:
            self.step_budget = (self.train is None and self.preset is not None
                                and PRESETS[self.preset].max_steps is None)
        if self.train is None:
            self.train = default_train_config(self.preset)
        check_types(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_fields(self, model_name: str) -> dict[str, Any]:
        """The preset's fields for ``model_name`` with this config's ``model`` over them."""
        base = get_preset(self.preset).model_fields(model_name) if self.preset is not None else {}
        return {**base, **self.model}

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, preset: str | None = DEFAULT_PRESET) -> "RewardTrainConfig":
        """A config file over ``preset`` (a ``preset`` key in the file wins); a ``train``
        section is merged over the preset's training settings, and giving ``train.max_steps``
        there turns the data-scaled step budget off."""
        data = read_yaml(path)
        preset = data.get("preset", preset)
        if preset is not None and preset not in PRESETS:
            raise ConfigError(f"{path}: preset: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        data["preset"] = preset
        if "train" in data:  # the sections' unset keys keep the preset's values
            section = data["train"] or {}
            data["train"] = {**default_train_config(preset).to_dict(), **section}
            if "step_budget" not in data:
                data["step_budget"] = ("max_steps" not in section and preset is not None
                                       and PRESETS[preset].max_steps is None)
        return config_from_dict(cls, data, str(path))


def split_for_training(records: Sequence[PreferenceRecord], fractions: Sequence[float],
                       seed: int) -> dict[str, list[PreferenceRecord]]:
    """The records' own ``split`` when every record has one, else a seeded split (by prompt
    for text, by pair for numeric data; :func:`pluralign.data.splits.split_records`)."""
    if not records:
        raise ValueError("no records")
    have = [r.split is not None for r in records]
    if any(have) and not all(have):
        raise ValueError(f"{sum(have)} of {len(records)} records have a 'split' field: give every "
                         "record a split, or none (then a seeded split is made)")
    parts = by_split(split_records(records, tuple(fractions), seed=seed))
    for name in ("train", "validation"):
        if not parts[name]:
            raise ValueError(f"the {name} split is empty ({len(records)} records); "
                             "add records or change split_fractions")
    return parts


def numeric_table(records: Sequence[PreferenceRecord], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        return option_vectors(records)
    except TypeError:
        raise TypeError(f"the {split} records have text options; reward models train on vectors: "
                        "embed them first (pluralign.features.embed.embed_to_records) and save "
                        "records with numeric options") from None


def check_model_fields(name: str, model_fields: dict[str, Any], where: str | None = None) -> None:
    """Raise :class:`ConfigError` (naming ``where``, e.g. the config file, and the key) when
    ``model_fields`` do not make a config of reward model ``name``: checked before any text is
    embedded, so a typo in a config file costs nothing."""
    from ..rewards import config_class

    config_from_dict(config_class(name), {"option_dim": 1, **model_fields}, where or f"model ({name})")


def build_model(name: str, model_fields: dict[str, Any], option_dim: int) -> nn.Module:
    """The reward model ``name`` with its config checked field by field; ``option_dim`` from
    the data (a different value in the config is an error)."""
    from ..rewards import build_reward_model, config_class

    fields = dict(model_fields)
    if fields.get("option_dim", option_dim) != option_dim:
        raise ConfigError(f"model.option_dim = {fields['option_dim']} but the data's options have "
                          f"{option_dim} features")
    fields["option_dim"] = option_dim
    cfg = config_from_dict(config_class(name), fields, f"model ({name})")
    return build_reward_model(name, cfg)


def make_batch_fn(records: Sequence[PreferenceRecord], tasks: TaskConfig):
    """``batch_fn(step, stream)`` over the training records (context ⊂ target unless
    ``tasks.context_in_target`` is False; None counts as the papers' True)."""
    chosen, rejected = numeric_table(records, "train")
    sampler = TaskSampler(user_ids(records), context_range=(tasks.context_min, tasks.context_max),
                          n_target=tasks.n_target, context_in_target=tasks.context_in_target is not False,
                          user_types=user_types(records), seed=tasks.seed)

    def batch_fn(step: int, stream: int):
        arrays = sampler.sample_arrays(tasks.n_tasks, step=step, stream=stream)
        return collate_arrays(arrays, chosen, rejected)

    return batch_fn


def make_val_fn(records: Sequence[PreferenceRecord], tasks: TaskConfig, batch_size: int = 256):
    """``val_fn(model) -> {"accuracy", "loss", "nll"}`` on fixed disjoint-context validation
    tasks: ``loss`` is the model's training objective (VPL's depends on the step's β), ``nll``
    the predictive -log P(chosen ≻ rejected | context) on the unseen targets, the same quantity
    for every model and every step (what the tuned presets stop on)."""
    chosen, rejected = numeric_table(records, "validation")
    sampler = TaskSampler(user_ids(records), context_range=(tasks.context_min, tasks.context_max),
                          n_target=tasks.n_target, context_in_target=False, user_types=user_types(records),
                          seed=tasks.seed + 1)
    items = sampler.sample(tasks.val_tasks, step=0, stream=0)
    fixed = [collate(items[i: i + batch_size], chosen, rejected)
             for i in range(0, len(items), batch_size)]

    @torch.no_grad()
    def val_fn(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        acc, loss, n, nll, n_pairs = [], 0.0, 0, 0.0, 0.0
        for batch in fixed:
            batch = batch.to(device)
            p = model.predict(batch).float()  # the RewardModel interface, as in pluralign.eval
            ok = preference_correct(p) * batch.target_unseen
            acc.append((ok.sum(1) / batch.target_unseen.sum(1)).cpu())
            nll -= float((p.clamp_min(1e-6).log() * batch.target_unseen).sum())
            n_pairs += float(batch.target_unseen.sum())
            loss += float(model(batch)[0]) * len(batch.user_type)
            n += len(batch.user_type)
        return {"accuracy": float(torch.cat(acc).mean()), "loss": loss / n, "nll": nll / n_pairs}

    return val_fn


def train_reward_model(records: Sequence[PreferenceRecord], model_name: str, config: RewardTrainConfig,
                       out_dir: str | os.PathLike, *, data_file: str | None = None,
                       accelerator: Any = None, extra: dict[str, Any] | None = None
                       ) -> tuple[nn.Module, FitResult]:
    """Split, build the model, train it with :func:`fit`, and write ``out_dir/run.json`` (model
    name, config, data file, split sizes, result, and ``extra``'s keys) for ``pluralign eval``.
    Returns the model
    (with the best validation weights loaded when ``train.load_best_model_at_end``).

    When the preset selects a model field on validation (:attr:`Preset.select`, unless the
    config fixes it), each candidate value trains in ``out_dir/select/<field>=<value>/`` and
    the one with the best validation metric is copied to ``out_dir``; ``run.json`` records
    every candidate's metric under ``selection``."""
    parts = split_for_training(records, config.split_fractions, config.split_seed)
    train, val = parts["train"], parts["validation"]
    train_cfg = resolved_train_config(config, len(train))
    fields = config.model_fields(model_name)
    if model_name == "vpl" and fields.get("anneal_steps") is None:
        fields["anneal_steps"] = train_cfg.max_steps  # β's schedule spans this run
    if config.tasks.context_in_target is None:  # recorded in run.json as resolved
        from ..rewards.registry import MODELS, config_class

        config_class(model_name)  # a clear error for an unknown name
        config = dataclasses.replace(config, tasks=dataclasses.replace(
            config.tasks, context_in_target=MODELS[model_name].train_context_in_target))
    out = Path(out_dir)
    # one task stream and one validation set for every candidate: batches are a pure function of
    # (step, stream), so each candidate trains on exactly what a single run would
    dim = numeric_table(train, "train")[0].shape[1]
    batch_fn, val_fn = make_batch_fn(train, config.tasks), make_val_fn(val, config.tasks)

    def fit_one(model_fields: dict[str, Any], folder: Path) -> tuple[nn.Module, FitResult]:
        """One model of ``model_fields`` trained by :func:`fit` into ``folder`` (best weights loaded)."""
        from ..rewards import reward_step

        torch.manual_seed(train_cfg.seed)  # the initial weights follow the run's seed: a rerun reproduces it
        model = build_model(model_name, model_fields, dim)
        result = fit(model, reward_step, batch_fn, train_cfg, folder, val_fn=val_fn, accelerator=accelerator)
        if result.best_step is not None and train_cfg.load_best_model_at_end:
            model = type(model).from_pretrained(folder / "best")
        return model, result

    selected = selected_field(config, model_name)
    selection = None
    if selected is None:
        model, result = fit_one(fields, out)
    else:
        name, values = selected
        tried = {value: fit_one({**fields, name: value}, out / "select" / f"{name}={value}") for value in values}
        sign = 1 if train_cfg.greater_is_better else -1
        metric = train_cfg.metric_for_best_model
        scores = {v: r.best_metrics.get(metric, math.nan) for v, (_, r) in tried.items()}
        chosen = max(values, key=lambda v: -math.inf if math.isnan(scores[v]) else sign * scores[v])
        model, result = tried[chosen]
        _copy_run(out / "select" / f"{name}={chosen}", out)
        result = dataclasses.replace(result, out_dir=out)
        selection = {"field": name, "chosen": chosen, "metric": metric, "split": "validation",
                     "candidates": {str(v): scores[v] for v in values}}
    run = {"model": model_name, "data": data_file, "config": {**config.to_dict(), "train": train_cfg.to_dict()},
           "model_config": model.config.to_dict() if hasattr(model, "config") else None,
           "split_sizes": {k: len(v) for k, v in parts.items()},
           "result": {"step": result.step, "best_step": result.best_step,
                      "best_metrics": result.best_metrics, "stopped_early": result.stopped_early,
                      "resumed_from": result.resumed_from},
           **({"selection": selection} if selection else {}), **(extra or {})}
    from accelerate import PartialState

    if PartialState().is_main_process:
        write_text_atomic(out / RUN_FILE, json.dumps(run, indent=2, default=_json_default) + "\n")
    return model, result


def selected_field(config: RewardTrainConfig, model_name: str) -> tuple[str, tuple] | None:
    """The preset's field of ``model_name`` chosen on validation, if the config leaves it free:
    ``(field, candidate values)``, or None when there is nothing to choose."""
    if config.preset is None:
        return None
    free = [(k, tuple(v)) for k, v in get_preset(config.preset).select.get(model_name, {}).items()
            if k not in config.model and len(v) > 1]
    if len(free) > 1:
        raise ConfigError(f"preset {config.preset!r} selects more than one field of {model_name}")
    return free[0] if free else None


def _copy_run(src: Path, dst: Path) -> None:
    """The chosen candidate's checkpoints and log where a single run keeps them."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    for name in ("best", "last"):
        if (src / name).exists():
            shutil.rmtree(dst / name, ignore_errors=True)
            shutil.copytree(src / name, dst / name)
    if (src / "log.jsonl").exists():
        shutil.copy2(src / "log.jsonl", dst / "log.jsonl")


def resolved_train_config(config: RewardTrainConfig, n_train: int) -> TrainConfig:
    """``config.train`` with ``max_steps`` from the step budget of ``n_train`` training records
    when ``config.step_budget`` is on."""
    if not config.step_budget:
        return config.train
    steps = step_budget(n_train, config.tasks.n_tasks, config.tasks.n_target, config.train.eval_steps)
    return dataclasses.replace(config.train, max_steps=steps, save_steps=min(config.train.save_steps, steps))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
