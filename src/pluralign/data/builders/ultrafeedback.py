"""UltraFeedback (``openbmb/UltraFeedback``) to multi-user preference records.

Raw schema (one row per prompt): ``instruction`` (the prompt), ``completions`` — a list, each
with ``response`` and ``annotations`` holding, per attribute in ``helpfulness``, ``honesty``,
``instruction_following``, ``truthfulness``, a dict whose ``Rating`` is "1".."5" or "N/A".

Rules (NP paper §4.2, App. C.2, C.3.2, D.1, D.2):

1. Every prompt gives all C(n, 2) pairs of its completions (identical texts skipped).
2. A pair is kept only if both completions have a numeric rating on every attribute in play
   (``N/A`` and missing ratings drop it) — counted as ``missing``.
3. Ties: with ``tie_policy="any"`` (the NP datasets) a pair tied on any attribute in play is
   dropped (every user type then has a strict preference) — counted as ``ties``.
4. Pairs are split train/validation/test by prompt first (``fractions``, ``seed``).
5. Within each split, pairs are drawn at the ``conflict_rate`` (1.0 = the HH dataset of §4.2;
   0.75 / 0.5 as §4.3.2; None keeps every pair). Conflicting = the attribute users do not all
   agree (Definition 4.2; App. D.1 for three modes). The default size is the paper's: as many
   pairs as the split has conflicting ones (``max_pairs`` caps the total).
6. Users: ``users="attribute"`` — one user per attribute, r(y; k) = score_k(y) (HH: helpfulness
   vs honesty; HHT adds truthfulness), every kept pair labelled by every user, ``user_id`` the
   attribute name, ``user_latent`` its index. ``users="simplex"`` — ``n_users`` users with
   weights z ~ Dirichlet(alpha·1_K), r(y; z) = z · scores(y) (App. D.2, 2-D and 3-D), each
   labelling ``pairs_per_user`` pairs of one split (new users per split), ties under r dropped.

Note the paper's two listings disagree on which index is helpfulness (§4.2: z = 0 helpfulness;
App. C.2 eq. 20: z = 0 honesty); here the index is the position in ``attributes``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..records import SPLITS, PreferenceRecord
from .pairs import Built, ScoredPair, all_pairs, decisions, is_conflicting, select_conflict_rate, split_pairs
from .source import Source, SourceRowError, iter_rows, require, source_name

UF_ATTRIBUTES = ("helpfulness", "honesty", "instruction_following", "truthfulness")
HH = ("helpfulness", "honesty")
HHT = ("helpfulness", "honesty", "truthfulness")


def _rating(value: Any) -> float | None:
    """A UF ``Rating`` ("1".."5", int or "N/A") as a float, None when not numeric."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if np.isfinite(out) else None


def read_ultrafeedback(source: Source, split: str = "train") -> tuple[list[ScoredPair], dict[str, int]]:
    """All C(n, 2) completion pairs of every prompt, with the numeric ratings each completion has.

    Returns (pairs, counts) with counts ``rows``, ``completions``, ``pairs``.
    """
    where = source_name(source)
    pairs: list[ScoredPair] = []
    n_rows = n_completions = 0
    for line, row in iter_rows(source, split):
        require(row, {"instruction": str, "completions": list}, where, line)
        responses, scores = [], []
        for k, comp in enumerate(row["completions"]):
            if not isinstance(comp, dict) or not isinstance(comp.get("response"), str):
                raise SourceRowError(f"{where}:{line}: completions[{k}] needs a text 'response'")
            if not comp["response"].strip():
                continue
            notes = comp.get("annotations") or {}
            if not isinstance(notes, dict):
                raise SourceRowError(f"{where}:{line}: completions[{k}].annotations should be an object")
            rated = {}
            for name in UF_ATTRIBUTES:
                note = notes.get(name)
                value = _rating(note.get("Rating") if isinstance(note, dict) else None)
                if value is not None:
                    rated[name] = value
            responses.append(comp["response"])
            scores.append(rated)
        n_rows += 1
        n_completions += len(responses)
        pairs += all_pairs(row["instruction"], responses, scores, id_prefix=f"uf{line}")
    return pairs, {"rows": n_rows, "completions": n_completions, "pairs": len(pairs)}


@dataclass
class UltraFeedbackConfig:
    """How to turn UltraFeedback into users (see the module docstring for the rules)."""

    attributes: tuple[str, ...] = HH
    users: str = "attribute"  # "attribute" (K-mode) or "simplex" (Dirichlet weights)
    conflict_rate: float | None = 1.0  # None keeps every pair
    max_pairs: int | None = None  # cap on kept pairs over all splits (split by fractions)
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    n_users: int = 1000  # simplex only: users over all splits
    pairs_per_user: int = 30  # simplex only
    alpha: float = 0.5  # simplex only: Dirichlet concentration (App. D.2)

    def __post_init__(self) -> None:
        self.attributes = tuple(self.attributes)
        unknown = [a for a in self.attributes if a not in UF_ATTRIBUTES]
        if unknown or len(self.attributes) < 2 or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"attributes must be >= 2 distinct names from {UF_ATTRIBUTES}, got {self.attributes}")
        if self.users not in ("attribute", "simplex"):
            raise ValueError(f"users must be 'attribute' or 'simplex', got {self.users!r}")
        if self.conflict_rate is not None and not 0.0 <= self.conflict_rate <= 1.0:
            raise ValueError(f"conflict_rate must be in [0, 1] or None, got {self.conflict_rate}")
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1 or None, got {self.max_pairs}")
        if self.n_users < 1 or self.pairs_per_user < 1 or self.alpha <= 0:
            raise ValueError("n_users, pairs_per_user and alpha must be positive")


