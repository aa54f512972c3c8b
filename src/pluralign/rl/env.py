"""The PointMaze simulator (gymnasium-robotics, MuJoCo) stepped as a batch of balls.

gymnasium-robotics builds the MuJoCo model of a maze map (its ``PointMazeEnv``); the balls are
then stepped directly with ``mujoco.mj_step``, one ``MjData`` each, exactly as ``PointEnv.step``
does (action clipped to [-1, 1], velocity clipped to [-5, 5], one physics step of 0.01 s) but
with the action held for ``repeat`` physics steps (a decision every 0.01·repeat s: fewer, larger
steps make the offline RL problem shorter for the small IQL budget here), and
without the goal bookkeeping, which the users here do instead. Observations are
``(x, y, vx, vy)`` — the ball does not see any goal (VPL App. E).

MuJoCo and gymnasium-robotics are optional (the ``rl`` extra) and imported only here.
"""

from __future__ import annotations

import numpy as np

from .maze import Maze

EXTRA_HINT = "the RL features need MuJoCo, gymnasium-robotics and d3rlpy: pip install 'pluralign[rl]'"


class MissingRLDependency(ImportError):
    """An optional RL dependency is not installed."""


def require(module: str):
    """Import an optional RL dependency, or fail with the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingRLDependency(f"{module} is not installed ({err}); {EXTRA_HINT}") from None


class MazeSim:
    """``n`` point-mass balls in ``maze``, stepped together: ``reset(xy)``, ``step(actions)``."""

    obs_dim = 4
    action_dim = 2

    def __init__(self, maze: Maze, n: int = 1, repeat: int = 1):
        self.mujoco = require("mujoco")
        require("gymnasium_robotics")
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        self.maze, self.repeat = maze, repeat
        env = PointMazeEnv(maze_map=maze.grid.tolist(), continuing_task=True)
        if abs(env.maze.maze_size_scaling - maze.scale) > 1e-9:
            raise ValueError(f"gymnasium-robotics builds point mazes with cell size "
                             f"{env.maze.maze_size_scaling}, maze {maze.name!r} has {maze.scale}")
        self.model = env.point_env.model
        self.datas = [self.mujoco.MjData(self.model) for _ in range(n)]
        env.close()

    @property
    def n(self) -> int:
        return len(self.datas)

    def reset(self, xy: np.ndarray) -> np.ndarray:
        """Put ball b at rest at ``xy[b]`` -> observations (n, 4)."""
        xy = np.asarray(xy, dtype=float).reshape(self.n, 2)
        for d, p in zip(self.datas, xy):
            self.mujoco.mj_resetData(self.model, d)
            d.qpos[:2] = p
            self.mujoco.mj_forward(self.model, d)
        return self.observe()

    def step(self, actions: np.ndarray) -> np.ndarray:
        """Apply forces (n, 2) for ``repeat`` physics steps -> observations (n, 4)."""
        actions = np.clip(np.asarray(actions, dtype=float).reshape(self.n, 2), -1.0, 1.0)
        for d, a in zip(self.datas, actions):
            for _ in range(self.repeat):
                d.qvel[:] = np.clip(d.qvel, -5.0, 5.0)  # PointEnv._clip_velocity
                d.ctrl[:] = a
                self.mujoco.mj_step(self.model, d)
        return self.observe()

    def observe(self) -> np.ndarray:
        return np.stack([np.concatenate([d.qpos[:2], d.qvel[:2]]) for d in self.datas]).astype(np.float32)
