"""NP-BTL: a neural-process reward model, r(y | D^C) = g(y, h(D^C)) (NP paper §3.1, eq. 4-7).

The set encoder h turns a user's context pairs into z (DeepSet, eq. 5, or self-attention,
eq. 21); the decoder g = MLP2([MLP1(y) ‖ z]) (App. C, eq. 22) scores options for that user;
P(a ≻ b | D^C) = σ(r(a | D^C) - r(b | D^C)). Trained by the Bradley–Terry likelihood of the
target pairs given the context (Algorithm 1), over tasks with N^C drawn from [0, 10].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.tasks import TaskBatch
from ..losses import bt_nll
from ..nn import AttentionSetEncoder, ConditionedRewardDecoder, DeepSetEncoder
from ..nn.set_encoders import PAIR_SYMMETRIES, PairSymmetry
from .base import Latent, PreparedCandidates, RewardConfig, RewardModel

ENCODERS = ("deepset", "attention")


@dataclass
class ContextConfig(RewardConfig):
    """Set-encoder fields shared by NP-BTL and VPL.

    encoder: ``deepset`` (NP paper eq. 5) or ``attention`` (eq. 21).
    pooling: ``mean`` (eq. 5) or ``sum`` (eq. 21) over the context pairs.
    n_heads, attention_dropout: the attention encoder's heads (8) and dropout (0.1).
    embed_dim: width of the decoder's option embedding MLP1(y) (256).
    pair_symmetry: ``none`` (the papers) or ``antisymmetric``: a flipped context pair gives the
        negated pair embedding (see :mod:`pluralign.nn.set_encoders`).
    """

    encoder: str = "deepset"
    pooling: str = "mean"
    n_heads: int = 8
    attention_dropout: float = 0.1
    embed_dim: int = 256
    pair_symmetry: PairSymmetry = "none"  # a Literal: the YAML loader accepts the word none

    def __post_init__(self) -> None:
        super().__post_init__()
        name = type(self).__name__
        if self.encoder not in ENCODERS:
            raise ValueError(f"{name}.encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.pooling not in ("mean", "sum"):
            raise ValueError(f"{name}.pooling must be 'mean' or 'sum', got {self.pooling!r}")
        if self.pair_symmetry not in PAIR_SYMMETRIES:
            raise ValueError(f"{name}.pair_symmetry must be one of {PAIR_SYMMETRIES}, "
                             f"got {self.pair_symmetry!r}")
        if self.n_heads < 1 or not 0 <= self.attention_dropout < 1 or self.embed_dim < 1:
            raise ValueError(f"{name}: invalid n_heads={self.n_heads}, attention_dropout="
                             f"{self.attention_dropout} or embed_dim={self.embed_dim}")


def decoder_scores(decoder: ConditionedRewardDecoder, prepared: PreparedCandidates,
                   z: torch.Tensor) -> torch.Tensor:
    """Rewards (U, N) of prepared candidates for the U users of z: the option part is reused
    (recomputed only when the candidates were prepared without one)."""
    part = prepared.part if prepared.part is not None else decoder.option_part(prepared.options)
    return decoder.score(part.unsqueeze(0), decoder.user_part(z))


def build_set_encoder(config: ContextConfig, out_dim: int) -> nn.Module:
    """The set encoder a config names, mapping a context to ``out_dim`` features."""
    if config.encoder == "deepset":
        return DeepSetEncoder(config.option_dim, out_dim, config.hidden_dim, config.hidden,
                              config.activation, config.pooling, config.pair_symmetry)
    return AttentionSetEncoder(config.option_dim, out_dim, config.hidden_dim, config.n_heads,
                               config.attention_dropout, config.hidden, config.activation,
                               config.pooling, config.pair_symmetry)


@dataclass
class NPBTLConfig(ContextConfig):
    """NP-BTL: z_dim is the size of the deterministic context embedding z^C (256).

    lapse: ε of a lapse (coin-flip) term in the choice model, P = ε + (1 - 2ε)·σ(Δr), for noisy
    labels; 0 is the paper's Bradley–Terry (:func:`pluralign.losses.bt_nll`). Not in the paper.
    lapse_start: training forward passes (steps; micro-batches under gradient accumulation) that
    use the plain Bradley–Terry loss before the lapse is switched on (0: from the start). On from the start, the lapse caps the gradient of pairs the
    model already gets wrong, and a noiseless population can stay on the initial plateau where
    every user is scored alike (docs/defaults.md); after the model has left it, the lapse helps.
    """

    z_dim: int = 256
    lapse: float = 0.0
    lapse_start: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.z_dim < 1:
            raise ValueError(f"NPBTLConfig.z_dim must be >= 1, got {self.z_dim}")
        if not 0.0 <= self.lapse < 0.5:
            raise ValueError(f"NPBTLConfig.lapse must be in [0, 0.5), got {self.lapse}")
        if self.lapse_start < 0:
            raise ValueError(f"NPBTLConfig.lapse_start must be >= 0, got {self.lapse_start}")


class NPBTLRewardModel(RewardModel):
    """Deterministic conditional reward; ``personalize`` returns z (B, z_dim).

    The lapse ε (when set) is always part of the choice model the model *scores* with
    (:meth:`preference_prob`, hence validation NLL and checkpoint choice), so validations before
    and after ``lapse_start`` are on one scale; the training loss leaves it out for the first
    ``lapse_start`` steps.
    """

    name = "np-btl"
    config_class = NPBTLConfig

    def __init__(self, config: NPBTLConfig):
        super().__init__(config)
        self.encoder = build_set_encoder(config, config.z_dim)
        self.decoder = ConditionedRewardDecoder(config.option_dim, config.z_dim, config.embed_dim,
                                                config.hidden, config.activation)
        if config.lapse_start > 0:
            # training forward passes so far, checkpointed so that a resumed run switches the
            # lapse on at the same step (only when there is a switch: older checkpoints lack it)
            self.register_buffer("train_steps", torch.zeros((), dtype=torch.long))

    def train_lapse(self) -> float:
        """ε of the training loss at the current step: 0 for the first ``lapse_start`` steps."""
        c = self.config
        return c.lapse if c.lapse_start == 0 or int(self.train_steps) >= c.lapse_start else 0.0

    def personalize(self, context_chosen: torch.Tensor, context_rejected: torch.Tensor,
                    context_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(context_chosen, context_rejected, context_mask)

    def reward(self, options: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        return self.decoder(options, self._decoder_z(z))

    def _candidate_part(self, options: torch.Tensor) -> torch.Tensor:
        return self.decoder.option_part(options)

    def score_candidates(self, prepared: PreparedCandidates, z: Latent | None) -> torch.Tensor:
        return decoder_scores(self.decoder, prepared, self._decoder_z(z))

    def _decoder_z(self, z: Latent | None) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError("NP-BTL needs z = model.personalize(context ...) (a (B, z_dim) tensor)")
        return z

    def forward(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        z = self.personalize(batch.context_chosen, batch.context_rejected, batch.context_mask)
        r = self.reward(torch.cat([batch.target_chosen, batch.target_rejected], dim=1), z)
        rc, rr = r.split(batch.target_chosen.shape[1], dim=1)
        loss = bt_nll(rc, rr, batch.target_mask, lapse=self.train_lapse())
        if self.training and self.config.lapse_start > 0:
            self.train_steps += 1
        return loss, self._metrics(loss, self._lapsed(torch.sigmoid(rc - rr)), batch.target_mask)

    def preference_prob(self, a: torch.Tensor, b: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        # the trained choice model, so that validation NLL scores what the loss fits
        return self._lapsed(super().preference_prob(a, b, z))

    def _lapsed(self, p: torch.Tensor) -> torch.Tensor:
        lapse = self.config.lapse
        return p if lapse == 0.0 else lapse + (1 - 2 * lapse) * p
