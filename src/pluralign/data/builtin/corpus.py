"""The shipped corpus of real SmolLM2 responses and its simulated users (issue 4, item 4).

``pluralign/resources/smollm2_corpus.jsonl.gz`` holds several responses per prompt generated
once by the offline SmolLM2-135M-Instruct under instructions that vary length, format and tone
(``scripts/generate_corpus.py``; docs/builtin-data.md has the command and statistics). Each
response is scored by the deterministic scorers of :mod:`.scorers`; a user type prefers by one
attribute in one direction, e.g. ``concise`` (fewer words) vs ``detailed`` (more words) — the
"concise vs detailed" users of VPL (Poddar et al.) Figure 3, and the one-attribute users of the
NP paper's UltraFeedback HH / HHT experiments (Kobalczyk et al. §4.2).

Pairs are all C(n, 2) responses of a prompt; the prompt is the plain question (the style
instruction is *not* shown, so a model has to judge the response itself). Splits are by prompt.
"""

from __future__ import annotations

import gzip
import json
import os
from functools import lru_cache
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..records import SPLITS, PreferenceRecord
from .pool import PoolPair, label_pool
from .scorers import SCORERS, score

CORPUS_FILE = "smollm2_corpus.jsonl.gz"

# A user type: (attribute, direction). +1 prefers the higher score.
PREFERENCES: dict[str, tuple[str, int]] = {
    "concise": ("length", -1), "detailed": ("length", +1),
    "lists": ("list_use", +1), "prose": ("list_use", -1),
    "formal": ("formality", +1), "casual": ("formality", -1),
}
# Differences smaller than this count as a tie (the pair is dropped): a user does not prefer 41
# words to 40, and a model could not see that difference either.
DEFAULT_MARGINS: dict[str, float] = {"length": 10.0, "list_use": 0.25, "formality": 1.0, "sentence_length": 3.0}


def corpus_path() -> Path:
    """Path of the shipped corpus file inside the installed package."""
    return Path(str(resources.files("pluralign") / "resources" / CORPUS_FILE))


