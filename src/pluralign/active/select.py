"""``select_queries``: which pairs to ask a user next (VPL App. B), and the baselines.

Strategies (all deterministic for a ``seed``):

* ``info-gain`` — maximise I(labels; z) under the posterior over z given the answers so far
  (:mod:`.info_gain`; the posterior is :mod:`.posterior`'s: samples of VPL's q(z | answers), or
  a particle posterior, which NP-BTL needs). ``k = 1`` scores single pairs; ``k > 1`` is App. B's
  batch mode: S candidate batches of k pairs are sampled from the pool (``batch_search="sample"``,
  App. B) or built greedily pair by pair (``"greedy"``) and the batch with the largest joint
  information over its 2^k label outcomes wins.
* ``uncertainty`` — the pairs whose predicted preference at the current point z is closest to 1/2.
* ``random`` — uniformly without replacement.

Pools over 10,000 pairs are searched by sampling ``n_candidates`` of them (App. B's
sampling-based search), so the per-user cost does not grow with the pool; a particle posterior
scores the whole pool once per :class:`Pool` and then every pair for every user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .info_gain import MAX_BATCH, information_gain, single_pair_gain
from .posterior import ParticlePosterior, latent_kind, point_latent, posterior_samples
from .scoring import OptionScorer

STRATEGIES = ("info-gain", "uncertainty", "random")
BATCH_SEARCHES = ("sample", "greedy")


@dataclass(eq=False)
class Pool:
    """Candidate questions: M pairs of options, a[m] vs b[m], each (M, D).

    Reuse one Pool for every user asked from it: the z-independent part of scoring its options
    (:class:`OptionScorer`) is computed on first use per model and kept.
    """

    a: torch.Tensor
    b: torch.Tensor
    _scorers: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.a.shape[0])

    def scorer(self, model: nn.Module) -> OptionScorer:
        """Scorer of the 2M options [a; b] (index m is a[m], M + m is b[m]) for ``model``."""
        key = id(model)
        if key not in self._scorers or self._scorers[key].model is not model:
            self._scorers[key] = OptionScorer(model, torch.cat([self.a, self.b]))
        return self._scorers[key]

    def probabilities(self, model: nn.Module, z: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        """P(a_m ≻ b_m | z_k) for the pairs ``idx``: z (K, dz) -> (K, len(idx))."""
        i = torch.as_tensor(idx, dtype=torch.long)
        r = self.scorer(model)(z[None], torch.cat([i, i + len(self)])[None])[0]
        return torch.sigmoid(r[:, : len(i)] - r[:, len(i):])

    @classmethod
    def of(cls, pool: "Pool | torch.Tensor | Sequence[torch.Tensor]", option_dim: int) -> "Pool":
        """A pool from (M, 2, D) pairs or two (M, D) tensors, checked against the model's D."""
        if isinstance(pool, Pool):
            a, b = pool.a, pool.b
        elif isinstance(pool, torch.Tensor):
            if pool.dim() != 3 or pool.shape[1] != 2:
                raise ValueError(f"pool must be (M, 2, D) pairs or two (M, D) tensors, got shape "
                                 f"{tuple(pool.shape)}")
            a, b = pool[:, 0], pool[:, 1]
        elif isinstance(pool, (tuple, list)) and len(pool) == 2:
            a, b = (torch.as_tensor(x, dtype=torch.float32) for x in pool)
        else:
            raise TypeError(f"pool must be (M, 2, D) pairs or two (M, D) tensors, got {type(pool).__name__}")
        if a.dim() != 2 or a.shape != b.shape:
            raise ValueError(f"pool sides must both be (M, D), got {tuple(a.shape)} and {tuple(b.shape)}")
        if a.shape[0] == 0:
            raise ValueError("the pool is empty: there are no pairs to ask about")
        if a.shape[1] != option_dim:
            raise ValueError(f"pool options have {a.shape[1]} features but the model takes "
                             f"option_dim={option_dim}")
        if isinstance(pool, Pool) and a is pool.a:
            return pool
        return cls(a.float(), b.float())


