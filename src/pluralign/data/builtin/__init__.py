"""Built-in text preference data that needs no download, with ground-truth users (issue 4, item 4).

- ``pets``: a Pets-style set from templates (VPL App. E.4), two user groups that agree on the
  best and worst pet and disagree on cats vs dogs (:mod:`.pets`).
- ``corpus-*``: simulated users over the shipped corpus of real SmolLM2 responses, preferring by
  deterministic attribute scores (:mod:`.corpus`, :mod:`.scorers`).

``load(name, **overrides)`` returns records (text options, ``split`` set, ``user_latent`` = the
ground-truth type); ``available()`` lists the names with a one-line description.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..records import PreferenceRecord
from .corpus import PREFERENCES, corpus_path, corpus_preferences, corpus_stats, load_corpus
from .pets import pet_sentences, pets_preferences
from .scorers import SCORERS, score


@dataclass(frozen=True)
class Builtin:
    """A named built-in data set: a builder and its default arguments."""

    build: Callable[..., list[PreferenceRecord]]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


REGISTRY: dict[str, Builtin] = {
    "pets": Builtin(pets_preferences, {},
                    "Pets (Full): bird > {dog, cat} > rabbit, dog group vs cat group; ~1/6 of pairs conflict"),
    "pets-divergent": Builtin(pets_preferences, {"divergent_only": True},
                              "Pets (Divergent): only dog-vs-cat pairs, 100% conflict"),
    "corpus-2mode": Builtin(corpus_preferences, {"users": ("concise", "detailed"), "conflict_rate": 1.0},
                            "SmolLM2 corpus, concise vs detailed users (word count), 100% conflict (the default)"),
    "corpus-length": Builtin(corpus_preferences, {"users": ("concise", "detailed"), "conflict_rate": 1.0},
                             "same as corpus-2mode: concise vs detailed users"),
    "corpus-format": Builtin(corpus_preferences, {"users": ("lists", "prose"), "conflict_rate": 1.0},
                             "SmolLM2 corpus, list-lovers vs prose-lovers (list_use), 100% conflict"),
    "corpus-tone": Builtin(corpus_preferences, {"users": ("formal", "casual"), "conflict_rate": 1.0},
                           "SmolLM2 corpus, formal vs casual users (formality), 100% conflict"),
    "corpus-3mode": Builtin(corpus_preferences, {"users": ("concise", "lists", "formal"), "conflict_rate": 1.0},
                            "SmolLM2 corpus, three one-attribute users (concise, lists, formal); pairs all "
                            "three agree on are dropped (as VPL's UF-P-4)"),
}
DEFAULT = "corpus-2mode"


def available() -> dict[str, str]:
    """``{name: description}`` of the built-in data sets."""
    return {name: b.description for name, b in REGISTRY.items()}


def load(name: str = DEFAULT, **overrides: Any) -> list[PreferenceRecord]:
    """Records of a built-in data set; ``overrides`` replace its builder's arguments (e.g. ``seed``)."""
    if name not in REGISTRY:
        raise KeyError(f"unknown built-in data set {name!r}; available: {', '.join(REGISTRY)}")
    entry = REGISTRY[name]
    return entry.build(**{**entry.defaults, **overrides})


__all__ = ["REGISTRY", "DEFAULT", "Builtin", "available", "load", "pets_preferences", "pet_sentences",
           "corpus_preferences", "corpus_path", "corpus_stats", "load_corpus", "PREFERENCES", "SCORERS", "score"]
