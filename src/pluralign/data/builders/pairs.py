"""Scored response pairs and the rules every builder shares: all C(n,2) pairs per prompt,
prompt-grouped splits, ties, conflicts and a chosen conflict rate.

A :class:`ScoredPair` is two responses to one prompt with per-attribute scores for each; the
builders turn pairs into :class:`~pluralign.data.records.PreferenceRecord` rows, one per user who
labels the pair, with ``chosen`` the option that user's reward ranks higher.

Conflict (NP paper Definition 4.2): two users conflict on a pair when their decisions differ.
For K attribute users a pair is *conflicting* when the users with a strict preference do not all
agree — for K = 2 that is Definition 4.2 (ties dropped first); for K = 3 it is App. D.1's "one
choice is distinct from the others"; for UF-P-4 it is VPL App. E.4's "not all four users agree".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from ..records import SPLITS, PreferenceRecord
from ..splits import split_records


@dataclass
class Built:
    """Records from a builder and the counts of what each filtering rule kept or dropped."""

    records: list[PreferenceRecord]
    counts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoredPair:
    """Responses ``a`` and ``b`` to ``prompt``; ``scores_*`` map attribute -> score (may miss some)."""

    prompt: str
    a: str
    b: str
    scores_a: dict[str, float]
    scores_b: dict[str, float]
    pair_id: str
    meta: dict[str, Any] = field(default_factory=dict)

    def sign(self, attribute: str) -> int:
        """+1 if ``a`` scores higher on ``attribute``, -1 if ``b`` does, 0 on a tie or a missing score."""
        sa, sb = self.scores_a.get(attribute), self.scores_b.get(attribute)
        if sa is None or sb is None:
            return 0
        return int(np.sign(sa - sb))

    def has(self, attributes: Sequence[str]) -> bool:
        """Whether both responses have a score for every attribute in ``attributes``."""
        return all(n in self.scores_a and n in self.scores_b for n in attributes)

    def scores(self, attributes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(K,) score vectors of ``a`` and ``b`` over ``attributes``."""
        return (np.array([self.scores_a[n] for n in attributes], dtype=np.float64),
                np.array([self.scores_b[n] for n in attributes], dtype=np.float64))

    def record(self, user_id: str, a_wins: bool, *, user_latent: int | list[float] | None = None,
               split: str | None = None, attributes: Sequence[str] | None = None,
               meta: dict[str, Any] | None = None) -> PreferenceRecord:
        """The record of one user's choice; ``attributes`` lists the scores to carry (default: all
        attributes both responses have), as ``[score_of_chosen, score_of_rejected]``."""
        win, lose = (self.scores_a, self.scores_b) if a_wins else (self.scores_b, self.scores_a)
        names = attributes if attributes is not None else [n for n in self.scores_a if n in self.scores_b]
        return PreferenceRecord(
            user_id=user_id, prompt=self.prompt,
            chosen=self.a if a_wins else self.b, rejected=self.b if a_wins else self.a,
            attributes={n: [float(win[n]), float(lose[n])] for n in names if n in win and n in lose},
            split=split, user_latent=user_latent, pair_id=self.pair_id,
            meta={**self.meta, **(meta or {})},
        )


def all_pairs(prompt: str, responses: Sequence[str], scores: Sequence[dict[str, float]],
              id_prefix: str, meta: dict[str, Any] | None = None) -> list[ScoredPair]:
    """Every unordered pair i < j of a prompt's responses (C(n, 2) of them), skipping pairs
    whose texts are identical (no preference can be expressed between equal options)."""
    if len(responses) != len(scores):
        raise ValueError(f"{len(responses)} responses but {len(scores)} score sets")
    out = []
    for i, j in combinations(range(len(responses)), 2):
        if responses[i] == responses[j]:
            continue
        out.append(ScoredPair(prompt, responses[i], responses[j], dict(scores[i]), dict(scores[j]),
                              f"{id_prefix}-{i}-{j}", dict(meta or {})))
    return out


def split_pairs(pairs: Sequence[ScoredPair], fractions: Sequence[float] = (0.8, 0.1, 0.1),
                seed: int = 0) -> dict[str, list[ScoredPair]]:
    """Split pairs train/validation/test **by prompt** (DESIGN.md §4: no prompt in two splits),
    with :func:`pluralign.data.splits.split_records` so records built later agree with it."""
    probes = [PreferenceRecord("pool", p.prompt, p.a, p.b, pair_id=p.pair_id) for p in pairs]
    assigned = split_records(probes, fractions=fractions, seed=seed, group_by="prompt", keep_existing=False)
    out: dict[str, list[ScoredPair]] = {s: [] for s in SPLITS}
    for pair, rec in zip(pairs, assigned):
        out[rec.split].append(pair)  # type: ignore[index]
    return out


def decisions(pairs: Sequence[ScoredPair], attributes: Sequence[str]) -> np.ndarray:
    """(P, K) int8 matrix of signs: +1 a preferred, -1 b preferred, 0 tie/missing, per attribute user."""
    signs = np.array([[p.sign(n) for n in attributes] for p in pairs], dtype=np.int8)
    return signs.reshape(len(pairs), len(attributes))


def is_conflicting(signs: np.ndarray) -> np.ndarray:
    """(P, K) signs -> (P,) bool: the users with a strict preference do not all agree."""
    return (signs > 0).any(axis=1) & (signs < 0).any(axis=1)


def select_conflict_rate(conflicting: np.ndarray, rate: float, n_pairs: int | None = None,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of a subset whose fraction of conflicting pairs is ``rate`` (NP paper §4.3.2).

    ``n_pairs`` is the subset size; None means the paper's choice, the number of conflicting
    pairs available (so every rate gives a dataset as large as the 100%-conflict one), shrunk
    only when there are too few pairs of either kind. ``floor(rate * n + 0.5)`` pairs conflict.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"conflict rate must be in [0, 1], got {rate}")
    rng = rng or np.random.default_rng(0)
    conf = np.flatnonzero(conflicting)
    agree = np.flatnonzero(~np.asarray(conflicting, dtype=bool))
    def n_conflicting(size: int) -> int:  # round half up: round(rate * size)
        return int(np.floor(rate * size + 0.5))

    n = len(conf) if n_pairs is None else int(n_pairs)
    if n_pairs is None and rate == 0.0:
        n = len(agree)
    # the largest n <= requested that both pools can fill
    while n > 0 and (n_conflicting(n) > len(conf) or n - n_conflicting(n) > len(agree)):
        n -= 1
    if n_pairs is not None and n < n_pairs:
        raise ValueError(f"cannot draw {n_pairs} pairs at conflict rate {rate}: only {len(conf)} conflicting "
                         f"and {len(agree)} agreeing pairs (at most {n} possible)")
    k = n_conflicting(n)
    chosen = np.concatenate([rng.choice(conf, size=k, replace=False),
                             rng.choice(agree, size=n - k, replace=False)]).astype(np.int64)
    return np.sort(chosen)
