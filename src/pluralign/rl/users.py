"""Simulated users of Maze-Navigation (VPL §4, App. E, D.2): each wants the ball at their own
goal cell and, shown two states, prefers the one closer to that goal by shortest path through
the maze (:class:`~pluralign.rl.maze.GeodesicField`). Ties are dropped; ``noise`` flips a label
with that probability (App. D.4's noisy annotators).

The preference data for the reward models are ordinary :class:`PreferenceRecord` rows with
numeric options (the state vectors) and ``user_latent`` = the goal's index, so the library's own
training (``pluralign.train.rewards.train_reward_model``) trains BTL, DPL, NP-BTL and VPL on
them unchanged. Users are split whole into train/validation (a validation user is new).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.records import PreferenceRecord
from .maze import GeodesicField, Maze


def goal_fields(maze: Maze, goals: Sequence[Sequence[int]], res: int = 5) -> list[GeodesicField]:
    """One distance field per goal cell (checked: inside the map, not a wall)."""
    return [GeodesicField(maze, g, res) for g in goals]


def label_pairs(dist_a: np.ndarray, dist_b: np.ndarray, noise: float = 0.0,
                rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A user's answers: ``(a_chosen, keep)`` — a_chosen[i] is True when the user picks state a
    of pair i (closer to their goal, flipped with probability ``noise``); keep[i] is False for
    ties (equal distance), which no user can decide."""
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"label noise must be in [0, 1], got {noise}")
    dist_a, dist_b = np.asarray(dist_a, float), np.asarray(dist_b, float)
    a_chosen = dist_a < dist_b
    if noise > 0:
        if rng is None:
            raise ValueError("label noise needs a random generator")
        a_chosen = a_chosen ^ (rng.random(a_chosen.shape) < noise)
    return a_chosen, dist_a != dist_b


def answer(states_a: np.ndarray, states_b: np.ndarray, field: GeodesicField, noise: float = 0.0,
           rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rejected) states of the decidable pairs, as the user of ``field`` answers them."""
    a_chosen, keep = label_pairs(field(states_a), field(states_b), noise, rng)
    a, b, c = states_a[keep], states_b[keep], a_chosen[keep][:, None]
    return np.where(c, a, b), np.where(c, b, a)


def draw_pairs(n: int, n_states: int, rng: np.random.Generator, local: float = 0.0,
               episode_len: int | None = None, span: int = 10) -> np.ndarray:
    """(n, 2) row indices of state pairs: uniformly random rows (the paper's queries), except a
    ``local`` fraction drawn as (s_t, s_{t+d}) from one episode of ``episode_len`` rows with
    1 <= d <= ``span`` (clipped at the episode's end) — pairs a few steps apart, which tell a
    reward model which way is closer along the maze's corridors and round its walls."""
    if not 0.0 <= local <= 1.0:
        raise ValueError(f"the local fraction of pairs must be in [0, 1], got {local}")
    idx = rng.integers(n_states, size=(n, 2))
    n_local = int(rng.binomial(n, local)) if local > 0 else 0
    if n_local:
        if not episode_len or episode_len < 2 or n_states % episode_len or span < 1:
            raise ValueError("local pairs need the episodes' length (>= 2, dividing the states) and a span >= 1")
        first = rng.integers(n_states, size=n_local)
        t = first % episode_len
        later = first - t + np.minimum(t + rng.integers(1, span + 1, size=n_local), episode_len - 1)
        later = np.where(later == first, first - 1, later)  # the episode's last step: pair it backwards
        idx[:n_local] = np.stack([first, later], 1)
    return idx


def preference_records(states: np.ndarray, fields: Sequence[GeodesicField], n_users: int,
                       pairs_per_user: int, noise: float = 0.0, val_fraction: float = 0.2,
                       seed: int = 0, local: float = 0.0, episode_len: int | None = None,
                       span: int = 10) -> list[PreferenceRecord]:
    """``n_users`` users, goal ``u % K``, each labelling ``pairs_per_user`` pairs of ``states``
    (rows of the offline dataset; :func:`draw_pairs`: random, or a ``local`` fraction a few steps
    apart within an episode); the last ``val_fraction`` of users are validation."""
    if n_users < 2 or pairs_per_user < 1:
        raise ValueError(f"need n_users >= 2 and pairs_per_user >= 1, got {n_users}, {pairs_per_user}")
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(n_users * val_fraction)))
    records = []
    for u in range(n_users):
        k = u % len(fields)
        chosen, rejected = [], []
        while len(chosen) < pairs_per_user:  # redraw ties until the user has answered enough
            idx = draw_pairs(pairs_per_user, len(states), rng, local, episode_len, span)
            c, r = answer(states[idx[:, 0]], states[idx[:, 1]], fields[k], noise, rng)
            chosen += list(c)
            rejected += list(r)
        split = "validation" if u >= n_users - n_val else "train"
        for i in range(pairs_per_user):
            records.append(PreferenceRecord(user_id=f"user{u:05d}", prompt="",
                                            chosen=[float(x) for x in chosen[i]],
                                            rejected=[float(x) for x in rejected[i]],
                                            split=split, user_latent=k))
    return records
