"""From a pool of scored option pairs to preference records of simulated users.

Shared by the built-in sets (Pets, the SmolLM2 corpus). A *pool* holds the underlying pairs,
each with a split; a *user type* is a deterministic preference over a pair (+1: first option,
-1: second, 0: tie). Pairs any type ties on are dropped (DESIGN.md §2), a chosen fraction of the
rest conflicts (the types do not all agree; NP paper §4.3.2 studies 100% / 75% / 50%), and each
simulated user labels ``pairs_per_user`` pairs drawn from the pool, in proportion to the split
sizes, so every user has training, validation and test pairs. All users of all types draw from
the same pool, so a pair is labelled by users of several types (``pair_id`` ties them together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..records import SPLITS, PreferenceRecord


@dataclass(frozen=True)
class PoolPair:
    """Two options for one prompt, with their attribute scores and the split they belong to."""

    pair_id: str
    prompt: str
    a: str
    b: str
    scores_a: dict[str, float]
    scores_b: dict[str, float]
    split: str
    meta: dict[str, Any] = field(default_factory=dict)


def select_conflict_rate(conflict: np.ndarray, rate: float | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of a subset whose fraction of conflicting pairs is ``rate`` (None: keep all).

    Keeps as many pairs as possible: all of the scarcer kind and as many of the other as the rate
    allows. Raises if the pool has no pair of a kind the rate needs.
    """
    idx = np.arange(len(conflict))
    if rate is None:
        return idx
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"conflict_rate must be in [0, 1], got {rate}")
    conf, agree = idx[conflict], idx[~conflict]
    if rate > 0 and len(conf) == 0:
        raise ValueError(f"conflict_rate={rate} asks for conflicting pairs but these user types never disagree")
    if rate < 1 and len(agree) == 0:
        raise ValueError(f"conflict_rate={rate} asks for agreeing pairs but these user types always disagree "
                         "(e.g. opposite preferences on one attribute); use conflict_rate=1.0 or other types")
    if rate == 1.0:
        return conf
    if rate == 0.0:
        return agree
    total = int(min(len(conf) / rate, len(agree) / (1 - rate)))
    n_conf = int(round(rate * total))
    keep = np.concatenate([rng.choice(conf, n_conf, replace=False), rng.choice(agree, total - n_conf, replace=False)])
    return np.sort(keep)


def label_pool(pool: Sequence[PoolPair], signs: np.ndarray, type_names: Sequence[str], *,
               users_per_type: int, pairs_per_user: int, conflict_rate: float | None,
               rng: np.random.Generator, source: str) -> list[PreferenceRecord]:
    """Records of ``users_per_type`` users of each type over the pool.

    ``signs``: (P, K) int array, the preference of each of K types on each pool pair (+1: ``a``,
    -1: ``b``, 0: tie). Returns records ordered by user, then split; ``user_latent`` is the type
    index, ``meta`` names the type, the prompt/option ids and whether the pair conflicts.
    """
    signs = np.asarray(signs)
    if signs.shape != (len(pool), len(type_names)):
        raise ValueError(f"signs must be (pairs, types) = {(len(pool), len(type_names))}, got {signs.shape}")
    if users_per_type < 1 or pairs_per_user < 1:
        raise ValueError("users_per_type and pairs_per_user must be at least 1")
    valid = np.flatnonzero((signs != 0).all(axis=1))  # ties dropped for every type
    conflict = (signs[valid] != signs[valid][:, :1]).any(axis=1)
    keep = valid[select_conflict_rate(conflict, conflict_rate, rng)]
    by_split = {s: [int(i) for i in keep if pool[i].split == s] for s in SPLITS}
    sizes = {s: len(v) for s, v in by_split.items()}
    total = sum(sizes.values())
    if total == 0:
        raise ValueError("no usable pairs left after dropping ties and selecting the conflict rate")
    quota = _quotas(sizes, pairs_per_user)
    records: list[PreferenceRecord] = []
    for k, name in enumerate(type_names):
        for u in range(users_per_type):
            user = f"{name}-{u:03d}"
            for split in SPLITS:
                if quota[split] == 0:
                    continue
                for i in rng.choice(by_split[split], quota[split], replace=False):
                    p = pool[int(i)]
                    first = signs[i, k] > 0
                    chosen, rejected = (p.a, p.b) if first else (p.b, p.a)
                    sc, sr = (p.scores_a, p.scores_b) if first else (p.scores_b, p.scores_a)
                    records.append(PreferenceRecord(
                        user_id=user, prompt=p.prompt, chosen=chosen, rejected=rejected,
                        attributes={a: [sc[a], sr[a]] for a in sc}, split=split, user_latent=k,
                        pair_id=p.pair_id,
                        meta={"source": source, "user_type": name,
                              "conflict": bool((signs[i] != signs[i, 0]).any()), **p.meta}))
    return records


def _quotas(sizes: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` pairs per user across splits in proportion to the pool sizes (largest remainder)."""
    total = sum(sizes.values())
    if n > total:
        raise ValueError(f"pairs_per_user={n} exceeds the {total} usable pairs in the pool")
    exact = {s: n * sizes[s] / total for s in sizes}
    quota = {s: int(np.floor(v)) for s, v in exact.items()}
    for s in sorted(sizes, key=lambda s: exact[s] - quota[s], reverse=True)[: n - sum(quota.values())]:
        quota[s] += 1
    return {s: min(q, sizes[s]) for s, q in quota.items()}
