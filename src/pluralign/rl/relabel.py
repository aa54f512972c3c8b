"""Relabelling the reward-free offline dataset with a learned latent-conditioned reward
(VPL Algorithms 2 and 3, App. D.3).

For each episode τ_e a latent z_e is drawn (from the prior p(z) in the paper) and every state of
the episode gets r_t = reward(s_t, z_e) (Alg. 2; ``next_state=True`` uses s_{t+1}, the
alternative the algorithm notes). The reward is scaled one of four ways (App. D.3):

- ``none``: the raw Bradley–Terry reward r(s, z) (VPL_no-norm).
- ``spo``: r(s, z) = mean_{s' ∈ C} p(s ≻ s' | z) over a comparison set C drawn from the dataset
  (Alg. 3, VPL + SPO) — probabilities are on the same [0, 1] scale for every z.
- ``batchnorm``: r(s, z) / (1/|C| Σ_{s' ∈ C} r(s', z)) — each latent's rewards divided by their
  mean over the comparison states (VPL_batchnorm; biased, as the paper finds).
- ``maxnorm``: r(s, z) / max |r| over every (s, z) of the relabelled dataset (VPL_max-norm).

Models without a latent (BTL, DPL) take z of width 0 and give every episode the same reward.

:func:`progress_rewards` gives the bench's default per-step reward, the *progress*
r(s_{t+1}, z) − r(s_t, z). It equals (1 − γ)·r(s_{t+1}, z) + [γ·Φ(s_{t+1}) − Φ(s_t)] with
Φ = r(·, z): Alg. 2's next-state reward scaled by (1 − γ) plus a potential-based shaping term,
which leaves the optimal policy of every z unchanged (Ng, Harada & Russell 1999) and scales all
advantages by (1 − γ). What it changes is what the critic has to fit: Q(s, a) loses the large
state-only part r(s, z)/(1 − γ), keeping the small part the action decides, which a few
thousand IQL steps can then resolve (docs/rl.md, "Tuning record").
"""

from __future__ import annotations

import numpy as np
import torch

from ..rewards.base import RewardModel
from ..rewards.spo import spo_scaled_reward

SCALINGS = ("none", "spo", "batchnorm", "maxnorm")


def batch_norm(raw: torch.Tensor, comparison_raw: torch.Tensor) -> torch.Tensor:
    """(E, T) rewards divided per latent by the mean of (E, M) comparison rewards (App. D.3)."""
    return raw / comparison_raw.mean(dim=1, keepdim=True)


def max_norm(raw: torch.Tensor) -> torch.Tensor:
    """Rewards divided by the largest |reward| anywhere in them (App. D.3)."""
    top = raw.abs().max()
    return raw / top if top > 0 else raw


@torch.no_grad()
def relabel(model: RewardModel, episodes: torch.Tensor, z: torch.Tensor, scaling: str = "none",
            comparison: torch.Tensor | None = None, chunk: int = 32) -> torch.Tensor:
    """Rewards (E, T) for episodes of states (E, T, D), episode e scored with z[e] (E, L).

    ``comparison`` (M, D) is needed for ``spo`` and ``batchnorm``. ``model`` must score states of
    the episodes' width (its ``config.option_dim``)."""
    if scaling not in SCALINGS:
        raise ValueError(f"unknown reward scaling {scaling!r}; choose one of {SCALINGS}")
    dim = getattr(getattr(model, "config", None), "option_dim", episodes.shape[-1])
    if episodes.dim() != 3 or episodes.shape[-1] != dim:
        raise ValueError(f"the reward model was trained on states of size {dim}, but the episodes "
                         f"are {tuple(episodes.shape)} (episodes, steps, state size)")
    if z.shape[0] != episodes.shape[0]:
        raise ValueError(f"one z per episode: got {z.shape[0]} for {episodes.shape[0]} episodes")
    if scaling in ("spo", "batchnorm") and (comparison is None or len(comparison) == 0):
        raise ValueError(f"reward scaling {scaling!r} needs a comparison set of states")
    model = model.eval()
    out = []
    for s in range(0, episodes.shape[0], chunk):
        states, zs = episodes[s:s + chunk], z[s:s + chunk]
        if scaling == "spo":  # Alg. 3
            out.append(spo_scaled_reward(model, states, comparison, zs))
            continue
        raw = model.reward(states, zs)  # Alg. 2
        if scaling == "batchnorm":
            comp = model.reward(comparison.unsqueeze(0).expand(len(states), -1, -1), zs)
            raw = batch_norm(raw, comp)
        out.append(raw)
    rewards = torch.cat(out)
    return max_norm(rewards) if scaling == "maxnorm" else rewards


def oracle_rewards(distances: np.ndarray, max_distance: float) -> np.ndarray:
    """The goal-conditioned oracle's true reward: 1 − d/d_max for shortest-path distance d to
    the goal, in [0, 1] like SPO's (the paper's oracle uses D4RL's optimal value)."""
    return 1.0 - np.asarray(distances) / max_distance


def progress_rewards(model: RewardModel, episodes: torch.Tensor, next_episodes: torch.Tensor, z: torch.Tensor,
                     scaling: str = "none", comparison: torch.Tensor | None = None) -> torch.Tensor:
    """r(s_{t+1}, z) − r(s_t, z) (module docstring) for states and next states (E, T, D) each,
    both scaled together (one max for ``maxnorm``) -> (E, T)."""
    if episodes.shape != next_episodes.shape:
        raise ValueError(f"states and next states differ in shape: {tuple(episodes.shape)} vs "
                         f"{tuple(next_episodes.shape)}")
    t = episodes.shape[1]
    both = relabel(model, torch.cat([episodes, next_episodes], dim=1), z, scaling, comparison)
    return both[:, t:] - both[:, :t]
