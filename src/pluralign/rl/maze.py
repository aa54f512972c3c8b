"""Maze geometry for Maze-Navigation (VPL §4, App. E): the cell map, cell <-> position, and the
shortest-path ("geodesic") distance users rank states by.

Pure NumPy/SciPy, no MuJoCo: labels, relabelling and the maze picture need only the map. The
coordinates follow gymnasium-robotics' maze (``cell_rowcol_to_xy``): cell (i, j) has its centre
at x = (j + 0.5)·s − W·s/2, y = H·s/2 − (i + 0.5)·s, for a W x H map with cell size s.

A user prefers the state closer to their goal by shortest path *through the maze* (App. E: "the
shortest path to the goal from each state"), not by straight line, which would rank a state
behind a wall as close. :class:`GeodesicField` computes it by Dijkstra on a grid of ``res`` x
``res`` sub-cells per cell (odd, so a cell centre is a sub-cell centre) (8-connected; a diagonal step needs both side sub-cells free, so paths
never cut a wall's corner), plus the straight segment from the state to its sub-cell centre.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: gymnasium-robotics ``maps.MEDIUM_MAZE`` (D4RL maze2d-medium), 1 = wall, 0 = free
MEDIUM_MAZE = (
    (1, 1, 1, 1, 1, 1, 1, 1),
    (1, 0, 0, 1, 1, 0, 0, 1),
    (1, 0, 0, 1, 0, 0, 0, 1),
    (1, 1, 0, 0, 0, 1, 1, 1),
    (1, 0, 0, 1, 0, 0, 0, 1),
    (1, 0, 1, 0, 0, 1, 0, 1),
    (1, 0, 0, 0, 1, 0, 0, 1),
    (1, 1, 1, 1, 1, 1, 1, 1),
)
#: gymnasium-robotics ``maps.U_MAZE``
U_MAZE = (
    (1, 1, 1, 1, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 0, 1),
    (1, 0, 0, 0, 1),
    (1, 1, 1, 1, 1),
)
MAZES = {"medium": MEDIUM_MAZE, "umaze": U_MAZE}
#: the gymnasium-robotics environment each named maze comes from
ENV_IDS = {"medium": "PointMaze_Medium-v3", "umaze": "PointMaze_UMaze-v3"}


class MazeError(ValueError):
    """A maze map, cell or position that is not usable (outside the map, in a wall, ...)."""


@dataclass(frozen=True)
class Maze:
    """A maze map (rows of 0 = free, 1 = wall) with cell size ``scale``."""

    name: str
    grid: np.ndarray = field(repr=False)
    scale: float = 1.0

    @classmethod
    def named(cls, name: str) -> "Maze":
        if name not in MAZES:
            raise MazeError(f"unknown maze {name!r}; known: {sorted(MAZES)}")
        return cls.from_map(MAZES[name], name=name)

    @classmethod
    def from_map(cls, rows: Sequence[Sequence[int]], name: str = "custom", scale: float = 1.0) -> "Maze":
        grid = np.asarray(rows)
        if grid.ndim != 2 or grid.size == 0 or not np.isin(grid, (0, 1)).all():
            raise MazeError(f"maze {name!r}: the map must be a non-empty 2-D grid of 0 (free) and 1 (wall)")
        if not (grid == 0).any():
            raise MazeError(f"maze {name!r} has no free cell")
        return cls(name, grid.astype(np.int8), float(scale))

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape  # (rows, cols)

    def free_cells(self) -> list[tuple[int, int]]:
        return [tuple(map(int, c)) for c in np.argwhere(self.grid == 0)]

    def check_cell(self, cell: Sequence[int], what: str = "cell") -> tuple[int, int]:
        """``cell`` as (row, col), or a :class:`MazeError` if it is outside the map or a wall."""
        i, j = (int(c) for c in cell)
        rows, cols = self.shape
        if not (0 <= i < rows and 0 <= j < cols):
            raise MazeError(f"{what} {(i, j)} is outside the {rows}x{cols} map of maze {self.name!r}")
        if self.grid[i, j]:
            raise MazeError(f"{what} {(i, j)} is a wall in maze {self.name!r}; free cells: {self.free_cells()}")
        return i, j

    def cell_to_xy(self, cells: np.ndarray) -> np.ndarray:
        """Cell (row, col) -> position of its centre, (..., 2) -> (..., 2)."""
        cells = np.asarray(cells, dtype=float)
        rows, cols = self.shape
        x = (cells[..., 1] + 0.5) * self.scale - cols * self.scale / 2
        y = rows * self.scale / 2 - (cells[..., 0] + 0.5) * self.scale
        return np.stack([x, y], -1)

    def xy_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """Position -> the (row, col) containing it (may be outside the map), (..., 2) -> (..., 2)."""
        xy = np.asarray(xy, dtype=float)
        rows, cols = self.shape
        i = np.floor((rows * self.scale / 2 - xy[..., 1]) / self.scale)
        j = np.floor((xy[..., 0] + cols * self.scale / 2) / self.scale)
        return np.stack([i, j], -1).astype(int)

    def cell_distances(self, goal: Sequence[int]) -> np.ndarray:
        """Steps between free cells (4-neighbour BFS) from ``goal`` to every cell; inf at walls
        and unreachable cells. The coarse version of :class:`GeodesicField`, easy to check by hand."""
        start = self.check_cell(goal, "goal cell")
        dist = np.full(self.shape, np.inf)
        dist[start] = 0
        queue = deque([start])
        while queue:
            i, j = queue.popleft()
            for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                n = (i + di, j + dj)
                if (0 <= n[0] < self.shape[0] and 0 <= n[1] < self.shape[1] and not self.grid[n]
                        and dist[n] == np.inf):
                    dist[n] = dist[i, j] + 1
                    queue.append(n)
        return dist


class GeodesicField:
    """Shortest-path distance through ``maze`` from the centre of ``goal_cell`` to any position."""

    def __init__(self, maze: Maze, goal_cell: Sequence[int], res: int = 5):
        from scipy.ndimage import distance_transform_edt
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import dijkstra

        if res < 1:
            raise MazeError(f"res must be >= 1, got {res}")
        self.maze, self.res = maze, int(res)
        self.goal_cell = maze.check_cell(goal_cell, "goal cell")
        self.goal_xy = maze.cell_to_xy(np.array(self.goal_cell))
        free = np.kron(maze.grid == 0, np.ones((res, res), dtype=bool))  # sub-cell grid
        self.sub = maze.scale / res
        rows, cols = free.shape
        idx = np.arange(rows * cols).reshape(rows, cols)
        pad = np.pad(free, 1)  # a wall border: neighbours outside the map are never free
        src, dst, cost = [], [], []
        for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
            ok = free & pad[1 + di:1 + di + rows, 1 + dj:1 + dj + cols]  # (i, j) and (i+di, j+dj)
            if di and dj:  # no corner cutting: both orthogonal neighbours must be free too
                ok &= pad[1 + di:1 + di + rows, 1:1 + cols] & pad[1:1 + rows, 1 + dj:1 + dj + cols]
            a = idx[ok]
            b = a + di * cols + dj
            src += [a, b]
            dst += [b, a]
            cost += [np.full(2 * len(a), np.hypot(di, dj) * self.sub)]
        graph = coo_matrix((np.concatenate(cost), (np.concatenate(src), np.concatenate(dst))),
                           shape=(rows * cols, rows * cols)).tocsr()
        gi, gj = self.goal_cell
        goal_sub = (gi * res + res // 2, gj * res + res // 2)
        centre = self._sub_xy(np.array(goal_sub))
        dist = dijkstra(graph, indices=idx[goal_sub]).reshape(rows, cols)
        dist = dist + np.linalg.norm(centre - self.goal_xy) * np.isfinite(dist)
        # positions a hair inside a wall (the ball touches it) read the nearest free sub-cell
        _, (ni, nj) = distance_transform_edt(~free, return_indices=True)
        self.table = dist[ni, nj]
        self.nearest = np.stack([ni, nj], -1)

    def _sub_xy(self, sub: np.ndarray) -> np.ndarray:
        rows, cols = self.maze.shape
        s = self.maze.scale
        x = (sub[..., 1] + 0.5) * self.sub - cols * s / 2
        y = rows * s / 2 - (sub[..., 0] + 0.5) * self.sub
        return np.stack([x, y], -1)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Geodesic distance of positions (..., 2) (extra columns such as velocity are ignored)."""
        xy = np.asarray(xy, dtype=float)[..., :2]
        rows, cols = self.table.shape
        s = self.maze.scale
        i = np.clip(np.floor((self.maze.shape[0] * s / 2 - xy[..., 1]) / self.sub).astype(int), 0, rows - 1)
        j = np.clip(np.floor((xy[..., 0] + self.maze.shape[1] * s / 2) / self.sub).astype(int), 0, cols - 1)
        near = self.nearest[i, j]
        return self.table[i, j] + np.linalg.norm(xy - self._sub_xy(near), axis=-1)


def spread_goals(maze: Maze, k: int, first: Sequence[int] | None = None, res: int = 2) -> list[tuple[int, int]]:
    """``k`` goal cells spread over the maze: farthest-point sampling by geodesic distance,
    starting at ``first`` (default: the first free cell). Deterministic, so every run and the
    picture use the same goals."""
    cells = maze.free_cells()
    if not 1 <= k <= len(cells):
        raise MazeError(f"maze {maze.name!r} has {len(cells)} free cells; cannot place {k} goals")
    goals = [maze.check_cell(first, "goal cell") if first is not None else cells[0]]
    best = np.full(len(cells), np.inf)
    centres = maze.cell_to_xy(np.array(cells))
    while len(goals) < k:
        best = np.minimum(best, GeodesicField(maze, goals[-1], res)(centres))
        goals.append(cells[int(np.argmax(best))])
    return goals
