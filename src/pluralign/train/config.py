"""Typed training settings, and the YAML loader every config goes through.

:class:`TrainConfig` takes TRL's knob names (``learning_rate``, ``max_steps``,
``gradient_accumulation_steps``, ``eval_steps``, ``save_steps``, ``metric_for_best_model``,
``greater_is_better``, ``early_stopping_patience``, ...) so a TRL user finds the names they know.

:func:`config_from_dict` / :func:`load_yaml` turn plain mappings into dataclasses with type
checks, reject unknown keys and the string ``'None'`` (DESIGN.md §4: the published code read
``'None'`` strings from YAML and ran with them), and accept ``1e-4`` written without a dot
(PyYAML reads that as a string).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

import yaml

T = TypeVar("T")
SCHEDULES = ("constant", "cosine", "linear")
OPTIMIZERS = ("adam", "adamw")
PRECISIONS = ("no", "fp16", "bf16", "auto")


class ConfigError(ValueError):
    """A config file or mapping names an unknown key or holds a value of the wrong type."""


@dataclass
class TrainConfig:
    """Settings of :func:`pluralign.train.loop.fit`; a *step* is one optimiser update.

    Optimiser: ``optim`` (``adam`` or ``adamw``), ``learning_rate``, ``weight_decay``,
    ``adam_beta1``/``adam_beta2``/``adam_epsilon``, ``max_grad_norm`` (None or 0: no clipping).
    Schedule: ``lr_scheduler_type`` — ``constant``, ``linear`` (decay to 0 at ``max_steps``) or
    ``cosine`` (half-cosine to 0) — each after a linear warm-up of ``warmup_steps`` (or
    ``warmup_ratio`` of ``max_steps``; set one of them).
    Batches: ``gradient_accumulation_steps`` micro-batches per process and step.
    Validation: every ``eval_steps`` steps and at the end (and at step 0 with ``eval_on_start``);
    the best value of ``metric_for_best_model`` (a key of ``val_fn``'s dict; larger is better
    when ``greater_is_better``) is kept in ``out_dir/best``; training stops after
    ``early_stopping_patience`` validations without an improvement of more than
    ``early_stopping_threshold`` (None: never stop early).
    Checkpoints: ``out_dir/last`` every ``save_steps`` steps and at the end; with
    ``resume_from_checkpoint`` a run finds ``out_dir/last`` and continues from it.
    Logging: one JSON line every ``logging_steps`` steps in ``out_dir/log.jsonl``.
    Hardware: ``mixed_precision`` (``no``, ``fp16``, ``bf16``, or ``auto``: bf16 autocast on a
    GPU that supports it or a CPU with native bf16 instructions (AVX512-BF16 / AMX), else fp32),
    ``use_cpu`` forces the CPU. ``prefetch_batches`` builds the next batch in a background thread
    (the same batches when ``batch_fn`` uses only its own seeded generators, as the reward
    models' does: on there; off by default, since a ``batch_fn`` drawing from torch's global RNG
    would then race with the model's dropout).
    ``seed`` seeds torch/numpy/random (offset by the process index, so dropout differs across
    data-parallel processes); data order comes from the caller's ``batch_fn``.
    """

    learning_rate: float = 1e-4
    max_steps: int = 1000
    optim: Literal["adam", "adamw"] = "adam"
    weight_decay: float = 0.0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float | None = None
    lr_scheduler_type: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = 0
    warmup_ratio: float = 0.0
    gradient_accumulation_steps: int = 1
    eval_steps: int = 100
    eval_on_start: bool = False
    save_steps: int = 100
    logging_steps: int = 10
    metric_for_best_model: str = "loss"
    greater_is_better: bool = False
    early_stopping_patience: int | None = None
    early_stopping_threshold: float = 0.0
    load_best_model_at_end: bool = False
    resume_from_checkpoint: bool = True
    mixed_precision: Literal["no", "fp16", "bf16", "auto"] = "no"
    use_cpu: bool = False
    seed: int = 0
    disable_tqdm: bool = False
    prefetch_batches: bool = False

    def __post_init__(self) -> None:
        check_types(self)
        positive = ("max_steps", "gradient_accumulation_steps", "eval_steps", "save_steps",
                    "logging_steps")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ConfigError(f"TrainConfig.weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"TrainConfig.{name} must be in [0, 1), got {getattr(self, name)}")
        if not self.adam_epsilon > 0:
            raise ConfigError(f"TrainConfig.adam_epsilon must be > 0, got {self.adam_epsilon}")
        if self.max_grad_norm is not None and self.max_grad_norm < 0:
            raise ConfigError(f"TrainConfig.max_grad_norm must be >= 0 or None, got {self.max_grad_norm}")
        if self.warmup_steps < 0 or not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"TrainConfig: warmup_steps must be >= 0 and warmup_ratio in [0, 1), "
                              f"got {self.warmup_steps}, {self.warmup_ratio}")
        if self.warmup_steps and self.warmup_ratio:
            raise ConfigError("TrainConfig: set warmup_steps or warmup_ratio, not both")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(f"TrainConfig.early_stopping_patience must be >= 1 or None, "
                              f"got {self.early_stopping_patience}")
        if self.early_stopping_threshold < 0:
            raise ConfigError(f"TrainConfig.early_stopping_threshold must be >= 0, "
                              f"got {self.early_stopping_threshold}")
        if not self.metric_for_best_model:
            raise ConfigError("TrainConfig.metric_for_best_model must name a key of val_fn's dict")

    @property
    def num_warmup_steps(self) -> int:
        return self.warmup_steps or int(round(self.warmup_ratio * self.max_steps))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- typed loading -------------------------------------------------------------------------

_NONE_STRINGS = {"none", "null", "~"}


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return _describe(args[0])
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` (ints widen to floats, float strings parse)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: null is not allowed (expected {_describe(tp)})")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else
                          f"{where}: {value!r} does not match {_describe(tp)}")
    if value is None:
        raise ConfigError(f"{where}: null is not allowed (expected {_describe(tp)})")
    if origin is Literal:  # before the 'None'-string check: "none" may be one of the values
        if value not in args:
            hint = (" (YAML reads yes/no/on/off unquoted as true/false: quote the word)"
                    if isinstance(value, bool) else "")
            raise ConfigError(f"{where}: {value!r} is not {_describe(tp)}{hint}")
        return value
    if isinstance(value, str) and value.strip().lower() in _NONE_STRINGS:
        raise ConfigError(f"{where}: the string {value!r} is not a value; write null (unquoted) "
                          f"for 'no value', or leave the key out for the default")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return config_from_dict(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)  # PyYAML reads 1e-4 (no dot) as a string
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected text, got {value!r}")
        return value
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_coerce(k, kt, where): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{where}: cannot check a value of type {_describe(tp)}")


def check_types(obj: Any, where: str | None = None) -> None:
    """Check (and normalise in place) every field of the dataclass ``obj`` against its hints."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        fixed = _coerce(value, hints[f.name], f"{where or type(obj).__name__}.{f.name}")
        if fixed is not value:
            object.__setattr__(obj, f.name, fixed)


def config_from_dict(cls: type[T], data: Mapping[str, Any], where: str | None = None) -> T:
    """Build the dataclass ``cls`` from ``data``: unknown keys and wrongly typed values are
    errors that name ``where`` (e.g. the file and section) and the key."""
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(map(str, data)) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known keys of {cls.__name__}: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from err


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping at the top of a YAML file (an empty file is ``{}``)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: invalid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_yaml(path: str | os.PathLike, cls: type[T], section: str | None = None) -> T:
    """``cls`` from a YAML file, or from its top-level key ``section`` (absent: defaults)."""
    data = read_yaml(path)
    where = str(path)
    if section is not None:
        where = f"{path}: section '{section}'"
        data = data.get(section) or {}
    return config_from_dict(cls, data, where)
