"""Simulated populations over correlated D-dimensional options, for ``pluralign bench defaults``.

The NP paper's synthetic users (§4.1, §4.3, App. C-D) score options directly; here options are
D-dimensional vectors y ~ N(0, Σ_ρ) (unit variances, correlation ρ between every two features)
and users score K *attributes* s(y) = A·y, with A a fixed random (K, D) matrix of unit rows, so
the user types are linear rewards in directions the model has to find:

* ``types``: K one-attribute user types, r(y; z) = s_z(y) (NP paper Example 4.3 with K modes
  and D > K features); every type labels every pair (the NP scheme), split by pair.
* ``dirichlet``: continuous users r(y; w) = w·s(y) with w ~ Dirichlet(α·1_K) (NP paper App.
  D.2); each user labels ``pairs_per_user`` pairs of a shared pool, split by pair.
* ``new-users``: the same continuous users, many of them with few pairs each, split *by user*:
  test users are people the model never saw.

Label noise flips a fraction of the labels after the fact (:func:`pluralign.data.synthetic.
flip_labels`). :class:`Population` keeps what the Bayes line needs: the attribute matrix, the
finite user types or the Dirichlet concentration, and the noise rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from .records import PreferenceRecord
from .splits import split_records
from .synthetic import attribute_records, correlated_gaussian, flip_labels
from .users import attribute_users, sample_simplex_users

Kind = Literal["types", "dirichlet", "new-users"]


@dataclass(frozen=True)
class PopulationSpec:
    """One simulated population.

    kind: ``types`` | ``dirichlet`` | ``new-users`` (see the module doc). k: attributes (= user
    types for ``types``). dim: option features D (>= k). rho: correlation between option
    features. noise: fraction of flipped labels. n_pairs: pairs in the pool. n_users /
    pairs_per_user: continuous users and how many pairs each labels. alpha: Dirichlet
    concentration. split: train/validation/test fractions (of pairs, or of users for
    ``new-users``).
    """

    name: str
    kind: Kind = "types"
    k: int = 2
    dim: int = 4
    rho: float = 0.3
    noise: float = 0.0
    n_pairs: int = 8000
    n_users: int = 300
    pairs_per_user: int = 100
    alpha: float = 0.5
    split: tuple[float, float, float] = (0.5, 0.25, 0.25)

    def __post_init__(self) -> None:
        if self.kind not in ("types", "dirichlet", "new-users"):
            raise ValueError(f"population {self.name!r}: kind must be types, dirichlet or new-users, "
                             f"got {self.kind!r}")
        if not 1 <= self.k <= self.dim:
            raise ValueError(f"population {self.name!r}: need 1 <= k <= dim, got k={self.k}, dim={self.dim}")
        if not 0.0 <= self.noise < 0.5:
            raise ValueError(f"population {self.name!r}: noise must lie in [0, 0.5), got {self.noise}")
        if self.n_pairs < 10 or self.n_users < 1 or self.pairs_per_user < 1 or self.alpha <= 0:
            raise ValueError(f"population {self.name!r}: n_pairs >= 10, n_users >= 1, "
                             "pairs_per_user >= 1 and alpha > 0 are required")


@dataclass
class Population:
    """What generated the records: attribute directions ``A`` (K, D), the finite user ``types``
    (None for continuous users), the Dirichlet ``alpha`` and the label ``noise``."""

    spec: PopulationSpec
    A: np.ndarray
    types: list | None
    alpha: float
    noise: float

    def scores(self, options: np.ndarray) -> np.ndarray:
        """Attribute scores s(y) = A·y of (N, D) options -> (N, K)."""
        return np.asarray(options, dtype=np.float64) @ self.A.T

    def sample_weights(self, m: int, rng: np.random.Generator) -> np.ndarray:
        """``m`` user weight vectors from the population's distribution -> (m, K): the one-hot
        rows of the finite types, or Dirichlet draws."""
        if self.types is not None:
            return np.eye(self.A.shape[0])[rng.integers(len(self.types), size=m)]
        return rng.dirichlet(np.full(self.A.shape[0], self.alpha), size=m)


def attribute_matrix(k: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(k, dim) random directions with unit rows: attribute z is s_z(y) = A[z]·y."""
    a = rng.standard_normal((k, dim))
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def make_population(spec: PopulationSpec, seed: int = 0) -> tuple[list[PreferenceRecord], dict[str, Any],
                                                                  Population]:
    """Records (with splits), an info dict and the :class:`Population` behind them."""
    rng = np.random.default_rng([seed, 7])
    A = attribute_matrix(spec.k, spec.dim, rng)
    options = correlated_gaussian(rng, 2 * spec.n_pairs, spec.dim, spec.rho)
    scores = options @ A.T
    names = [f"a{i}" for i in range(spec.k)]
    if spec.kind == "types":
        users: Sequence = attribute_users(spec.k, names)
        per_user = None
    else:
        users = sample_simplex_users(spec.n_users, spec.k, spec.alpha, rng)
        per_user = spec.pairs_per_user
    n_draw = spec.n_pairs + spec.n_pairs // 10  # room for pairs dropped on ties
    records, info = attribute_records(options, scores, users, n_pairs=n_draw, n_keep=spec.n_pairs,
                                      pairs_per_user=per_user, attribute_names=names, seed=seed + 1)
    if spec.kind == "new-users":
        records = _split_by_user(records, spec.split, seed)
    records, flipped = flip_labels(records, spec.noise, rng) if spec.noise else (records, 0)
    if spec.kind != "new-users":
        records = split_records(records, spec.split, seed=seed, group_by="pair")
    info.update(generator="population", population=spec.name, kind=spec.kind, k=spec.k, dim=spec.dim,
                rho=spec.rho, noise=spec.noise, flipped=flipped, n_records=len(records), seed=seed,
                split=list(spec.split), split_by="user" if spec.kind == "new-users" else "pair")
    pop = Population(spec, A, list(users) if spec.kind == "types" else None, spec.alpha, spec.noise)
    return records, info, pop


def _split_by_user(records: Sequence[PreferenceRecord], fractions: Sequence[float],
                   seed: int) -> list[PreferenceRecord]:
    """Every record of a user in one split: validation and test users are new people."""
    users = sorted({r.user_id for r in records})
    order = np.random.default_rng([seed, 11]).permutation(len(users))
    bounds = np.round(np.cumsum(fractions)[:2] * len(users)).astype(int)
    names = ("train", "validation", "test")
    assign = {users[u]: names[int(np.searchsorted(bounds, rank, side="right"))]
              for rank, u in enumerate(order)}
    return [r.replace(split=assign[r.user_id]) for r in records]
