"""The offline Maze-Navigation dataset: generated locally the way D4RL's maze2d was, saved as
safetensors + a JSON manifest (VPL App. E: "collected using the waypoint controllers provided
in the D4RL benchmark").

Generation: balls start in random free cells; a waypoint controller drives each to a random
goal cell along the cell-graph shortest path (D4RL ``WaypointController``: force =
p·(waypoint − position) − d·velocity, plus Gaussian noise), and picks a new random goal on
arrival, so the stream covers the maze with reward-free, goal-agnostic behaviour. The stream is
cut into episodes of ``episode_len`` steps (Alg. 2 samples one z per episode).

Format (``<dir>/data.safetensors`` + ``<dir>/manifest.json``): tensors ``observations``
(N, 4) float32 = (x, y, vx, vy), ``actions`` (N, 2) float32 in [-1, 1], ``next_observations``
(N, 4); N = n_episodes · episode_len, episode e is rows [e·L, (e+1)·L). The manifest records
``format``, ``env`` (gymnasium-robotics id), ``maze`` (name and map), the sizes and every
generation setting. Minari was not used: it would add a dependency for what two files do.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .maze import ENV_IDS, Maze

if TYPE_CHECKING:
    from .config import RLBenchConfig

FORMAT = "pluralign-maze-dataset/1"
TENSORS = ("observations", "actions", "next_observations")


class DatasetError(ValueError):
    """A dataset file that is missing, malformed or from another environment."""


@dataclass
class MazeDataConfig:
    """n_episodes x episode_len steps from n_balls balls stepped together; p_gain / d_gain /
    noise: the waypoint controller (D4RL maze2d: 10, 1, Gaussian action noise). action_repeat:
    physics steps (0.01 s) per recorded step; a policy must act at the same rate."""

    maze: str = "medium"
    n_episodes: int = 200
    episode_len: int = 200
    n_balls: int = 10
    p_gain: float = 10.0
    d_gain: float = 1.0
    noise: float = 0.5
    action_repeat: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.n_episodes, self.episode_len, self.n_balls, self.action_repeat) < 1:
            raise ValueError("MazeDataConfig: n_episodes, episode_len, n_balls and action_repeat must be >= 1")
        if self.noise < 0:
            raise ValueError(f"MazeDataConfig.noise must be >= 0, got {self.noise}")


@dataclass
class MazeDataset:
    """An offline dataset: the arrays, the maze and how it was made."""

    observations: np.ndarray
    actions: np.ndarray
    next_observations: np.ndarray
    maze: Maze
    config: MazeDataConfig

    @property
    def episode_len(self) -> int:
        return self.config.episode_len

    @property
    def n_episodes(self) -> int:
        return len(self.observations) // self.episode_len

    def episodes(self, array: np.ndarray) -> np.ndarray:
        """(N, ...) -> (episodes, episode_len, ...)."""
        return array.reshape(self.n_episodes, self.episode_len, *array.shape[1:])


def _next_cell(maze: Maze, cell: tuple[int, int], goal: tuple[int, int], cache: dict) -> tuple[int, int]:
    """The neighbour of ``cell`` one step closer to ``goal`` (cell-graph BFS, cached per goal)."""
    if goal not in cache:
        cache[goal] = maze.cell_distances(goal)
    dist = cache[goal]
    i, j = cell
    best = (dist[i, j], cell)
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        n = (i + di, j + dj)
        if 0 <= n[0] < maze.shape[0] and 0 <= n[1] < maze.shape[1] and dist[n] < best[0]:
            best = (dist[n], n)
    return best[1]


def generate(config: MazeDataConfig) -> MazeDataset:
    """Drive ``config.n_balls`` balls with the noisy waypoint controller (module docstring)."""
    from .env import MazeSim

    maze = Maze.named(config.maze)
    rng = np.random.default_rng(config.seed)
    free = maze.free_cells()
    n = config.n_balls
    sim = MazeSim(maze, n, config.action_repeat)
    runs = -(-config.n_episodes // n)  # episodes per ball
    steps = runs * config.episode_len
    obs = np.zeros((steps + 1, n, 4), np.float32)
    act = np.zeros((steps, n, 2), np.float32)
    start = maze.cell_to_xy(np.array([free[i] for i in rng.integers(len(free), size=n)]))
    obs[0] = sim.reset(start + rng.uniform(-0.25, 0.25, (n, 2)) * maze.scale)
    goals = [free[i] for i in rng.integers(len(free), size=n)]
    cache: dict = {}
    for t in range(steps):
        pos, vel = obs[t, :, :2], obs[t, :, 2:]
        cells = maze.xy_to_cell(pos)
        target = np.zeros((n, 2))
        for b in range(n):
            cell = tuple(int(c) for c in cells[b])
            if not (0 <= cell[0] < maze.shape[0] and 0 <= cell[1] < maze.shape[1]) or maze.grid[cell]:
                cell = min(free, key=lambda c: np.linalg.norm(maze.cell_to_xy(np.array(c)) - pos[b]))
            if cell == goals[b] and np.linalg.norm(maze.cell_to_xy(np.array(cell)) - pos[b]) < 0.3 * maze.scale:
                goals[b] = free[rng.integers(len(free))]  # arrived: a new random goal
            target[b] = maze.cell_to_xy(np.array(_next_cell(maze, cell, goals[b], cache)))
        a = config.p_gain * (target - pos) - config.d_gain * vel + rng.normal(0, config.noise, (n, 2))
        act[t] = np.clip(a, -1, 1)
        obs[t + 1] = sim.step(act[t])
    # ball-major order, so each ball's stream is contiguous and cuts into episodes
    o = obs[:-1].transpose(1, 0, 2).reshape(-1, 4)
    o2 = obs[1:].transpose(1, 0, 2).reshape(-1, 4)
    a = act.transpose(1, 0, 2).reshape(-1, 2)
    keep = config.n_episodes * config.episode_len
    return MazeDataset(o[:keep], a[:keep], o2[:keep], maze, config)


def save(dataset: MazeDataset, directory: str | os.PathLike) -> Path:
    """Write ``data.safetensors`` + ``manifest.json`` to ``directory``."""
    from safetensors.numpy import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(getattr(dataset, k)) for k in TENSORS}, str(out / "data.safetensors"))
    manifest = {"format": FORMAT, "env": ENV_IDS.get(dataset.maze.name, "custom"),
                "maze": {"name": dataset.maze.name, "map": dataset.maze.grid.tolist(),
                         "scale": dataset.maze.scale},
                "observation_fields": ["x", "y", "vx", "vy"], "action_fields": ["fx", "fy"],
                "n_steps": int(len(dataset.observations)), "n_episodes": dataset.n_episodes,
                "episode_len": dataset.episode_len, "generation": asdict(dataset.config)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def load(directory: str | os.PathLike, maze: str | None = None) -> MazeDataset:
    """Read a dataset written by :func:`save`; ``maze``: the maze it must be from."""
    from safetensors.numpy import load_file

    d = Path(directory)
    man_path = d / "manifest.json"
    if not man_path.is_file():
        raise DatasetError(f"{d}: no manifest.json (not a pluralign maze dataset)")
    try:
        man = json.loads(man_path.read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{man_path}: line {err.lineno}: not JSON ({err.msg})") from None
    if man.get("format") != FORMAT:
        raise DatasetError(f"{man_path}: field 'format' is {man.get('format')!r}, expected {FORMAT!r}")
    if maze is not None and (man.get("maze", {}).get("name") != maze or man.get("env") != ENV_IDS.get(maze)):
        raise DatasetError(f"{man_path}: field 'env' is {man.get('env')!r} (maze "
                           f"{man.get('maze', {}).get('name')!r}), but maze {maze!r} "
                           f"({ENV_IDS.get(maze)}) was asked for")
    arrays = load_file(str(d / "data.safetensors"))
    for k, width in zip(TENSORS, (4, 2, 4)):
        if k not in arrays or arrays[k].ndim != 2 or arrays[k].shape != (man["n_steps"], width):
            raise DatasetError(f"{d / 'data.safetensors'}: tensor {k!r} missing or not "
                               f"({man['n_steps']}, {width})")
    gen = man["generation"]
    mz = man["maze"]
    return MazeDataset(arrays["observations"], arrays["actions"], arrays["next_observations"],
                       Maze.from_map(mz["map"], mz["name"], mz["scale"]), MazeDataConfig(**gen))


def get_dataset(cfg: RLBenchConfig, out: Path, dataset_dir: Path | None = None) -> MazeDataset:
    """The dataset of a ``pluralign rl bench`` run (``cfg.data``, ``cfg.maze``): the given one (checked
    to be from this maze), the one saved in ``out/dataset`` by an earlier run with the same
    settings, or a new one."""
    if dataset_dir is not None:
        return load(dataset_dir, cfg.maze)
    path = out / "dataset"
    if (path / "manifest.json").is_file():
        ds = load(path, cfg.maze)
        if asdict(ds.config) == asdict(cfg.data):
            return ds
    ds = generate(cfg.data)
    save(ds, path)
    return ds