def filter_pairs(pairs: Sequence[ScoredPair], attributes: Sequence[str],
                 tie_policy: str = "any") -> tuple[list[ScoredPair], dict[str, int]]:
    """Drop pairs missing a rating in play, and (``tie_policy="any"``) pairs tied on any attribute
    in play; ``"per_user"`` keeps a pair while at least one attribute user has a strict preference."""
    if tie_policy not in ("any", "per_user"):
        raise ValueError(f"tie_policy must be 'any' or 'per_user', got {tie_policy!r}")
    rated = [p for p in pairs if p.has(attributes)]
    signs = decisions(rated, attributes)
    keep = (signs != 0).all(axis=1) if tie_policy == "any" else (signs != 0).any(axis=1)
    kept = [p for p, k in zip(rated, keep) if k]
    return kept, {"missing": len(pairs) - len(rated), "ties": len(rated) - len(kept)}


def _select(pairs: list[ScoredPair], attributes: Sequence[str], rate: float | None, cap: int | None,
            rng: np.random.Generator) -> list[ScoredPair]:
    if rate is None:
        idx = np.arange(len(pairs))
        if cap is not None and cap < len(idx):
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
    else:
        conflicting = is_conflicting(decisions(pairs, attributes))
        idx = select_conflict_rate(conflicting, rate, rng=rng)
        if cap is not None and cap < len(idx):
            # keep the rate exact under the cap: redraw at the capped size
            idx = select_conflict_rate(conflicting, rate, n_pairs=cap, rng=rng)
    return [pairs[i] for i in idx]


def build_ultrafeedback(source: Source, config: UltraFeedbackConfig | None = None, *,
                        split: str = "train") -> Built:
    """UltraFeedback -> records (rules in the module docstring); ``split`` is the dataset split
    used when ``source`` is a dataset name. Counts: rows, pairs, missing, ties, per-split kept
    pairs and their conflict rate, records."""
    config = config or UltraFeedbackConfig()
    attrs = config.attributes
    raw, counts = read_ultrafeedback(source, split)
    pairs, dropped = filter_pairs(raw, attrs, "any")
    counts.update(dropped)
    rng = np.random.default_rng(config.seed)
    by_split = split_pairs(pairs, config.fractions, config.seed)
    records: list[PreferenceRecord] = []
    users_left = config.n_users
    for s_index, s in enumerate(SPLITS):
        cap = None if config.max_pairs is None else max(1, round(config.max_pairs * config.fractions[s_index]))
        pool = _select(by_split[s], attrs, config.conflict_rate, cap, rng) if by_split[s] else []
        counts[f"pairs_{s}"] = len(pool)
        if pool:
            counts[f"conflict_rate_{s}"] = float(is_conflicting(decisions(pool, attrs)).mean())
        if config.users == "attribute":
            for pair in pool:
                for k, name in enumerate(attrs):
                    records.append(pair.record(name, pair.sign(name) > 0, user_latent=k, split=s, attributes=attrs))
        elif pool:
            n_users = users_left if s == SPLITS[-1] else max(1, round(config.n_users * config.fractions[s_index]))
            users_left -= n_users
            records += _simplex_records(pool, attrs, n_users, config, s, rng)
    counts["records"] = len(records)
    counts["users"] = len({r.user_id for r in records})
    return Built(records, counts)


def _simplex_records(pool: list[ScoredPair], attrs: Sequence[str], n_users: int, config: UltraFeedbackConfig,
                     split: str, rng: np.random.Generator) -> list[PreferenceRecord]:
    """Users with z ~ Dirichlet(alpha·1_K) labelling ``pairs_per_user`` pairs each; ties dropped."""
    score_a = np.stack([p.scores(attrs)[0] for p in pool])  # (P, K)
    score_b = np.stack([p.scores(attrs)[1] for p in pool])
    out = []
    for u in range(n_users):
        z = rng.dirichlet(np.full(len(attrs), config.alpha))
        picks = rng.choice(len(pool), size=min(config.pairs_per_user, len(pool)), replace=False)
        margin = (score_a[picks] - score_b[picks]) @ z
        for i, m in zip(picks, margin):
            if m == 0.0:
                continue
            out.append(pool[i].record(f"uf-simplex-{split}-{u:05d}", bool(m > 0), user_latent=[float(w) for w in z],
                                      split=split, attributes=attrs))
    return out


def conflict_summary(records: Sequence[PreferenceRecord]) -> dict[str, float]:
    """Fraction of pairs (by ``pair_id``) on which the records' users disagree, per split."""
    choice: dict[tuple[str, str], set[str]] = {}
    for r in records:
        key = (r.split or "all", r.pair_id or "")
        choice.setdefault(key, set()).add(str(r.chosen))
    per: Counter = Counter()
    conf: Counter = Counter()
    for (s, _), chosen in choice.items():
        per[s] += 1
        conf[s] += len(chosen) > 1
    return {s: conf[s] / per[s] for s in per}
