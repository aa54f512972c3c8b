"""Latent-conditioned reward decoder r(y | z) = MLP2([MLP1(e(y)) ‖ z]) (NP paper App. C, eq. 22).

Shared by NP-BTL (deterministic z) and VPL (z drawn from q(z | context)).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .mlp import MLP


class ConditionedRewardDecoder(nn.Module):
    """Scalar reward of every option, conditioned on one z per row.

    Args:
        option_dim: D; z_dim: size of z (0 gives an unconditioned reward MLP2(MLP1(y))).
        embed_dim: width of MLP1's output e_y (NP paper: 256).

    forward(options (B, N, D), z (B, z_dim)) -> (B, N).
    """

    def __init__(self, option_dim: int, z_dim: int, embed_dim: int = 256,
                 hidden: Sequence[int] = (256, 256), act: str = "gelu"):
        super().__init__()
        self.option_dim, self.z_dim = option_dim, z_dim
        self.embed = MLP(option_dim, embed_dim, hidden, act)
        self.head = MLP(embed_dim + z_dim, 1, hidden, act)

    def forward(self, options: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if options.dim() != 3 or options.shape[-1] != self.option_dim:
            raise ValueError(f"options must be (B, N, {self.option_dim}), got {tuple(options.shape)}")
        if z.shape != (options.shape[0], self.z_dim):
            raise ValueError(f"z must be ({options.shape[0]}, {self.z_dim}), got {tuple(z.shape)}")
        e = self.embed(options)  # (B, N, embed_dim)
        zz = z.unsqueeze(1).expand(-1, options.shape[1], -1)
        return self.head(torch.cat([e, zz], dim=-1)).squeeze(-1)
