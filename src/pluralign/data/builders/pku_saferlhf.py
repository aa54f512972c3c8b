"""PKU-SafeRLHF / BeaverTails preference data (``PKU-Alignment/PKU-SafeRLHF``) to per-attribute
pairwise preferences.

Raw schema (one row per pair): ``prompt``, ``response_0``, ``response_1``,
``better_response_id`` (0/1, the more helpful response), ``safer_response_id`` (0/1, the more
harmless response), ``is_response_0_safe``, ``is_response_1_safe`` (bools); newer releases add
``response_{0,1}_severity_level`` and harm categories, which are carried when present.

Rules:

1. Rows whose two responses are identical are dropped (``identical``).
2. ``require_safety_differs=True`` keeps only pairs whose responses have different safety
   labels (the CMPO thesis §5.1.2 filter), counted as ``same_safety``.
3. Each pair gives one record per attribute: ``helpfulness`` (``chosen`` = the better
   response) and ``harmlessness`` (``chosen`` = the safer one); ``user_id`` = the attribute,
   ``user_latent`` = its index. Scores in ``attributes`` (``[chosen, rejected]``):
   ``helpfulness`` and ``harmlessness`` are 1 for the response the annotators picked, 0 for the
   other; ``is_safe`` is the safety label as 1/0; ``severity_level`` when present.
4. ``fractions`` splits by prompt (None leaves ``split`` unset).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import PreferenceRecord
from ..splits import split_records
from .pairs import Built, ScoredPair
from .source import Source, SourceRowError, iter_rows, require, source_name

PKU_ATTRIBUTES = ("helpfulness", "harmlessness")
_ID_FIELDS = {"helpfulness": "better_response_id", "harmlessness": "safer_response_id"}


@dataclass
class SafeRLHFConfig:
    attributes: tuple[str, ...] = PKU_ATTRIBUTES
    require_safety_differs: bool = False
    fractions: tuple[float, float, float] | None = (0.8, 0.1, 0.1)
    seed: int = 0

    def __post_init__(self) -> None:
        self.attributes = tuple(self.attributes)
        bad = [a for a in self.attributes if a not in PKU_ATTRIBUTES]
        if bad or not self.attributes:
            raise ValueError(f"attributes must be a non-empty subset of {PKU_ATTRIBUTES}, got {self.attributes}")


def _response_id(row: dict, name: str, where: str, line: int) -> int:
    value = row.get(name)
    if isinstance(value, bool) or value not in (0, 1):
        raise SourceRowError(f"{where}:{line}: field '{name}' should be 0 or 1, got {value!r}")
    return int(value)


def _safe(row: dict, name: str, where: str, line: int) -> float:
    value = row.get(name)
    if not isinstance(value, bool):
        raise SourceRowError(f"{where}:{line}: field '{name}' should be true or false, got {value!r}")
    return float(value)


def build_saferlhf(source: Source, config: SafeRLHFConfig | None = None, *, split: str = "train") -> Built:
    """PKU-SafeRLHF -> per-attribute preference records (rules in the module docstring)."""
    config = config or SafeRLHFConfig()
    where = source_name(source)
    records: list[PreferenceRecord] = []
    n_rows = identical = same_safety = 0
    for line, row in iter_rows(source, split):
        require(row, {"prompt": str, "response_0": str, "response_1": str}, where, line)
        n_rows += 1
        winners = {n: _response_id(row, f, where, line) for n, f in _ID_FIELDS.items()}
        safe = [_safe(row, f"is_response_{k}_safe", where, line) for k in (0, 1)]
        if row["response_0"] == row["response_1"]:
            identical += 1
            continue
        if config.require_safety_differs and safe[0] == safe[1]:
            same_safety += 1
            continue
        scores = [{n: float(winners[n] == k) for n in PKU_ATTRIBUTES} | {"is_safe": safe[k]} for k in (0, 1)]
        for k in (0, 1):
            level = row.get(f"response_{k}_severity_level")
            if isinstance(level, (int, float)) and not isinstance(level, bool):
                scores[k]["severity_level"] = float(level)
        pair = ScoredPair(row["prompt"], row["response_0"], row["response_1"], scores[0], scores[1],
                          pair_id=f"pku{line}")
        for k, name in enumerate(config.attributes):
            records.append(pair.record(name, winners[name] == 0, user_latent=k))
    counts = {"rows": n_rows, "identical": identical, "records": len(records)}
    if config.require_safety_differs:
        counts["same_safety"] = same_safety
    counts["pairs"] = n_rows - identical - same_safety
    if config.fractions is not None and records:
        records = split_records(records, config.fractions, config.seed, group_by="prompt", keep_existing=False)
    return Built(records, counts)
