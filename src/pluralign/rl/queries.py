"""The queries a new test user answers before the policy drives for them (VPL §4, Fig. 4, App. B).

``random``: n random pairs of dataset states. ``active``: n pairs chosen one at a time by
:func:`pluralign.active.select_queries` (information gain about z, App. B) from a fixed pool of
state pairs, each answer re-conditioning the posterior before the next choice
(:func:`pluralign.active.ask_sequentially`): VPL's posterior is its encoder's q(z | answers);
NP-BTL, whose z is deterministic, uses a particle posterior of training users' latents
(:class:`pluralign.active.ParticlePosterior`). Sequential asking is prefix-consistent, so the
answers to the first n of the n_max questions are the n-question context.

The user answers as in training (:mod:`.users`): the state closer to their goal by shortest path,
flipped with probability ``noise``; an exact tie is answered at random.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..rewards.base import RewardModel
from .maze import GeodesicField
from .users import answer

if TYPE_CHECKING:
    from ..active import ParticlePosterior

STRATEGIES = ("random", "active")


@dataclass
class Answers:
    """B users' answered queries, chosen-first: (B, n, D) each; the first m rows are m answers."""

    chosen: np.ndarray
    rejected: np.ndarray

    def first(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.chosen[:, :n]).float(), torch.from_numpy(self.rejected[:, :n]).float()


def random_answers(goal_index: np.ndarray, fields: list[GeodesicField], pool: np.ndarray, n: int,
                   noise: float, seed: int, view: Callable[[np.ndarray], np.ndarray] | None = None) -> Answers:
    """n random pairs of ``pool`` states per user (ties redrawn). ``view``: as in
    :func:`active_answers`, the users answer on the states and the answers come back through it."""
    rng = np.random.default_rng(seed)
    dim = pool.shape[1]
    chosen = np.zeros((len(goal_index), n, dim), np.float32)
    rejected = np.zeros_like(chosen)
    for i, k in enumerate(goal_index):
        c, r = np.zeros((0, dim)), np.zeros((0, dim))
        while len(c) < n:
            idx = rng.integers(len(pool), size=(n, 2))
            c2, r2 = answer(pool[idx[:, 0]], pool[idx[:, 1]], fields[k], noise, rng)
            c, r = np.concatenate([c, c2]), np.concatenate([r, r2])
        chosen[i], rejected[i] = c[:n], r[:n]
    return Answers(chosen, rejected) if view is None else Answers(view(chosen), view(rejected))


def active_answers(model: RewardModel, goal_index: np.ndarray, fields: list[GeodesicField], pool_a: np.ndarray,
                   pool_b: np.ndarray, n: int, noise: float, seed: int, particles=None,
                   view: Callable[[np.ndarray], np.ndarray] | None = None) -> Answers:
    """n pairs per user, each chosen by information gain given the answers so far (module
    docstring). ``particles``: a ParticlePosterior (required for NP-BTL). ``view``: what the model
    reads of a state (``pluralign.rl.views``; users answer on the states themselves); the answers
    come back through it."""
    from ..active import Pool, ask_sequentially

    seen_a, seen_b = (pool_a, pool_b) if view is None else (view(pool_a), view(pool_b))
    pool = Pool(torch.from_numpy(seen_a).float(), torch.from_numpy(seen_b).float())
    rng = np.random.default_rng(seed)
    dim = seen_a.shape[1]
    chosen = np.zeros((len(goal_index), n, dim), np.float32)
    rejected = np.zeros_like(chosen)
    for i, k in enumerate(goal_index):
        da, db = fields[k](pool_a), fields[k](pool_b)

        def answer_fn(j: int) -> bool:
            yes = bool(da[j] < db[j]) if da[j] != db[j] else bool(rng.random() < 0.5)
            return yes ^ bool(rng.random() < noise) if noise > 0 else yes

        asked = ask_sequentially(model, pool, answer_fn, n, strategy="info-gain", seed=seed + 1000 * i,
                                 particles=particles)
        for q, (j, yes) in enumerate(asked):
            chosen[i, q], rejected[i, q] = (seen_a[j], seen_b[j]) if yes else (seen_b[j], seen_a[j])
    return Answers(chosen, rejected)


@torch.no_grad()
def latents(model: RewardModel, chosen: torch.Tensor, rejected: torch.Tensor,
            particles: ParticlePosterior | None = None) -> np.ndarray:
    """z (B, L) from each user's answers (B, n, D) x2: VPL's posterior mean (``model.eval()``;
    the prior's mean for n = 0), NP-BTL's encoder output. With ``particles`` (a
    :class:`~pluralign.active.ParticlePosterior`) and n >= 1: the posterior-weighted medoid of the
    particles after the user's answers (the particle with the least expected distance to the
    others), a training user's z where the mean of a Gaussian q(z | answers) can fall between
    separate goals. Not the heaviest particle: hundreds fit the answers about equally and the
    heaviest is the one with the largest margins, a z of 1.5-3 times the usual norm that the
    policy drives badly with (benchmarks/results/rl_particles/)."""
    model.eval()
    b, n = chosen.shape[:2]
    if particles is not None and n > 0:
        medoids = [particles.medoid(particles.log_weights(model, c, r)) for c, r in zip(chosen, rejected)]
        return particles.z[medoids].numpy().astype(np.float32)
    z = model.personalize(chosen, rejected, torch.ones(b, n, dtype=torch.bool))
    if isinstance(z, torch.distributions.Normal):
        z = model.latent(z)  # the posterior mean in eval mode
    return z.numpy().astype(np.float32)
