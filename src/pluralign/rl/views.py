"""What the maze's reward models see of a state (issue 14; docs/rl.md, "The reward models' view
of the state in the bench").

The paper's reward models read the observation (x, y, vx, vy) (VPL App. E), the view ``raw``.
A 2 x 128 MLP on it learns a reward that is smooth in position, while the users' geodesic
distance jumps at walls: next to the dead-end goal (6, 5) of the medium maze, states behind the
wall are six cells away and the learned reward peaks one cell off, at (6, 6): random state pairs
almost never compare the two (on seed 0, one of the goal's 4,000 training pairs). ``pcell`` gives
the model the position and a one-hot of the maze cell the ball is in, so a cell can take its own
level and the reward can jump at the wall between two cells; it knows the grid, not the walls or
the distances. The policy always sees the raw observation; only the reward models' input changes.
``pluralign rl bench`` reads ``pcell`` by default (chosen on the tuning seeds, docs/rl.md) and
keeps the paper's ``raw`` behind ``--state-view raw``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from .maze import Maze

STATE_VIEWS = ("raw", "pcell")

StateView = Callable[[np.ndarray], np.ndarray]


def state_view(name: str, maze: Maze) -> StateView:
    """The map (..., 4) observations -> (..., D) reward-model inputs named ``name``
    (module docstring): ``raw`` is the identity, ``pcell`` gives (x, y) and the one-hot of the
    free cell holding (x, y) (all zeros outside the free cells)."""
    if name == "raw":
        return lambda s: np.asarray(s, np.float32)
    if name != "pcell":
        raise ValueError(f"unknown state view {name!r}; choose one of {STATE_VIEWS}")
    free = maze.free_cells()
    index = np.full(maze.shape, len(free))  # walls and outside -> the dropped last column
    for n, cell in enumerate(free):
        index[cell] = n
    eye = np.eye(len(free) + 1, dtype=np.float32)[:, :-1]

    def pcell(states: np.ndarray) -> np.ndarray:
        states = np.asarray(states, np.float32)
        ij = maze.xy_to_cell(states[..., :2])
        inside = (ij >= 0).all(-1) & (ij < np.array(maze.shape)).all(-1)
        ij = np.where(inside[..., None], ij, 0)
        cell = np.where(inside, index[ij[..., 0], ij[..., 1]], len(free))
        return np.concatenate([states[..., :2], eye[cell]], -1)

    return pcell


def view_records(records: list, view: StateView) -> list:
    """Preference records over observations -> the same records over ``view(state)`` (users
    answer on the observations; the reward models read the view)."""
    return [dataclasses.replace(r, chosen=view(np.array(r.chosen)).tolist(),
                                rejected=view(np.array(r.rejected)).tolist()) for r in records]
