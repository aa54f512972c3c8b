"""Test-time control (VPL §4, App. E): a new user answers a few queries, the reward model's
encoder turns the answers into z, and the z-conditioned policy drives the ball from a random
start; success is reaching within ``radius`` of the user's goal before ``horizon`` steps
(gymnasium-robotics counts 0.45 as reached).

The queries (random or active) and z from their answers are :mod:`.queries`'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .env import MazeSim
from .maze import GeodesicField, Maze


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
