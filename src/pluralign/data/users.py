"""Simulated users: a user type is a reward over options (or over their attribute scores) and a
rule that turns two rewards into a choice.

Every user answers ``compare(a, b)`` for N pairs at once with +1 (a preferred), -1 (b preferred)
or 0 (a tie: generators drop it, DESIGN.md §2). Deterministic users choose 1{r(a) > r(b)} as in
the NP paper (Kobalczyk et al., App. C.1/C.3); Bradley–Terry users (VPL's didactic example,
Poddar et al. App. D.1) sample the choice from sigmoid(beta·(r(a) - r(b))).

Shapes: options/scores are (N, D) arrays (a 1-D array of N scalars is read as (N, 1)); rewards
are (N,).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import numpy as np

ArrayLike = np.ndarray | Sequence[float] | Sequence[Sequence[float]]


class TieError(ValueError):
    """Raised by ``prefers`` when the user is indifferent between the two options."""


def _as_2d(x: ArrayLike) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        return arr.reshape(1, 1)
    if arr.ndim == 1:
        return arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"options must be (N, D), got shape {arr.shape}")
    return arr


class SimulatedUser(ABC):
    """A user type. ``latent`` is its ground truth (an int type or a weight vector)."""

    latent: int | list[float]
    deterministic: bool = True

    @abstractmethod
    def reward(self, options: ArrayLike) -> np.ndarray:
        """Rewards of N options, (N, D) -> (N,)."""

    def compare(self, a: ArrayLike, b: ArrayLike, rng: np.random.Generator | None = None) -> np.ndarray:
        """+1 where ``a`` is preferred, -1 where ``b`` is, 0 on a tie; (N, D), (N, D) -> (N,) int8."""
        ra, rb = self.reward(a), self.reward(b)
        return np.sign(ra - rb).astype(np.int8)

    def prefers(self, a: ArrayLike, b: ArrayLike) -> bool:
        """Whether this user prefers option ``a`` to option ``b`` (one pair; most likely choice
        for stochastic users). Raises :class:`TieError` when indifferent."""
        a2, b2 = _as_2d(a), _as_2d(b)
        if len(a2) != 1:  # a single vector given as (D,) reads as (D, 1): one option of D features
            a2, b2 = a2.reshape(1, -1), b2.reshape(1, -1)
        diff = float(self.reward(a2)[0] - self.reward(b2)[0])
        if diff == 0.0:
            raise TieError(f"{self!r} is indifferent between {a!r} and {b!r}")
        return diff > 0


class Example41User(SimulatedUser):
    """NP paper Example 4.1 (eq. 9-10, App. C.1 eq. 18-19), 1-D options:
    r(y) = y for y <= 0.5; for y > 0.5, r = 2y if z = 0 else 1 - y."""

    def __init__(self, z: int):
        if z not in (0, 1):
            raise ValueError(f"Example 4.1 has user types 0 and 1, got {z}")
        self.latent = int(z)

    def reward(self, options: ArrayLike) -> np.ndarray:
        y = _as_2d(options)
        if y.shape[1] != 1:
            raise ValueError(f"Example 4.1 options are scalars, got dimension {y.shape[1]}")
        y = y[:, 0]
        high = 2 * y if self.latent == 0 else 1 - y
        return np.where(y <= 0.5, y, high)

    def __repr__(self) -> str:
        return f"Example41User(z={self.latent})"


class AttributeUser(SimulatedUser):
    """K-mode user: the reward is one attribute score, r(y; z) = s_z(y) (NP paper Example 4.3
    with y = [h0, h1], and the HH / 3-mode UltraFeedback users of §4.2 and App. D.1)."""

    def __init__(self, index: int, name: str | None = None):
        if index < 0:
            raise ValueError(f"attribute index must be >= 0, got {index}")
        self.latent, self.name = int(index), name

    def reward(self, scores: ArrayLike) -> np.ndarray:
        s = _as_2d(scores)
        if self.latent >= s.shape[1]:
            raise ValueError(f"attribute {self.latent} out of range for {s.shape[1]} attribute(s)")
        return s[:, self.latent]

    def __repr__(self) -> str:
        return f"AttributeUser({self.latent}{', ' + repr(self.name) if self.name else ''})"


class WeightedUser(SimulatedUser):
    """Continuous user: r(y; w) = w · s(y) with w on the simplex (NP paper App. D.2)."""

    def __init__(self, weights: ArrayLike):
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0 or not np.all(np.isfinite(w)):
            raise ValueError(f"weights must be a non-empty finite vector, got {weights!r}")
        self.weights = w
        self.latent = [float(v) for v in w]

    def reward(self, scores: ArrayLike) -> np.ndarray:
        s = _as_2d(scores)
        if s.shape[1] != len(self.weights):
            raise ValueError(f"{len(self.weights)} weights for {s.shape[1]} attribute(s)")
        return s @ self.weights

    def __repr__(self) -> str:
        return f"WeightedUser({np.round(self.weights, 3).tolist()})"


def sample_simplex_users(n: int, k: int, alpha: float | Sequence[float] = 0.5,
                         rng: np.random.Generator | None = None) -> list[WeightedUser]:
    """``n`` users with weights ~ Dirichlet(alpha·1_k) (the paper uses alpha = 0.5, k = 2 or 3)."""
    rng = rng or np.random.default_rng(0)
    conc = np.full(k, alpha, dtype=np.float64) if np.isscalar(alpha) else np.asarray(alpha, dtype=np.float64)
    if conc.shape != (k,) or np.any(conc <= 0):
        raise ValueError(f"alpha must be positive (scalar or {k} values), got {alpha!r}")
    return [WeightedUser(w) for w in rng.dirichlet(conc, size=n)]


class GaussianBumpUser(SimulatedUser):
    """VPL didactic annotator (Poddar et al. App. D.1): e^{r(s)} is the density N(s; mu, sigma²I),
    i.e. r(s) = log N(s; mu, sigma²I), and choices follow Bradley–Terry,
    p(a ≻ b) = e^{beta r(a)} / (e^{beta r(a)} + e^{beta r(b)}). beta = 1 is the paper's model."""

    deterministic = False

    def __init__(self, index: int, mu: ArrayLike, sigma: float, beta: float = 1.0):
        if sigma <= 0 or beta <= 0:
            raise ValueError(f"sigma and beta must be positive, got sigma={sigma}, beta={beta}")
        self.latent = int(index)
        self.mu = np.asarray(mu, dtype=np.float64).reshape(-1)
        self.sigma, self.beta = float(sigma), float(beta)

    def reward(self, options: ArrayLike) -> np.ndarray:
        s = _as_2d(options)
        if s.shape[1] != len(self.mu):
            raise ValueError(f"options have dimension {s.shape[1]}, the bump {len(self.mu)}")
        d = len(self.mu)
        sq = ((s - self.mu) ** 2).sum(axis=1) / self.sigma ** 2
        return -0.5 * sq - d * np.log(self.sigma * np.sqrt(2 * np.pi))

    def prob(self, a: ArrayLike, b: ArrayLike) -> np.ndarray:
        """P(a ≻ b) for N pairs, (N,)."""
        z = self.beta * (self.reward(a) - self.reward(b))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def compare(self, a: ArrayLike, b: ArrayLike, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sampled choices (+1/-1); without ``rng`` the most likely choice (ties 0)."""
        p = self.prob(a, b)
        if rng is None:
            return np.sign(p - 0.5).astype(np.int8)
        return np.where(rng.random(len(p)) < p, 1, -1).astype(np.int8)

    def __repr__(self) -> str:
        return f"GaussianBumpUser({self.latent}, mu={np.round(self.mu, 3).tolist()}, sigma={self.sigma})"


def example41_users() -> list[Example41User]:
    return [Example41User(0), Example41User(1)]


def attribute_users(k: int, names: Sequence[str] | None = None) -> list[AttributeUser]:
    """The K one-attribute users z = 0..K-1."""
    if names is not None and len(names) != k:
        raise ValueError(f"{len(names)} names for {k} attributes")
    return [AttributeUser(i, None if names is None else names[i]) for i in range(k)]


def gaussian_bump_users(m: int = 4, dim: int = 1, low: float = 0.0, high: float = 1.0,
                        sigma: float = 0.1, beta: float = 1.0) -> list[GaussianBumpUser]:
    """M annotators whose bumps sit evenly inside [low, high] (on the diagonal for dim > 1)."""
    if m < 1:
        raise ValueError(f"need at least one annotator, got {m}")
    centres = low + (np.arange(m) + 0.5) * (high - low) / m
    return [GaussianBumpUser(i, np.full(dim, c), sigma, beta) for i, c in enumerate(centres)]


def compare_all(users: Sequence[SimulatedUser], a: ArrayLike, b: ArrayLike,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """Choices of every user on every pair: (U, N) int8 of +1/-1/0."""
    return np.stack([u.compare(a, b, rng) for u in users]) if users else np.zeros((0, len(_as_2d(a))), np.int8)


def conflicting(choices: np.ndarray) -> np.ndarray:
    """Pairs on which the users' strict choices disagree: (U, N) -> (N,) bool."""
    return (choices > 0).any(axis=0) & (choices < 0).any(axis=0)
