"""HelpSteer / HelpSteer2 (``nvidia/HelpSteer``, ``nvidia/HelpSteer2``) to per-attribute
pairwise preferences.

Raw schema (one row per response): ``prompt``, ``response`` and Likert 0–4 integers
``helpfulness``, ``correctness``, ``coherence``, ``complexity``, ``verbosity``. Several rows
share a prompt (HelpSteer2: two responses per prompt).

Rules (CMPO thesis §5.1.1 forms pairwise comparisons from these scalar ratings):

1. Rows are grouped by prompt; every group gives all C(n, 2) response pairs (identical texts
   skipped). Rows missing a rating in play are dropped (counted as ``missing_rows``).
2. Pairs tied on **every** attribute in play carry no preference and are dropped (``ties``).
3. ``per_attribute=True`` (default): one record per (pair, attribute) on which the two responses
   differ: ``user_id`` = the attribute, ``user_latent`` = its index, ``chosen`` = the response
   rated higher on it. ``per_attribute=False``: one record per pair, ``chosen`` = the higher sum
   of ratings in play (pairs with equal sums dropped, counted as ``sum_ties``), ``user_id="all"``.
4. Every record's ``attributes`` holds both options' ratings on every attribute in play
   (``[chosen, rejected]``) and ``pair_id`` names the pair, so the CMPO weight construction
   (thesis eq. 3.2: subsets of the attributes on which ``chosen`` wins) can be built on top.
5. ``fractions`` splits by prompt (None leaves ``split`` unset).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..records import PreferenceRecord
from ..splits import split_records
from .pairs import Built, ScoredPair, all_pairs
from .source import Source, SourceRowError, iter_rows, require, source_name

HELPSTEER_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


@dataclass
class HelpSteerConfig:
    attributes: tuple[str, ...] = HELPSTEER_ATTRIBUTES
    per_attribute: bool = True
    fractions: tuple[float, float, float] | None = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self) -> None:
        self.attributes = tuple(self.attributes)
        if not self.attributes or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"attributes must be distinct names, got {self.attributes}")


def _likert(value: object, name: str, where: str, line: int) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise SourceRowError(f"{where}:{line}: field '{name}' should be a number 0-4, got {value!r}")
    return float(value)


def read_helpsteer(source: Source, attributes: Sequence[str] = HELPSTEER_ATTRIBUTES,
                   split: str = "train") -> tuple[list[ScoredPair], dict[str, int]]:
    """All response pairs per prompt with their ratings; counts rows, missing_rows, prompts, pairs."""
    where = source_name(source)
    groups: dict[str, list[tuple[str, dict[str, float], int]]] = {}
    n_rows = missing = 0
    for line, row in iter_rows(source, split):
        require(row, {"prompt": str, "response": str}, where, line)
        n_rows += 1
        scores = {n: _likert(row.get(n), n, where, line) for n in attributes}
        if any(v is None for v in scores.values()) or not row["response"].strip():
            missing += 1
            continue
        groups.setdefault(row["prompt"], []).append((row["response"], scores, line))  # type: ignore[arg-type]
    pairs: list[ScoredPair] = []
    for prompt, rows in groups.items():
        pairs += all_pairs(prompt, [r for r, _, _ in rows], [s for _, s, _ in rows], id_prefix=f"hs{rows[0][2]}")
    return pairs, {"rows": n_rows, "missing_rows": missing, "prompts": len(groups), "pairs": len(pairs)}


def build_helpsteer(source: Source, config: HelpSteerConfig | None = None, *, split: str = "train") -> Built:
    """HelpSteer(2) -> per-attribute preference records (rules in the module docstring)."""
    config = config or HelpSteerConfig()
    attrs = config.attributes
    pairs, counts = read_helpsteer(source, attrs, split)
    records: list[PreferenceRecord] = []
    ties = sum_ties = 0
    for pair in pairs:
        signs = [pair.sign(n) for n in attrs]
        if not any(signs):
            ties += 1
            continue
        if config.per_attribute:
            for k, (name, sign) in enumerate(zip(attrs, signs)):
                if sign:
                    records.append(pair.record(name, sign > 0, user_latent=k, attributes=attrs))
        else:
            a, b = pair.scores(attrs)
            if a.sum() == b.sum():
                sum_ties += 1
                continue
            records.append(pair.record("all", bool(a.sum() > b.sum()), attributes=attrs))
    counts.update(ties=ties, records=len(records))
    if not config.per_attribute:
        counts["sum_ties"] = sum_ties
    if config.fractions is not None and records:
        records = split_records(records, config.fractions, config.seed, group_by="prompt", keep_existing=False)
    return Built(records, counts)
