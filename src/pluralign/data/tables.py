"""Column views of records that task sampling and models need: users, types, option vectors."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .records import PreferenceRecord


def user_ids(records: Sequence[PreferenceRecord]) -> list[str]:
    return [r.user_id for r in records]


def user_types(records: Sequence[PreferenceRecord]) -> list[int]:
    """Ground-truth integer type of each record's user, -1 where unknown or continuous."""
    return [r.user_latent if isinstance(r.user_latent, int) else -1 for r in records]


def option_vectors(records: Sequence[PreferenceRecord]) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, D) float tensors of the chosen and rejected options of numeric records."""
    if not records:
        raise ValueError("no records")
    if not all(r.is_numeric for r in records):
        raise TypeError("option_vectors needs numeric options; embed text records first "
                        "(pluralign.features)")
    # through NumPy: ~10x faster than torch.tensor on nested lists for embedding-sized vectors
    chosen = torch.from_numpy(np.asarray([r.chosen for r in records], dtype=np.float32))
    rejected = torch.from_numpy(np.asarray([r.rejected for r in records], dtype=np.float32))
    return chosen, rejected


def option_key(option) -> str:
    """A hashable key of an option (vector, text or messages) to compare options across records."""
    import json

    return json.dumps(option, sort_keys=True)


def true_chosen(rec: PreferenceRecord):
    """The option the user truly prefers: ``chosen``, or ``rejected`` if label noise flipped it."""
    return rec.rejected if rec.meta.get("flipped") else rec.chosen


def type_choices(records: Sequence[PreferenceRecord], noisy: bool = False) -> dict[str, dict[int, str]]:
    """``{pair_id: {user type: key of the option that type prefers}}`` over records with an
    integer ``user_latent`` and a ``pair_id``. ``noisy=False`` undoes flipped labels."""
    out: dict[str, dict[int, str]] = {}
    for r in records:
        if r.pair_id is None or not isinstance(r.user_latent, int):
            continue
        out.setdefault(r.pair_id, {})[r.user_latent] = option_key(r.chosen if noisy else true_chosen(r))
    return out


def pair_conflicts(records: Sequence[PreferenceRecord], noisy: bool = False) -> dict[str, bool]:
    """For every pair labelled by at least two user types: do the types disagree on it?"""
    return {p: len(set(c.values())) > 1 for p, c in type_choices(records, noisy).items() if len(c) > 1}


def describe(records: Sequence[PreferenceRecord]) -> dict:
    """A JSON-able summary of a record set: sizes, option kind, users, types, conflicts, splits."""
    import numpy as np

    from .records import is_messages

    if not records:
        return {"n_records": 0}
    first = records[0]
    kind = "vector" if first.is_numeric else ("messages" if is_messages(first.chosen) else "text")
    per_user: dict[str, int] = {}
    for r in records:
        per_user[r.user_id] = per_user.get(r.user_id, 0) + 1
    counts = np.array(list(per_user.values()))
    out: dict = {
        "n_records": len(records),
        "option_kind": kind,
        "option_dim": len(first.chosen) if kind == "vector" else None,
        "n_users": len(per_user),
        "pairs_per_user": {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())},
        "n_pairs": len({r.pair_id for r in records if r.pair_id is not None}) or None,
        "n_prompts": len({prompt_key(r) for r in records}),
        "attributes": sorted({a for r in records if r.attributes for a in r.attributes}) or None,
        "flipped": sum(1 for r in records if r.meta.get("flipped")),
    }
    int_types: dict[int, set] = {}
    weights = 0
    for r in records:
        if isinstance(r.user_latent, int):
            int_types.setdefault(r.user_latent, set()).add(r.user_id)
        elif r.user_latent is not None:
            weights += 1
    if int_types:
        out["user_types"] = {str(t): {"users": len(u), "records": sum(1 for r in records if r.user_latent == t)}
                             for t, u in sorted(int_types.items())}
        conf = pair_conflicts(records)
        out["type_conflict_rate"] = float(np.mean(list(conf.values()))) if conf else None
        out["pairs_labelled_by_2plus_types"] = len(conf)
    elif weights:
        out["user_types"] = f"continuous weight vectors ({weights} records)"
    splits: dict[str, dict[str, int]] = {}
    for r in records:
        s = splits.setdefault(r.split or "none", {"records": 0, "pairs": set()})
        s["records"] += 1
        s["pairs"].add(r.pair_id or id(r))
    out["splits"] = {k: {"records": v["records"], "pairs": len(v["pairs"])} for k, v in splits.items()}
    return out


def prompt_key(rec: PreferenceRecord) -> str:
    from .records import prompt_text

    return prompt_text(rec.prompt)
