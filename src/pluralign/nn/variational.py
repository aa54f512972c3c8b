"""Variational head: features -> a diagonal Gaussian q(z | context) (VPL §3, eq. 2)."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal


class GaussianHead(nn.Module):
    """Linear map to (mean, log-variance) of a diagonal Gaussian over ``z_dim`` latents.

    The log-variance is clamped to ``[min_logvar, max_logvar]`` so a few bad steps cannot make
    the posterior degenerate (std = 0 or inf) and the KL NaN.

    forward(h (..., in_dim)) -> ``torch.distributions.Normal`` with batch shape (..., z_dim).
    """

    def __init__(self, in_dim: int, z_dim: int, min_logvar: float = -12.0, max_logvar: float = 8.0):
        super().__init__()
        if min_logvar >= max_logvar:
            raise ValueError(f"min_logvar ({min_logvar}) must be below max_logvar ({max_logvar})")
        self.z_dim, self.min_logvar, self.max_logvar = z_dim, min_logvar, max_logvar
        self.proj = nn.Linear(in_dim, 2 * z_dim)

    def params(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar), each (..., z_dim)."""
        mean, logvar = self.proj(h).chunk(2, dim=-1)
        return mean, logvar.clamp(self.min_logvar, self.max_logvar)

    def forward(self, h: torch.Tensor) -> Normal:
        mean, logvar = self.params(h)
        return Normal(mean, torch.exp(0.5 * logvar))
