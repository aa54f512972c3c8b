"""SPO-scaled rewards (VPL App. A, Algorithm 3): r(s, z) = mean_{s' ∈ C} P(s ≻ s' | z).

Raw Bradley–Terry rewards have an arbitrary scale per z (only differences are identified), so
rewards of different users cannot be compared or mixed. The preference probability is scaled
the same for every z, and its mean against a fixed comparison set C lies in [0, 1].
"""

from __future__ import annotations

import torch

from .base import Latent, RewardModel


def spo_scaled_reward(model: RewardModel, options: torch.Tensor, comparison: torch.Tensor,
                      z: Latent | None = None, chunk_size: int = 1024) -> torch.Tensor:
    """Mean probability that each option beats the comparison set, for each user.

    Args:
        model: any reward model (uses its ``pairwise_prob``).
        options: (B, N, D) options to score.
        comparison: (M, D) comparison set shared by all users, or (B, M, D) per user.
        z: user representations from ``model.personalize`` (batch B).
        chunk_size: comparison options per chunk (bounds memory at B·N·chunk).

    Returns (B, N) in [0, 1].
    """
    if comparison.dim() == 2:
        comparison = comparison.unsqueeze(0).expand(options.shape[0], -1, -1)
    if comparison.dim() != 3 or comparison.shape[0] != options.shape[0] or comparison.shape[1] == 0:
        raise ValueError(f"comparison must be (M, D) or (B, M, D) with M >= 1, got "
                         f"{tuple(comparison.shape)} for options {tuple(options.shape)}")
    if isinstance(z, torch.distributions.Normal) and hasattr(model, "latent"):
        z = model.latent(z)  # fix z once: every chunk must score the same user
    total = options.new_zeros(options.shape[:2])
    for start in range(0, comparison.shape[1], chunk_size):
        total = total + model.pairwise_prob(options, comparison[:, start:start + chunk_size], z).sum(-1)
    return total / comparison.shape[1]
