"""The one interface every reward model implements, and the configs they are built from.

A reward model turns a user's context pairs into a user representation z (``personalize``)
and scores options given z (``reward``); ``preference_prob`` is P(a ≻ b | z). Models without
a user representation (BTL, DPL) return an empty z of shape (B, 0) and ignore it. Calling the
model on a :class:`~pluralign.data.tasks.TaskBatch` returns ``(loss, metrics)`` — the training
objective on the target pairs (context ⊂ target in training, NP paper App. C), so the training
loop's step function is just ``model(batch)`` (and goes through DDP's forward when wrapped).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.distributions import Normal

from .. import checkpoint
from ..data.tasks import TaskBatch
from ..losses import preference_accuracy

CHECKPOINT_FORMAT = "pluralign-reward-model/1"
Latent = torch.Tensor | Normal


@dataclass
class RewardConfig:
    """Fields every reward model shares.

    option_dim: features D of one option (1 for Example 4.1, the embedding size for text).
    hidden_dim / n_hidden_layers / activation: every MLP (NP paper App. C: "two-layer" MLPs of
    256, GELU). ``n_hidden_layers=1`` is the authors' code: two Linear layers, one hidden layer
    of 256. The default 2 (three Linear layers) was kept by measurement: on Example 4.1 it
    reaches higher accuracy than one hidden layer also at equal wall time (docs/speed.md).
    """

    option_dim: int = 1
    hidden_dim: int = 256
    n_hidden_layers: int = 2
    activation: str = "gelu"

    def __post_init__(self) -> None:
        for name in ("option_dim", "hidden_dim", "n_hidden_layers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be >= 1, got {getattr(self, name)}")
        from ..nn.mlp import ACTIVATIONS
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}.activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {self.activation!r}")

    @property
    def hidden(self) -> tuple[int, ...]:
        return (self.hidden_dim,) * self.n_hidden_layers

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RewardConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


class RewardModel(nn.Module):
    """Base class: the shared interface, prediction on a batch, and checkpoints."""

    name: ClassVar[str] = ""
    #: whether rewards depend on z (False for BTL and DPL: one reward for everybody)
    uses_latent: ClassVar[bool] = True
    config_class: ClassVar[type[RewardConfig]] = RewardConfig
    #: where training tasks draw the context when the task config does not say: inside the
    #: targets (the NP paper's convention, App. C.1) or disjoint from them
    train_context_in_target: ClassVar[bool] = True
    #: every concrete model by ``name``, filled as the subclasses are defined (the package
    #: ``pluralign.rewards`` imports them all), so loading needs no import of the registry
    registered: ClassVar[dict[str, type["RewardModel"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            RewardModel.registered[cls.name] = cls

    def __init__(self, config: RewardConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                            f"got {type(config).__name__}")
        self.config = config

    # --- the interface -------------------------------------------------------------------
    def personalize(self, context_chosen: torch.Tensor, context_rejected: torch.Tensor,
                    context_mask: torch.Tensor) -> Latent:
        """User representation from context pairs (B, C, D) x2 + mask (B, C). Default: (B, 0)."""
        return context_chosen.new_zeros(context_chosen.shape[0], 0)

    def reward(self, options: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        """Scalar reward of options (B, N, D) for the users z -> (B, N)."""
        raise NotImplementedError

    # --- serving: candidates prepared once, scored for any number of users ------------------
    def prepare_candidates(self, options: torch.Tensor) -> "PreparedCandidates":
        """Precompute what scoring ``options`` (N, D) needs that does not depend on the user.

        For NP-BTL and VPL this is the option half of the decoder (MLP1 and the option columns
        of MLP2's first layer), so ranking the same candidates for another user costs only the
        rest of MLP2. Reuse the result for as long as the model's weights do not change.
        """
        if options.dim() == 3 and options.shape[0] == 1:
            options = options[0]
        if options.dim() != 2 or options.shape[1] != self.config.option_dim:
            raise ValueError(f"candidates must be (N, {self.config.option_dim}), "
                             f"got {tuple(options.shape)}")
        return PreparedCandidates(options, self._candidate_part(options))

    def _candidate_part(self, options: torch.Tensor) -> torch.Tensor | None:
        """Model-specific precomputation for :meth:`prepare_candidates`: the rewards themselves
        when they do not depend on z, else None (subclasses with a decoder override this)."""
        return None if self.uses_latent else self.reward(options.unsqueeze(0))[0]

    def score_candidates(self, prepared: "PreparedCandidates", z: Latent | None) -> torch.Tensor:
        """Rewards of prepared candidates for every user of ``z`` in one call -> (U, N);
        equal to ``reward(options.expand(U, N, D), z)``."""
        users = _n_users(z)
        if not self.uses_latent and prepared.part is not None:
            return prepared.part.unsqueeze(0).expand(users, -1)
        return self.reward(prepared.options.unsqueeze(0).expand(users, -1, -1), z)

    def preference_prob(self, a: torch.Tensor, b: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        """P(a_n ≻ b_n | z) for options a, b (B, N, D) -> (B, N). Bradley–Terry by default."""
        r = self.reward(torch.cat([a, b], dim=1), z)
        ra, rb = r.split([a.shape[1], b.shape[1]], dim=1)
        return torch.sigmoid(ra - rb)

    def pairwise_prob(self, options: torch.Tensor, others: torch.Tensor,
                      z: Latent | None = None) -> torch.Tensor:
        """P(options_n ≻ others_m | z) for every n, m: (B, N, D), (B, M, D) -> (B, N, M)."""
        r = self.reward(torch.cat([options, others], dim=1), z)
        ra, rb = r.split([options.shape[1], others.shape[1]], dim=1)
        return torch.sigmoid(ra.unsqueeze(2) - rb.unsqueeze(1))

    def predict(self, batch: TaskBatch) -> torch.Tensor:
        """P(target_chosen ≻ target_rejected | context) for every target pair -> (B, T)."""
        z = self.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
        return self.preference_prob(batch.target_chosen, batch.target_rejected, z)

    def forward(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Training objective on the batch's target pairs -> (loss, metrics)."""
        raise NotImplementedError

    def loss(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Same as calling the model: ``(loss, metrics)`` on ``batch``."""
        return self(batch)

    @staticmethod
    def _metrics(loss: torch.Tensor, p: torch.Tensor, mask: torch.Tensor, **extra: Any) -> dict[str, float]:
        out = {"loss": float(loss.detach()), "accuracy": float(preference_accuracy(p.detach(), mask))}
        out.update({k: float(v) for k, v in extra.items()})
        return out

    # --- checkpoints ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``model.safetensors`` + ``config.json`` to ``directory`` atomically."""
        meta = {"format": CHECKPOINT_FORMAT, "model": self.name, "config": self.config.to_dict()}
        return checkpoint.save_module(directory, self, meta)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike,
                        map_location: str | torch.device = "cpu") -> "RewardModel":
        """Load any reward model saved by :meth:`save_pretrained` (on the base class), or a
        specific one (on a subclass, which checks the saved model name)."""
        meta, state = checkpoint.load_state(directory)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise checkpoint.CheckpointError(
                f"{directory}: not a reward-model checkpoint (format {meta.get('format')!r})")
        name = meta.get("model")
        if name not in RewardModel.registered:
            raise checkpoint.CheckpointError(f"{directory}: unknown reward model {name!r}")
        model_cls = RewardModel.registered[name]
        if cls is not RewardModel and model_cls is not cls:
            raise checkpoint.CheckpointError(f"{directory} holds a {name!r} model, not {cls.name!r}")
        model = model_cls(model_cls.config_class.from_dict(meta["config"]))
        model.load_state_dict(state)
        return model.to(map_location).eval()


@dataclass
class PreparedCandidates:
    """Candidates (N, D) and the user-independent part of scoring them (model-specific)."""

    options: torch.Tensor
    part: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.options.shape[0]


def _n_users(z: Latent | None) -> int:
    if z is None:
        return 1
    return (z.mean if isinstance(z, Normal) else z).shape[0]


def make_mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Boolean mask (B, T) for ``like`` (B, T, ...): all True when ``mask`` is None."""
    if mask is None:
        return torch.ones(like.shape[:2], dtype=torch.bool, device=like.device)
    return mask.to(torch.bool)
