"""One training loop for every model (DESIGN.md §5): :func:`fit` with a :class:`TrainConfig`."""

from .config import ConfigError, TrainConfig, config_from_dict, load_yaml, read_yaml
from .loop import FitResult, LRSchedule, fit

__all__ = ["ConfigError", "FitResult", "LRSchedule", "TrainConfig", "config_from_dict", "fit",
           "load_yaml", "read_yaml"]
