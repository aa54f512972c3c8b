"""BTL: one reward for everybody, r(y) = MLP(y), Bradley–Terry likelihood (NP paper eq. 1-2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.tasks import TaskBatch
from ..losses import bt_nll
from ..nn import MLP
from .base import Latent, RewardConfig, RewardModel


@dataclass
class BTLConfig(RewardConfig):
    """BTL reward model: an MLP from an option's D features to a scalar."""


class BTLRewardModel(RewardModel):
    """r(y) = MLP(y); z is ignored (the baseline averages every user into one reward)."""

    name = "btl"
    uses_latent = False
    config_class = BTLConfig

    def __init__(self, config: BTLConfig):
        super().__init__(config)
        self.net = MLP(config.option_dim, 1, config.hidden, config.activation)

    def reward(self, options: torch.Tensor, z: Latent | None = None) -> torch.Tensor:
        return self.net(options).squeeze(-1)

    def forward(self, batch: TaskBatch) -> tuple[torch.Tensor, dict[str, float]]:
        r = self.reward(torch.cat([batch.target_chosen, batch.target_rejected], dim=1))
        rc, rr = r.split(batch.target_chosen.shape[1], dim=1)
        loss = bt_nll(rc, rr, batch.target_mask)
        return loss, self._metrics(loss, torch.sigmoid(rc - rr), batch.target_mask)
