"""Named settings for training reward models — the one place ``pluralign train``,
``pluralign bench synthetic`` and ``pluralign bench defaults`` take their defaults from.

* ``tuned`` (the default): what measurement showed works better than the paper's settings —
  sum pooling and an antisymmetric pair encoder for the context models, NP-BTL with a lapse
  ε = 0.05 switched on after 1,000 plain Bradley–Terry steps (chosen on validation users of
  seed-2 populations of ``pluralign bench defaults``; docs/defaults.md), VPL with
  β_max = 0.01 (β = 1 collapses VPL's posterior when few pairs conflict; docs/defaults.md), and
  training to convergence: Adam at lr 1e-3 decayed to 0 by a half-cosine over a step budget that
  scales with the data (:func:`step_budget`), validation every 100 steps, early stopping on the
  validation NLL (patience 10) and the best checkpoint by it (chosen on validation users of
  seed-1 populations of ``pluralign bench defaults``; docs/defaults.md). Mix-BTL is trained
  from two starts, PyTorch's initialisation and one 10 times smaller, and keeps the one with
  the lower validation NLL (``select``): the small start learns the near-linear rewards of
  the simulated populations closer to their ceiling, PyTorch's learns text faster, and the
  run's own validation split tells which it has (docs/defaults.md).
* ``paper``: the NP paper's App. C.1 (Adam, lr 1e-4, 64 tasks a batch, MLPs 2×256 GELU,
  DeepSet with mean pooling), 2,000 steps, best checkpoint by validation accuracy; VPL with the
  VPL paper's β_max = 1 (Table 2).
* ``tuned-no-lapse``: ``tuned`` without NP-BTL's lapse, the default before it: it reproduces
  the tables measured with it.
* ``tuned-plain``: ``tuned-no-lapse`` without the antisymmetric pair encoder and with the optimisation
  ``tuned`` had before (lr 3e-4 constant, early-stopping patience 5): it reproduces older tables.

A preset fills what a config leaves unset: fields given in a YAML file or on the command line
win (:func:`pluralign.train.rewards.train_reward_model` merges them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

#: the preset ``pluralign train`` uses when none is named
DEFAULT_PRESET = "tuned"
#: the reward model ``pluralign train`` trains when ``--model`` is not given: Mix-BTL was ahead of
#: NP-BTL in 29 of 30 cells of ``pluralign bench defaults`` on validation users of seed-2
#: populations, by up to 5.1 pp (docs/defaults.md)
DEFAULT_MODEL = "mix-btl"
CONTEXT_MODELS = ("np-btl", "vpl")

# step budget of the tuned presets: EPOCHS passes over the training pairs, within these bounds
BUDGET_EPOCHS = 300
BUDGET_MIN_STEPS = 3000
BUDGET_MAX_STEPS = 20000


@dataclass(frozen=True)
class Preset:
    """Optimisation and model settings of one preset.

    learning_rate: Adam's. model: config fields of the context models (NP-BTL and VPL). np_btl
    / vpl: fields of one of them only (over ``model``). max_steps: a fixed budget, or None for
    :func:`step_budget` of the data. quick_steps: the benches' ``--quick`` budget. metric /
    greater_is_better: the validation value that picks the best checkpoint (and stops early).
    early_stopping_patience: validations without improvement before stopping (None: never).
    lr_scheduler_type: the learning rate's schedule over the run (``cosine``: half-cosine to 0
    at ``max_steps``; ``constant``). select: per model, config fields whose value is chosen on
    the run's validation split: one run per candidate value, the best by ``metric`` kept
    (a value given in the config fixes the field and skips its selection).
    """

    name: str
    learning_rate: float
    model: dict[str, Any] = field(default_factory=dict)
    np_btl: dict[str, Any] = field(default_factory=dict)
    vpl: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    quick_steps: int = 300
    metric: str = "nll"
    greater_is_better: bool = False
    early_stopping_patience: int | None = 10
    eval_steps: int = 100
    lr_scheduler_type: str = "cosine"
    select: dict[str, dict[str, tuple]] = field(default_factory=dict)

    def model_fields(self, model_name: str) -> dict[str, Any]:
        """Config fields this preset sets for reward model ``model_name`` (BTL and DPL: none)."""
        if model_name not in CONTEXT_MODELS:
            return {}
        return {**self.model, **(self.vpl if model_name == "vpl" else self.np_btl)}


PRESETS: dict[str, Preset] = {
    "tuned": Preset("tuned", learning_rate=1e-3,
                    model={"pooling": "sum", "pair_symmetry": "antisymmetric"},
                    np_btl={"lapse": 0.05, "lapse_start": 1000}, vpl={"beta_max": 0.01},
                    select={"mix-btl": {"init_scale": (1.0, 0.1)}}),
    "tuned-no-lapse": Preset("tuned-no-lapse", learning_rate=1e-3,
                             model={"pooling": "sum", "pair_symmetry": "antisymmetric"},
                             vpl={"beta_max": 0.01}),
    "paper": Preset("paper", learning_rate=1e-4, model={"pooling": "mean"}, vpl={"beta_max": 1.0},
                    max_steps=2000, metric="accuracy", greater_is_better=True,
                    early_stopping_patience=None, lr_scheduler_type="constant"),
    # the optimisation of the tables it reproduces (lr 3e-4 constant, patience 5; README, docs/rewards.md)
    "tuned-plain": Preset("tuned-plain", learning_rate=3e-4, model={"pooling": "sum"},
                          vpl={"beta_max": 0.01}, early_stopping_patience=5, lr_scheduler_type="constant"),
}


def get_preset(name: str | None) -> Preset:
    """The preset called ``name`` (None: :data:`DEFAULT_PRESET`); a clear error otherwise."""
    name = DEFAULT_PRESET if name is None else name
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]


def step_budget(n_train_pairs: int, n_tasks: int = 64, n_target: int = 20, eval_steps: int = 100) -> int:
    """Steps for a run on ``n_train_pairs`` training records: ``BUDGET_EPOCHS`` passes over
    them, one step seeing ``n_tasks · n_target`` target pairs, clamped to
    [``BUDGET_MIN_STEPS``, ``BUDGET_MAX_STEPS``] and rounded up to a multiple of ``eval_steps``.

    It is a ceiling: early stopping on the validation NLL may end the run before it.
    """
    if n_train_pairs < 1 or n_tasks < 1 or n_target < 1 or eval_steps < 1:
        raise ValueError("n_train_pairs, n_tasks, n_target and eval_steps must be >= 1")
    steps = math.ceil(BUDGET_EPOCHS * n_train_pairs / (n_tasks * n_target))
    steps = min(max(steps, BUDGET_MIN_STEPS), BUDGET_MAX_STEPS)
    return math.ceil(steps / eval_steps) * eval_steps
