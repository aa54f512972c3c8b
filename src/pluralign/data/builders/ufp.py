"""VPL's UltraFeedback-P (UF-P-2, UF-P-4): controversial pairs and survey-pool contexts.

VPL App. E.4 (Poddar et al.) builds users that each rank by one UltraFeedback attribute:

- **UF-P-2**: helpfulness and honesty; pairs where the two users agree or either is indecisive
  (a tie) are removed, so every kept pair is labelled oppositely by the two users.
- **UF-P-4**: all four attributes; pairs on which all users with a strict preference agree are
  removed, and within each user's subset pairs that user rates equally are removed (a pair can
  then be labelled by 2–4 users, and users may still agree on some of it).

Contexts (VPL §5 "Data augmentation", App. E.4, Table 4): every user type has a fixed **survey
pool** of K labelled pairs (K = 100 for GPT-2, 16 for Llama-2), drawn here from that type's
*training* records; each labelled pair becomes M = 8 training items, each with its own context
of N ~ U[2, 8] pairs drawn without replacement from the survey pool of the **same user type**
(never the target pair itself). Items are :class:`pluralign.data.tasks.TaskItem` (one target,
``unseen=True`` when the target is not in the context), so :func:`pluralign.data.tasks.collate`
batches them with the option vectors of ``records``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..records import SPLITS, PreferenceRecord
from ..tasks import TaskItem
from .pairs import decisions, is_conflicting, split_pairs
from .source import Source
from .ultrafeedback import HH, UF_ATTRIBUTES, filter_pairs, read_ultrafeedback

UFP_ATTRIBUTES = {2: HH, 4: UF_ATTRIBUTES}


@dataclass
class UFPConfig:
    """UF-P construction (defaults: VPL's GPT-2 setting)."""

    n_users: int = 2  # 2 (UF-P-2) or 4 (UF-P-4)
    survey_size: int = 100  # K
    context_range: tuple[int, int] = (2, 8)  # N, inclusive
    n_duplicates: int = 8  # M
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    survey_split: str = "train"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_users not in UFP_ATTRIBUTES:
            raise ValueError(f"n_users must be 2 (UF-P-2) or 4 (UF-P-4), got {self.n_users}")
        lo, hi = self.context_range
        if not 1 <= lo <= hi:
            raise ValueError(f"context_range must satisfy 1 <= min <= max, got {self.context_range}")
        if self.survey_size < hi:
            raise ValueError(f"survey_size ({self.survey_size}) must be >= the largest context ({hi}); VPL has K > N")
        if self.n_duplicates < 1:
            raise ValueError(f"n_duplicates must be >= 1, got {self.n_duplicates}")
        if self.survey_split not in SPLITS:
            raise ValueError(f"survey_split must be one of {SPLITS}, got {self.survey_split!r}")


@dataclass
class UFPData:
    """UF-P records, each user type's survey pool and the context-augmented items per split.

    ``survey[k]``: indices into ``records`` of user type k's survey pairs. ``items[split]``: M
    :class:`TaskItem` per record of that split (target = the record, context from the survey).
    """

    records: list[PreferenceRecord]
    survey: dict[int, np.ndarray]
    items: dict[str, list[TaskItem]]
    counts: dict[str, Any] = field(default_factory=dict)


def build_ufp(source: Source, config: UFPConfig | None = None, *, split: str = "train") -> UFPData:
    """UltraFeedback -> UF-P-2 / UF-P-4 (rules in the module docstring)."""
    config = config or UFPConfig()
    attrs = UFP_ATTRIBUTES[config.n_users]
    raw, counts = read_ultrafeedback(source, split)
    pairs, dropped = filter_pairs(raw, attrs, "any" if config.n_users == 2 else "per_user")
    counts.update(dropped)
    signs = decisions(pairs, attrs)
    controversial = is_conflicting(signs)
    counts["agreeing"] = int((~controversial).sum())
    pairs = [p for p, c in zip(pairs, controversial) if c]
    by_split = split_pairs(pairs, config.fractions, config.seed)
    records: list[PreferenceRecord] = []
    for s in SPLITS:
        for pair in by_split[s]:
            for k, name in enumerate(attrs):
                sign = pair.sign(name)
                if sign != 0:  # UF-P-4: a user who rates the pair equally does not label it
                    records.append(pair.record(name, sign > 0, user_latent=k, split=s, attributes=attrs))
        counts[f"pairs_{s}"] = len(by_split[s])
    rng = np.random.default_rng(config.seed)
    survey: dict[int, np.ndarray] = {}
    for k in range(len(attrs)):
        pool = np.array([i for i, r in enumerate(records) if r.user_latent == k and r.split == config.survey_split],
                        dtype=np.int64)
        if len(pool) < config.context_range[1] + 1:
            raise ValueError(f"user type {attrs[k]!r} has {len(pool)} {config.survey_split} pairs; a survey of "
                             f"contexts up to {config.context_range[1]} needs at least {config.context_range[1] + 1}")
        survey[k] = np.sort(rng.choice(pool, size=min(config.survey_size, len(pool)), replace=False))
    items: dict[str, list[TaskItem]] = {s: [] for s in SPLITS}
    lo, hi = config.context_range
    for i, rec in enumerate(records):
        k = int(rec.user_latent)  # type: ignore[arg-type]
        candidates = survey[k][survey[k] != i]
        for _ in range(config.n_duplicates):
            n = int(rng.integers(lo, hi + 1))
            context = rng.choice(candidates, size=n, replace=False)
            items[rec.split].append(TaskItem(rec.user_id, k, context, np.array([i]),  # type: ignore[index]
                                             np.array([True])))
    counts["records"] = len(records)
    counts.update({f"records_{attrs[k]}": sum(r.user_latent == k for r in records) for k in range(len(attrs))})
    counts.update({f"items_{s}": len(items[s]) for s in SPLITS})
    return UFPData(records, survey, items, counts)