def _answered(answered, option_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    if answered is None:
        return torch.zeros(0, option_dim), torch.zeros(0, option_dim)
    if not (isinstance(answered, (tuple, list)) and len(answered) == 2):
        raise TypeError("answered must be (chosen, rejected): two (C, D) tensors of the options the "
                        "user preferred and the ones they did not")
    c, r = (torch.as_tensor(x, dtype=torch.float32) if len(x) else torch.zeros(0, option_dim)
            for x in answered)
    for name, x in (("chosen", c), ("rejected", r)):
        if x.dim() != 2 or x.shape[1] != option_dim:
            raise ValueError(f"answered {name} must be (C, {option_dim}) option vectors, got shape "
                             f"{tuple(x.shape)}")
    if c.shape != r.shape:
        raise ValueError(f"answered chosen {tuple(c.shape)} and rejected {tuple(r.shape)} differ")
    return c, r


def _available(m: int, exclude: Sequence[int] | None, k: int) -> np.ndarray:
    mask = np.ones(m, dtype=bool)
    if exclude is not None and len(exclude):
        ex = np.asarray(list(exclude), dtype=np.int64)
        if ex.min() < 0 or ex.max() >= m:
            raise IndexError(f"exclude holds indices outside the pool [0, {m})")
        mask[ex] = False
    avail = np.flatnonzero(mask)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if k > len(avail):
        raise ValueError(f"k={k} questions asked for, but the pool holds only {len(avail)} available "
                         f"pair(s) ({m} in the pool, {m - len(avail)} excluded)")
    return avail


def select_queries(model: nn.Module, pool, answered=None, k: int = 1, strategy: str = "info-gain",
                   seed: int = 0, *, exclude: Sequence[int] | None = None,
                   particles: ParticlePosterior | None = None, n_samples: int = 16,
                   n_candidates: int = 128, batch_search: str = "sample") -> torch.Tensor:
    """Indices (k,) of the pool pairs to ask a user next.

    Args:
        model: a latent reward model (NP-BTL or VPL); BTL/DPL raise :class:`NoLatentError`.
        pool: (M, 2, D) pairs, two (M, D) tensors, or a :class:`Pool` (reuse one across users:
            a particle posterior scores it once).
        answered: the user's answers so far, ``(chosen (C, D), rejected (C, D))``, or None.
        k: questions to choose at once (k > 1 is App. B's batch mode).
        strategy: ``info-gain``, ``uncertainty`` or ``random``.
        seed: fixes every random draw (candidate sampling, z samples, tie-breaking).
        exclude: pool indices not to ask (e.g. already asked).
        particles: a :class:`ParticlePosterior`; required for ``info-gain`` with NP-BTL, optional
            for VPL (default for VPL: ``n_samples`` draws of q(z | answered)).
        n_candidates: S, the candidate pairs (k = 1, q samples; a particle posterior scores every
            pair) or batches (k > 1) scored per call.
        batch_search: ``sample`` (App. B) or ``greedy`` for k > 1.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    if batch_search not in BATCH_SEARCHES:
        raise ValueError(f"unknown batch_search {batch_search!r}; choose from {', '.join(BATCH_SEARCHES)}")
    kind = latent_kind(model)
    dim = model.config.option_dim
    pool = Pool.of(pool, dim)
    chosen, rejected = _answered(answered, dim)
    avail = _available(len(pool), exclude, k)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return torch.as_tensor(rng.choice(avail, size=k, replace=False))
    if k > MAX_BATCH and strategy == "info-gain":
        raise ValueError(f"info-gain enumerates 2^k label outcomes; k must be <= {MAX_BATCH}, got {k}")
    if n_candidates < 1 or n_samples < 1:
        raise ValueError("n_candidates and n_samples must be >= 1")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            if strategy == "uncertainty":
                return _uncertainty(model, kind, pool, chosen, rejected, avail, k, rng)
            prob = _prob_fn(model, kind, pool, chosen, rejected, particles, n_samples, seed)
            if k == 1:
                # random order: ties break at random; a particle posterior has the whole pool's
                # rewards already, so it scores every pair, q samples score n_candidates of them
                cand = rng.permutation(avail)[: None if particles is not None or kind == "mixture" else n_candidates]
                p, log_w = prob(cand)
                return torch.as_tensor(cand[[int(single_pair_gain(p, log_w).argmax())]])
            if batch_search == "greedy":
                return torch.as_tensor(_greedy_batch(prob, avail, k, n_candidates, rng))
            return torch.as_tensor(_sampled_batch(prob, avail, k, n_candidates, rng))
    finally:
        model.train(was)


ProbFn = Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor | None]]


def _prob_fn(model, kind, pool: Pool, chosen, rejected, particles, n_samples: int, seed: int) -> ProbFn:
    """``prob(indices) -> (P(a ≻ b | z_p) (P, n), log weights (P,) | None)`` under the posterior."""
    if kind == "mixture":  # the components are the particles, weighted by the exact posterior
        log_w = point_latent(model, chosen[None], rejected[None], torch.ones(1, len(chosen), dtype=torch.bool))[0]
        p_all = model.component_probs(pool.a, pool.b)
        return lambda idx: (p_all[:, torch.as_tensor(idx, dtype=torch.long)], log_w)
    if particles is not None:
        ra, rb = particles.pool_rewards(model, pool)
        log_w = particles.log_weights(model, chosen, rejected)
        return lambda idx: (torch.sigmoid(ra[:, idx] - rb[:, idx]), log_w)
    if kind != "variational":
        raise ValueError("info-gain with a deterministic-latent model (NP-BTL) needs a posterior over z: "
                         "pass particles=ParticlePosterior.from_contexts(model, ...) (or .from_pairs) "
                         "built from training users' contexts")
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(1, len(chosen), dtype=torch.bool)
    z = posterior_samples(model, chosen[None], rejected[None], mask, n_samples, gen)[0]  # (K, dz)
    return lambda idx: (pool.probabilities(model, z, idx), None)


def _uncertainty(model, kind: str, pool: Pool, chosen, rejected, avail: np.ndarray, k: int, rng) -> torch.Tensor:
    z = point_latent(model, chosen[None], rejected[None], torch.ones(1, len(chosen), dtype=torch.bool))
    order = rng.permutation(avail)  # ties break at random
    if kind == "mixture":  # the model's posterior predictive, not one reward difference
        i = torch.as_tensor(order, dtype=torch.long)
        p = model.preference_prob(pool.a[i][None], pool.b[i][None], z)[0]
    else:
        p = pool.probabilities(model, z, order)[0]
    top = torch.argsort((p - 0.5).abs(), stable=True)[:k].numpy()
    return torch.as_tensor(order[top])


def _sampled_batch(prob: ProbFn, avail: np.ndarray, k: int, n_batches: int, rng) -> np.ndarray:
    """App. B: S random batches of k distinct pairs; the one with the largest I(labels; z)."""
    batches = np.stack([rng.choice(avail, size=k, replace=False) for _ in range(n_batches)])
    union, inverse = np.unique(batches, return_inverse=True)
    p, log_w = prob(union)  # (P, U)
    gain = information_gain(p[:, torch.as_tensor(inverse.reshape(batches.shape))], log_w)  # (S,)
    return batches[int(gain.argmax())]


def _greedy_batch(prob: ProbFn, avail: np.ndarray, k: int, n_candidates: int, rng) -> np.ndarray:
    """Build the batch pair by pair, each time adding the pair that maximises the joint
    I(labels; z) of the batch so far (a standard submodular-style approximation)."""
    cand = rng.permutation(avail)[: max(n_candidates, k)]
    p, log_w = prob(cand)  # (P, S)
    picked: list[int] = []
    for _ in range(k):
        rest = np.setdiff1d(np.arange(len(cand)), picked, assume_unique=True)
        base = p[:, picked].unsqueeze(1).expand(-1, len(rest), -1)
        trial = torch.cat([base, p[:, rest].unsqueeze(-1)], dim=-1)  # (P, R, j+1)
        picked.append(int(rest[int(information_gain(trial, log_w).argmax())]))
    return cand[picked]


def ask_sequentially(model: nn.Module, pool, answer: Callable[[int], bool], n: int,
                     strategy: str = "info-gain", seed: int = 0, **kwargs) -> list[tuple[int, bool]]:
    """Sequential mode: ask one question, add the answer, re-condition, choose the next.

    ``answer(index) -> True`` when the user prefers ``pool.a[index]`` over ``pool.b[index]``.
    Returns ``[(pool index, answer), ...]`` in asking order. ``kwargs`` go to
    :func:`select_queries` (e.g. ``particles``).
    """
    model_dim = model.config.option_dim
    pool = Pool.of(pool, model_dim)
    asked: list[tuple[int, bool]] = []
    chosen, rejected = [], []
    for step in range(n):
        ans = (torch.stack(chosen), torch.stack(rejected)) if chosen else None
        i = int(select_queries(model, pool, ans, 1, strategy, seed + step,
                               exclude=[a for a, _ in asked], **kwargs)[0])
        yes = bool(answer(i))
        asked.append((i, yes))
        chosen.append(pool.a[i] if yes else pool.b[i])
        rejected.append(pool.b[i] if yes else pool.a[i])
    return asked
