"""What one goal count K of ``pluralign rl bench`` fixes for every policy (VPL §4, App. D.2):
the goals, the users' labelled pairs as the reward models see them, the test episodes, SPO's
comparison set, the training contexts relabelling draws z from, and the test users' answers to
their queries (random or active, :mod:`.queries`). The bench (:mod:`.bench`) and the diagnostics
in benchmarks/ draw all of these from here, so they see the same users with the same seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .dataset import MazeDataset
from .maze import spread_goals
from .queries import Answers, active_answers, random_answers
from .users import goal_fields, preference_records
from .views import StateView, state_view, view_records

if TYPE_CHECKING:
    from ..active import ParticlePosterior
    from .config import RLBenchConfig


@dataclass
class GoalSetting:
    """What a goal count K fixes for every policy: the goals and their distance fields, the users'
    labelled pairs (as the reward models see them: through ``view``), the test episodes and the
    state pools test users' queries come from (observations)."""

    goals: list[tuple[int, int]]
    fields: list
    goals_xy: np.ndarray
    records: list
    test: Any
    pool: np.ndarray
    pool_pairs: tuple[np.ndarray, np.ndarray]
    view: StateView


def goal_setting(k: int, dataset: MazeDataset, cfg: RLBenchConfig) -> GoalSetting:
    """The bench's users, test episodes and query pools for K = ``k`` goals (seeds from ``cfg.seed``;
    the diagnostics in benchmarks/ use the same)."""
    from .rollout import test_episodes

    maze, states = dataset.maze, dataset.observations
    goals = spread_goals(maze, k)
    fields = goal_fields(maze, goals)
    # with a second round (cfg.refine_pairs, bench.second_round) the first holds the rest of the pairs
    records = preference_records(states, fields, cfg.n_users, cfg.pairs_per_user - cfg.refine_pairs, cfg.label_noise,
                                 seed=cfg.seed + 1, local=cfg.local_pairs, episode_len=dataset.episode_len,
                                 span=cfg.local_span)
    view = state_view(cfg.state_view, maze)
    if cfg.state_view != "raw":  # users answered on the observations; the models read the view
        records = view_records(records, view)
    test = test_episodes(maze, fields, cfg.eval_per_goal, seed=cfg.seed + 3)
    prng = np.random.default_rng(cfg.seed + 4)
    pool = states[prng.choice(len(states), 2000, replace=True)]
    pool_pairs = tuple(states[prng.choice(len(states), cfg.active_pool, replace=True)] for _ in range(2))
    return GoalSetting(goals, fields, maze.cell_to_xy(np.array(goals)), records, test, pool, pool_pairs, view)


def comparison_set(states: np.ndarray, cfg: RLBenchConfig) -> tuple[np.ndarray, np.random.Generator]:
    """SPO's comparison set (Alg. 3: ``cfg.comparison_size`` dataset states, no repeats) and the
    generator it came from, whose stream the bench goes on to use for relabelling; the diagnostics
    in benchmarks/ draw the same set this way."""
    rng = np.random.default_rng(cfg.seed + 2)
    return states[rng.choice(len(states), cfg.comparison_size, replace=False)], rng


def random_test_answers(setting: GoalSetting, n: int, cfg: RLBenchConfig) -> Answers:
    """The test users' answers to n random queries from the pool (the bench's ``random`` strategy),
    as the reward models see them (``setting.view``)."""
    return random_answers(setting.test.goal_index, setting.fields, setting.pool, n, cfg.query_noise,
                          seed=cfg.seed + 5, view=setting.view)


def training_contexts(records, n: int, rng: np.random.Generator, sizes: tuple[int, int] = (2, 8)
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """``n`` contexts, each of ``sizes[0]``–``sizes[1]`` pairs (uniform; at most the user's own
    pairs) of a random training user: chosen and rejected states (n, sizes[1], D), the mask
    (n, sizes[1]) and each context's user's goal index (n,)."""
    lo, hi = sizes
    if not 1 <= lo <= hi:
        raise ValueError(f"context sizes must satisfy 1 <= min <= max, got {sizes}")
    train = [r for r in records if r.split == "train"]
    by_user: dict[str, list] = {}
    for r in train:
        by_user.setdefault(r.user_id, []).append(r)
    users = list(by_user)
    c = torch.zeros(n, hi, len(train[0].chosen))
    rj = torch.zeros_like(c)
    mask = torch.zeros(n, hi, dtype=torch.bool)
    goal = np.zeros(n, dtype=int)
    for e in range(n):
        pool = by_user[users[rng.integers(len(users))]]
        goal[e] = pool[0].user_latent
        m = int(rng.integers(lo, hi + 1))
        for j, i in enumerate(rng.choice(len(pool), size=min(m, len(pool)), replace=False)):
            c[e, j], rj[e, j], mask[e, j] = torch.tensor(pool[i].chosen), torch.tensor(pool[i].rejected), True
    return c, rj, mask, goal


#: particles of the posteriors that use them (NP-BTL's always, VPL's with ``vpl_posterior="particles"``)
N_PARTICLES = {"np-btl": 128, "vpl": 512}


def posterior_particles(base: str, model, setting: GoalSetting, cfg: RLBenchConfig,
                        cache: dict) -> ParticlePosterior | None:
    """The particle posterior of reward model ``base`` (training users' latents, each from 8 of
    their pairs), or None where the model's own posterior is used: NP-BTL's for active queries
    (its z is deterministic), VPL's for active queries and z when ``cfg.vpl_posterior`` is
    ``particles``. Cached per model."""
    from ..active import ParticlePosterior

    if not (base == "np-btl" or (base == "vpl" and cfg.vpl_posterior == "particles")):
        return None
    key = (base, "particles")
    if key not in cache:
        train = [r for r in setting.records if r.split == "train"]
        # NP-BTL's draw keeps the seed it had before VPL's particles joined
        cache[key] = ParticlePosterior.from_pairs(
            model, torch.tensor([r.chosen for r in train]), torch.tensor([r.rejected for r in train]),
            [r.user_id for r in train], n_particles=N_PARTICLES[base], context_size=(8, 8),
            seed=0 if base == "np-btl" else cfg.seed + 9)
    return cache[key]


def test_answers(base: str, strategy: str, model, setting: GoalSetting, cfg: RLBenchConfig,
                 cache: dict) -> Answers:
    """The test users' answers to max(n) queries (``.queries``) for reward model ``base``, cached
    per model and strategy: every policy of a reward model (e.g. vpl and vpl+spo) sees the same
    answers."""
    key = (base, strategy)
    if key not in cache:
        n = max(cfg.context_sizes)
        if strategy == "random":
            cache[key] = random_test_answers(setting, n, cfg)
        else:
            cache[key] = active_answers(model, setting.test.goal_index, setting.fields, *setting.pool_pairs, n,
                                        cfg.query_noise, seed=cfg.seed + 6,
                                        particles=posterior_particles(base, model, setting, cfg, cache),
                                        view=setting.view)
    return cache[key]
