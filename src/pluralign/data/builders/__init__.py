"""Builders for public multi-attribute preference datasets (issue 4, item 3).

Each builder takes a local JSONL/JSON/Parquet file, rows in memory or a ``datasets`` name and
returns :class:`Built` (``records`` + ``counts`` of what every filtering rule kept or dropped):

- :func:`build_ultrafeedback` — UltraFeedback with attribute users (HH, HHT) or simplex users,
  at a chosen conflict rate (NP paper §4.2, §4.3.2, App. C.2–D.2);
- :func:`build_ufp` — VPL's UF-P-2 / UF-P-4 with survey-pool contexts (VPL App. E.4);
- :func:`build_helpsteer` — HelpSteer / HelpSteer2 Likert ratings to per-attribute pairs;
- :func:`build_saferlhf` — PKU-SafeRLHF / BeaverTails helpfulness and harmlessness pairs.

Records carry ``user_id``, ``user_latent``, ``pair_id``, ``attributes`` and a prompt-grouped
``split``. ``docs/text-data.md`` lists the rules and the fixture counts.
"""

from .helpsteer import HELPSTEER_ATTRIBUTES, HelpSteerConfig, build_helpsteer, read_helpsteer
from .pairs import (Built, ScoredPair, all_pairs, decisions, is_conflicting, select_conflict_rate,
                    split_pairs)
from .pku_saferlhf import PKU_ATTRIBUTES, SafeRLHFConfig, build_saferlhf
from .source import SourceRowError, iter_rows
from .ufp import UFPConfig, UFPData, build_ufp
from .ultrafeedback import (HH, HHT, UF_ATTRIBUTES, UltraFeedbackConfig, build_ultrafeedback,
                            conflict_summary, filter_pairs, read_ultrafeedback)

__all__ = [
    "Built", "ScoredPair", "all_pairs", "decisions", "is_conflicting", "select_conflict_rate", "split_pairs",
    "SourceRowError", "iter_rows",
    "UF_ATTRIBUTES", "HH", "HHT", "UltraFeedbackConfig", "build_ultrafeedback", "read_ultrafeedback",
    "filter_pairs", "conflict_summary",
    "UFPConfig", "UFPData", "build_ufp",
    "HELPSTEER_ATTRIBUTES", "HelpSteerConfig", "build_helpsteer", "read_helpsteer",
    "PKU_ATTRIBUTES", "SafeRLHFConfig", "build_saferlhf",
]
