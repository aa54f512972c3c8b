"""Train/validation/test splits that never leak: grouped by prompt for text, by pair for
synthetic data (DESIGN.md §4: the published code split by pair and leaked prompts)."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

from .records import SPLITS, PreferenceRecord, prompt_text

GroupBy = Literal["auto", "prompt", "pair"]


def group_key(rec: PreferenceRecord, group_by: GroupBy = "auto") -> str:
    """The unit that must stay inside one split.

    ``prompt``: the prompt text. ``pair``: ``pair_id`` or, failing that, the unordered pair of
    options. ``auto``: prompt for text records with a prompt, pair otherwise.
    """
    if group_by == "auto":
        group_by = "prompt" if (not rec.is_numeric and prompt_text(rec.prompt)) else "pair"
    if group_by == "prompt":
        return "prompt:" + prompt_text(rec.prompt)
    if rec.pair_id is not None:
        return "pair:" + rec.pair_id
    a, b = sorted([repr(rec.chosen), repr(rec.rejected)])
    return f"pair:{prompt_text(rec.prompt)}|{a}|{b}"


def split_records(records: Sequence[PreferenceRecord], fractions: Sequence[float] = (0.5, 0.25, 0.25),
                  seed: int = 0, group_by: GroupBy = "auto",
                  keep_existing: bool = True) -> list[PreferenceRecord]:
    """Assign ``split`` to every record; groups are shuffled with ``seed`` and cut by fraction.

    The paper's synthetic split is 10k/5k/5k of 20k pairs, i.e. the default (0.5, 0.25, 0.25).
    With ``keep_existing`` and every record already carrying a split, records are returned as is.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    if keep_existing and records and all(r.split is not None for r in records):
        return list(records)
    keys = [group_key(r, group_by) for r in records]
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    bounds = np.round(np.cumsum(fractions)[:2] * len(groups)).astype(int)
    assign = {}
    for rank, g in enumerate(order):
        assign[groups[g]] = SPLITS[int(np.searchsorted(bounds, rank, side="right"))]
    return [r.replace(split=assign[k]) for r, k in zip(records, keys)]


def by_split(records: Sequence[PreferenceRecord]) -> dict[str, list[PreferenceRecord]]:
    """Records grouped by their ``split`` field (every split present, maybe empty)."""
    out: dict[str, list[PreferenceRecord]] = {s: [] for s in SPLITS}
    for r in records:
        if r.split is None:
            raise ValueError(f"record of user {r.user_id!r} has no split; call split_records first")
        out[r.split].append(r)
    return out


def how_split(records: Sequence[PreferenceRecord], fractions: Sequence[float], seed: int) -> str:
    """How :func:`split_records` splits ``records``, in words, for the message of an empty split
    (with few prompts a split can get no group at all)."""
    if records and all(r.split is not None for r in records):
        return f"the file's 'split' column assigns all {len(records)} records"
    groups = {group_key(r) for r in records}
    unit = "prompt" if any(k.startswith("prompt:") for k in groups) else "pair"
    return (f"{len(records)} records in {len(groups)} {unit} group(s), split "
            f"{'/'.join(f'{f:g}' for f in fractions)} by {unit} with seed {seed}")
