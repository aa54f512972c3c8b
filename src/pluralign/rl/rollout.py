"""Test-time control (VPL §4, App. E): a new user answers a few queries, the reward model's
encoder turns the answers into z, and the z-conditioned policy drives the ball from a random
start; success is reaching within ``radius`` of the user's goal before ``horizon`` steps
(gymnasium-robotics counts 0.45 as reached).

Queries are random pairs of dataset states (the active-selection API, issue 12, was not on
``main`` when this was written). z is the posterior *mean* for VPL (``model.eval()``; the one
place it is computed is ``VPLRewardModel.latent``) and the encoder's output for NP-BTL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..rewards.base import RewardModel
from .env import MazeSim
from .maze import GeodesicField, Maze
from .users import answer


@dataclass
class Episodes:
    """B test episodes: each a user (goal index) with a start position."""

    goal_index: np.ndarray  # (B,)
    starts: np.ndarray  # (B, 2)


def test_episodes(maze: Maze, fields: list[GeodesicField], per_goal: int, seed: int,
                  min_distance: float = 1.0) -> Episodes:
    """``per_goal`` episodes per goal, starting in random free cells (uniform within ±0.25 of the
    centre) at least ``min_distance`` from the goal. The same for every model."""
    rng = np.random.default_rng(seed)
    free = np.array(maze.free_cells())
    goals, starts = [], []
    for k, field in enumerate(fields):
        while sum(g == k for g in goals) < per_goal:
            xy = maze.cell_to_xy(free[rng.integers(len(free))]) + rng.uniform(-0.25, 0.25, 2) * maze.scale
            if field(xy) >= min_distance:
                goals.append(k)
                starts.append(xy)
    return Episodes(np.array(goals), np.array(starts))


def user_latents(model: RewardModel, episodes: Episodes, fields: list[GeodesicField], pool: np.ndarray,
                 n_queries: int, noise: float, seed: int) -> np.ndarray:
    """z (B, L) of each episode's user after answering ``n_queries`` random pairs of ``pool``
    states (ties redrawn; labels flipped with probability ``noise``)."""
    rng = np.random.default_rng(seed)
    dim = pool.shape[1]
    b = len(episodes.goal_index)
    chosen = np.zeros((b, n_queries, dim), np.float32)
    rejected = np.zeros_like(chosen)
    for i, k in enumerate(episodes.goal_index):
        c, r = np.zeros((0, dim)), np.zeros((0, dim))
        while len(c) < n_queries:
            idx = rng.integers(len(pool), size=(n_queries, 2))
            c2, r2 = answer(pool[idx[:, 0]], pool[idx[:, 1]], fields[k], noise, rng)
            c, r = np.concatenate([c, c2]), np.concatenate([r, r2])
        chosen[i], rejected[i] = c[:n_queries], r[:n_queries]
    model.eval()
    with torch.no_grad():
        z = model.personalize(torch.from_numpy(chosen), torch.from_numpy(rejected),
                              torch.ones(b, n_queries, dtype=torch.bool))
        if isinstance(z, torch.distributions.Normal):
            z = model.latent(z)  # the posterior mean in eval mode
    return z.numpy().astype(np.float32)


def rollout(policy, z: np.ndarray, sim: MazeSim, episodes: Episodes, goals_xy: np.ndarray,
            horizon: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Run ``policy`` (``act(states, z)``) from each start -> (success (B,), paths (B, T+1, 2)).
    ``sim`` must hold B balls."""
    obs = sim.reset(episodes.starts)
    target = goals_xy[episodes.goal_index]
    paths = [obs[:, :2].copy()]
    reached = np.linalg.norm(obs[:, :2] - target, axis=1) <= radius
    for _ in range(horizon):
        obs = sim.step(policy.act(obs, z))
        paths.append(obs[:, :2].copy())
        reached |= np.linalg.norm(obs[:, :2] - target, axis=1) <= radius
    return reached, np.stack(paths, 1)
