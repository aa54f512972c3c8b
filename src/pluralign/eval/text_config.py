"""What ``pluralign bench text`` runs (:class:`TextBenchConfig`) and the context models'
hyperparameters on text. Its own module so that the feature step
(:mod:`pluralign.eval.text_features`) and the bench (:mod:`pluralign.eval.text_bench`) both
read it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MODELS = ("btl", "dpl", "np-btl", "vpl", "mix-btl")

#: Hyperparameters of the context models (measured on the 2-mode corpus/Pets data; see
#: docs/text-bench.md). Fields of the model configs (pluralign.rewards).
MODEL_FIELDS: dict[str, dict[str, Any]] = {
    "btl": {},
    "dpl": {},
    "np-btl": {"encoder": "deepset", "pooling": "sum"},
    # β = 1 collapsed the posterior on the 384-d MiniLM corpus inputs (0 of 16 active units, KL ~1e-4,
    # 50% accuracy at every N^C); β_max = 0.05 kept 16 active units and 86% at N^C = 10
    "vpl": {"encoder": "deepset", "pooling": "sum", "latent_dim": 16, "beta_max": 0.05},
    "mix-btl": {},
}


@dataclass
class TextBenchConfig:
    """What ``pluralign bench text`` runs.

    data: a built-in set name (``pluralign.data.builtin.available()``) or a JSONL/Parquet file
    of records with text options (or vectors: then nothing is embedded). encoder: ``minilm``
    (mean pooling, fast on a CPU), ``smollm2`` (last-token pooling, what the papers do), or any
    local folder / hub id. models: which reward models. oracle: train the per-type BTL oracle.
    quick: fewer steps and evaluation tasks. max_steps / learning_rate: optimisation.
    pairs_per_user: pairs each simulated user labels (built-in sets only; enough that every user
    has max(context_sizes) + n_target test pairs). holdout_users: users per type left out of
    training and evaluation. latent_context_sizes: N^C of the PCA panels. standardize: per-feature
    standardisation fitted on the training split. project_dim: optional PCA projection of the
    standardised options (cheaper, but cost NP-BTL ~8 points on the corpus). hidden_dim: width of
    every MLP, z and MLP1(y) (paper: 256). model_fields: per-model config overrides, e.g.
    ``{"vpl": {"beta_max": 1.0}}``. cache_dir: embedding cache root (None:
    ``$PLURALIGN_CACHE/embeddings``).
    """

    data: str = "corpus-2mode"
    encoder: str = "minilm"
    models: tuple[str, ...] = MODELS
    oracle: bool = True
    quick: bool = False
    max_steps: int | None = None
    learning_rate: float = 3e-4
    n_tasks: int = 64
    n_target: int = 20
    eval_steps: int = 100
    n_eval_tasks: int = 500
    context_sizes: tuple[int, ...] = (0, 1, 3, 5, 10)
    latent_context_sizes: tuple[int, ...] = (0, 1, 3, 10)
    pairs_per_user: int = 128
    users_per_type: int = 50
    holdout_users: int = 0
    standardize: bool = True
    project_dim: int | None = None
    hidden_dim: int = 256
    max_length: int = 256
    embed_batch_size: int = 32
    cache_dir: str | None = None
    model_fields: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        bad = sorted(set(self.models) - set(MODELS))
        if bad:
            raise ValueError(f"unknown model(s) {bad}; choose from {', '.join(MODELS)}")
        if not self.models and not self.oracle:
            raise ValueError("nothing to train: give at least one model or keep the oracle")
        self.context_sizes = tuple(int(n) for n in self.context_sizes)
        self.latent_context_sizes = tuple(int(n) for n in self.latent_context_sizes)
        if not set(self.latent_context_sizes) <= set(self.context_sizes):
            raise ValueError(f"latent_context_sizes {self.latent_context_sizes} must be among "
                             f"context_sizes {self.context_sizes}")
        for name in ("n_tasks", "n_target", "eval_steps", "n_eval_tasks", "pairs_per_user",
                     "users_per_type", "max_length", "embed_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"TextBenchConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.holdout_users < 0 or self.holdout_users >= self.users_per_type:
            raise ValueError(f"holdout_users must be in [0, users_per_type), got {self.holdout_users}")
        if self.project_dim is not None and self.project_dim < 1:
            raise ValueError(f"project_dim must be >= 1 or None, got {self.project_dim}")
        if self.hidden_dim < 1:
            raise ValueError(f"hidden_dim must be >= 1, got {self.hidden_dim}")
        if self.quick:
            self.n_eval_tasks = min(self.n_eval_tasks, 200)

    @property
    def steps(self) -> int:
        # validation accuracy peaked within 100-300 steps on the built-in sets; more only costs CPU
        return self.max_steps or (400 if self.quick else 600)
