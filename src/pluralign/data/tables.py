"""Column views of records that task sampling and models need: users, types, option vectors."""

from __future__ import annotations

from typing import Sequence

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
    chosen = torch.tensor([r.chosen for r in records], dtype=torch.float32)
    rejected = torch.tensor([r.rejected for r in records], dtype=torch.float32)
    return chosen, rejected
