"""DPL: distributional preference learning (Siththaranjan et al., as in NP paper §2, App. C.1).

Each option's reward is a random variable shared by the population; P(a ≻ b) is the chance
that a draw for a beats a draw for b. Two families:

- ``mean_variance``: r(y) ~ N(μ(y), σ(y)²), the MLP outputs (μ, log σ);
  P(a ≻ b) = Φ((μ_a - μ_b) / √(σ_a² + σ_b²)) (or its logistic approximation).
- ``categorical``: r(y) is categorical over K ordered atoms, the MLP outputs K logits;
  P(a ≻ b) = Σ_{i>j} p_a[i] p_b[j] + ½ Σ_i p_a[i] p_b[i]; optional entropy bonus.

DPL captures that users disagree (σ grows where they do) but cannot adapt to one user: z is
ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.tasks import TaskBatch
from ..losses import (categorical_preference_prob, dpl_categorical_nll, dpl_meanvar_nll,
                      meanvar_preference_prob)
from ..nn import MLP
from .base import Latent, RewardConfig, RewardModel

MIN_LOG_STD, MAX_LOG_STD = -7.0, 5.0


@dataclass
class DPLConfig(RewardConfig):
    """distribution: ``mean_variance`` or ``categorical``.
    probit: ``normal`` (exact Φ) or ``logistic`` (σ(1.702 x)) for mean–variance.
    n_atoms, atom_min, atom_max: the categorical's ordered reward atoms (only their order
    matters for the likelihood; their values define the expected reward).
    entropy_coef: weight of the categorical entropy bonus (0 disables it).
    """

    distribution: str = "mean_variance"
    probit: str = "normal"
    n_atoms: int = 10
    atom_min: float = 0.0
    atom_max: float = 1.0
    entropy_coef: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.distribution not in ("mean_variance", "categorical"):
            raise ValueError(f"DPLConfig.distribution must be 'mean_variance' or 'categorical', "
                             f"got {self.distribution!r}")
        if self.probit not in ("normal", "logistic"):
            raise ValueError(f"DPLConfig.probit must be 'normal' or 'logistic', got {self.probit!r}")
        if self.n_atoms < 2:
            raise ValueError(f"DPLConfig.n_atoms must be >= 2, got {self.n_atoms}")
        if not self.atom_min < self.atom_max:
            raise ValueError(f"DPLConfig needs atom_min < atom_max, got {self.atom_min}, {self.atom_max}")
        if self.entropy_coef < 0:
            raise ValueError(f"DPLConfig.entropy_coef must be >= 0, got {self.entropy_coef}")


class DPLRewardModel(RewardModel):
    """Distributional reward; ``reward`` is the expected reward, ``reward_distribution`` the rest."""

    name = "dpl"
    uses_latent = False
    config_class = DPLConfig

    def __init__(self, config: DPLConfig):
        super().__init__(config)
        out = 2 if config.distribution == "mean_variance" else config.n_atoms
        self.net = MLP(config.option_dim, out, config.hidden, config.activation)
        self.register_buffer("atoms", torch.linspace(config.atom_min, config.atom_max, config.n_atoms),
                             persistent=False)

    @property
    def categorical(self) -> bool:
        return self.config.distribution == "categorical"

    def reward_distribution(self, options: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean–variance: (μ, σ²), each (B, N). Categorical: (logits (B, N, K), atoms (K,))."""
        out = self.net(options)
        if self.categorical:
            return out, self.atoms
        mean, log_std = out.unbind(-1)
        return mean, torch.exp(2 * log_std.clamp(MIN_LOG_STD, MAX_LOG_STD))

    def reward(self, options: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        first, second = self.reward_distribution(options)
        if self.categorical:
            return (first.softmax(-1) * second).sum(-1)
        return first

    def _prob(self, da, db) -> torch.Tensor:
        if self.categorical:
            return categorical_preference_prob(da[0].softmax(-1), db[0].softmax(-1))
        return meanvar_preference_prob(da[0], da[1], db[0], db[1], approx=self.config.probit)

    def preference_prob(self, a: torch.Tensor, b: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        return self._prob(self.reward_distribution(a), self.reward_distribution(b))

    def pairwise_prob(self, options: torch.Tensor, others: torch.Tensor,
                      z: Latent | None = None) -> torch.Tensor:
        da, db = self.reward_distribution(options), self.reward_distribution(others)
        if self.categorical:
            return categorical_preference_prob(da[0].softmax(-1).unsqueeze(2), db[0].softmax(-1).unsqueeze(1))
        return meanvar_preference_prob(da[0].unsqueeze(2), da[1].unsqueeze(2), db[0].unsqueeze(1),
                                       db[1].unsqueeze(1), approx=self.config.probit)

    def forward(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        T = batch.target_chosen.shape[1]
        first, second = self.reward_distribution(torch.cat([batch.target_chosen, batch.target_rejected], 1))
        mask = batch.target_mask
        if self.categorical:
            lc, lr = first.split(T, dim=1)
            loss = dpl_categorical_nll(lc, lr, mask, entropy_coef=self.config.entropy_coef)
            p = categorical_preference_prob(lc.softmax(-1), lr.softmax(-1))
        else:
            (mc, mr), (vc, vr) = first.split(T, dim=1), second.split(T, dim=1)
            loss = dpl_meanvar_nll(mc, vc, mr, vr, mask, approx=self.config.probit)
            p = meanvar_preference_prob(mc, vc, mr, vr, approx=self.config.probit)
        return loss, self._metrics(loss, p, mask)