def load_corpus(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Rows of the corpus (one per response), each with ``scores`` added; ordered by response id.

    Row fields: prompt_id, response_id, category, prompt, style {length, format, tone},
    instruction, response, truncated, new_tokens, model, generation (settings), scores.
    """
    return [dict(r) for r in _load(str(path or corpus_path()))]


@lru_cache(maxsize=4)
def _load(path: str) -> tuple[dict[str, Any], ...]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"corpus file {path} not found; it ships with pluralign "
                                f"(src/pluralign/resources/{CORPUS_FILE}) or is made by scripts/generate_corpus.py")
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text = row["response"]
                _ = row["prompt"], row["prompt_id"], row["response_id"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{line_no}: not a corpus row ({e})") from None
            if not isinstance(text, str) or not text.strip():
                continue  # an empty generation cannot be an option
            row["scores"] = score(text)
            rows.append(row)
    rows.sort(key=lambda r: r["response_id"])
    return tuple(rows)


def corpus_stats(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """Counts and score summaries of the corpus (printed in docs/builtin-data.md)."""
    rows = load_corpus(path)
    prompts = {r["prompt_id"] for r in rows}
    out: dict[str, Any] = {"responses": len(rows), "prompts": len(prompts),
                           "truncated": sum(bool(r.get("truncated")) for r in rows),
                           "categories": _count(r["category"] for r in {r["prompt_id"]: r for r in rows}.values())}
    for name in SCORERS:
        v = np.array([r["scores"][name] for r in rows])
        out[name] = {"mean": round(float(v.mean()), 3), "min": float(v.min()),
                     "median": float(np.median(v)), "max": float(v.max())}
    return out


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def parse_user_type(name: str) -> tuple[str, int]:
    """``(attribute, direction)`` of a named type ("concise") or of "attribute:+" / "attribute:-"."""
    if name in PREFERENCES:
        return PREFERENCES[name]
    if ":" in name:
        attr, sign = name.rsplit(":", 1)
        if attr in SCORERS and sign in ("+", "-"):
            return attr, (1 if sign == "+" else -1)
    raise ValueError(f"unknown user type {name!r}; use one of {sorted(PREFERENCES)} "
                     f"or 'attribute:+' / 'attribute:-' with an attribute in {sorted(SCORERS)}")


def corpus_pool(fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0,
                path: str | os.PathLike | None = None) -> list[PoolPair]:
    """All C(n, 2) response pairs of every prompt, each prompt's pairs in one split (by prompt)."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    by_prompt: dict[str, list[dict]] = {}
    for row in _load(str(path or corpus_path())):
        by_prompt.setdefault(row["prompt_id"], []).append(row)
    ids = sorted(by_prompt)
    order = np.random.default_rng(seed).permutation(len(ids))
    bounds = np.round(np.cumsum(fractions)[:2] * len(ids)).astype(int)
    split_of = {ids[g]: SPLITS[int(np.searchsorted(bounds, rank, side="right"))] for rank, g in enumerate(order)}
    pool = []
    for pid in ids:
        for ra, rb in combinations(by_prompt[pid], 2):
            if ra["response"].strip() == rb["response"].strip():
                continue
            pool.append(PoolPair(
                pair_id=f"{ra['response_id']}|{rb['response_id']}", prompt=ra["prompt"],
                a=ra["response"], b=rb["response"], scores_a=ra["scores"], scores_b=rb["scores"],
                split=split_of[pid], meta={"prompt_id": pid, "category": ra["category"]}))
    return pool


def type_signs(pool: Sequence[PoolPair], user_types: Sequence[str],
               margins: dict[str, float] | None = None) -> np.ndarray:
    """(P, K) preferences of each type on each pair: +1 option a, -1 option b, 0 tie (within margin)."""
    margins = {**DEFAULT_MARGINS, **(margins or {})}
    out = np.zeros((len(pool), len(user_types)), dtype=np.int8)
    for k, name in enumerate(user_types):
        attr, direction = parse_user_type(name)
        diff = np.array([p.scores_a[attr] - p.scores_b[attr] for p in pool])
        out[:, k] = np.where(np.abs(diff) < margins.get(attr, 0.0), 0, np.sign(diff) * direction)
    return out


def corpus_preferences(users: Sequence[str] = ("concise", "detailed"), conflict_rate: float | None = 1.0, *,
                       users_per_type: int = 50, pairs_per_user: int = 64,
                       fractions: Sequence[float] = (0.5, 0.25, 0.25), margins: dict[str, float] | None = None,
                       seed: int = 0, path: str | os.PathLike | None = None) -> list[PreferenceRecord]:
    """Preference records of simulated users over the shipped SmolLM2 corpus.

    ``users``: K user types, each preferring by one attribute (see :data:`PREFERENCES`, or
    "attribute:+"/"attribute:-"); ``user_latent`` is the index in this list. A pair any type ties
    on (difference below ``margins``, default :data:`DEFAULT_MARGINS`) is dropped.
    ``conflict_rate``: fraction of kept pairs on which the types do not all agree (None: keep
    the natural mix). Opposite types on one attribute (concise vs detailed) always disagree, so
    only 1.0 is possible for them. ``users_per_type`` users per type, each labelling
    ``pairs_per_user`` pairs spread over the splits (``split`` is set, grouped by prompt).
    Deterministic in ``seed``.
    """
    if len(users) < 1 or len(set(users)) != len(users):
        raise ValueError(f"users must be distinct user types, got {list(users)}")
    pool = corpus_pool(fractions, seed, path)
    signs = type_signs(pool, users, margins)
    return label_pool(pool, signs, list(users), users_per_type=users_per_type, pairs_per_user=pairs_per_user,
                      conflict_rate=conflict_rate, rng=np.random.default_rng(seed + 1), source="smollm2-corpus")
