"""Deterministic attribute scorers: a number per response text, no model involved.

Simulated users of the built-in corpus prefer by these scores (issue 4, item 4; VPL Figure 3's
"concise vs detailed" users). Every scorer is a pure function of the text, so the ground truth
of every preference is reproducible and inspectable:

- ``length``: number of words.
- ``list_use``: fraction of non-empty lines that are list items (``-``, ``*``, ``•``, ``1.``,
  ``2)``, ``a.`` ...), in [0, 1].
- ``formality``: (formal markers - casual markers) per 100 words. Casual markers: contractions
  (``don't``, ``I'm``), exclamation marks, casual words and slang (``hey``, ``gonna``,
  ``awesome``, ``stuff``), emoticons. Formal markers: formal connectives and vocabulary
  (``therefore``, ``furthermore``, ``ensure``, ``individuals``, ``it is important``). Positive is
  formal, negative casual; 0 for text with neither.
- ``sentence_length``: mean words per sentence (a readability proxy).
"""

from __future__ import annotations

import re
from typing import Callable

_WORD = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")
_LIST_ITEM = re.compile(r"^\s*(?:[-*•+·▪–]\s+|\d{1,3}[.)]\s+|[A-Za-z][.)]\s+(?=\S))")
# Possessive 's is not a contraction ("the dog's bowl" is formal enough): only pronoun + 's counts.
_CONTRACTION = re.compile(
    r"\b(?:[A-Za-z]+n['’]t|[A-Za-z]+['’](?:re|ve|ll|d|m)|(?:it|that|there|here|what|he|she|let|who|where|how)['’]s"
    r"|y['’]all)\b", re.IGNORECASE)
_EMOTICON = re.compile(r"(?:[:;]-?[)D(P])|[\U0001F300-\U0001FAFF\u2600-\u27BF]")
CASUAL_WORDS = frozenset("""
hey hi hiya yeah yep yup nope ok okay gonna wanna gotta kinda sorta lol haha omg awesome cool
super totally stuff guys dude buddy pal folks chill wow oops yay nah ya y'know btw tbh literally
basically pretty crazy fun stoked vibe vibes hang grab huge tons bunch kiddo mate cheers
just really lots love yummy fancy gotcha yo sweet
""".split())
FORMAL_WORDS = frozenset("""
therefore furthermore moreover consequently additionally however thus hence regarding
accordingly nevertheless subsequently ensure utilize utilise facilitate individuals
essential crucial significant significantly appropriate appropriately approximately
demonstrate comprehensive respectively whereas wherein herein pursuant commence obtain
numerous sufficient assistance inquire require requires regarded optimal enhance
various provide provides specifically typically primarily particularly overall considerable
considerably maintain ensuring therein aforementioned objective objectives
""".split())
FORMAL_PHRASES = ("it is important", "it is essential", "it is recommended", "in conclusion",
                  "in addition", "with regard to", "in order to", "one should", "please note")


def words(text: str) -> list[str]:
    """The words of a text (letters/digits, with internal apostrophes)."""
    return _WORD.findall(text)


def length(text: str) -> float:
    """Number of words."""
    return float(len(words(text)))


def list_use(text: str) -> float:
    """Fraction of non-empty lines that are bulleted or numbered list items, in [0, 1]."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return 0.0
    return sum(1 for ln in lines if _LIST_ITEM.match(ln)) / len(lines)


def casual_markers(text: str) -> int:
    """Contractions + exclamation marks + casual words + emoticons."""
    lower = [w.lower().replace("’", "'") for w in words(text)]
    return (len(_CONTRACTION.findall(text)) + text.count("!")
            + sum(w in CASUAL_WORDS for w in lower) + len(_EMOTICON.findall(text)))


def formal_markers(text: str) -> int:
    """Formal connectives/vocabulary + formal phrases."""
    lower = [w.lower() for w in words(text)]
    joined = " ".join(lower)
    return sum(w in FORMAL_WORDS for w in lower) + sum(joined.count(p) for p in FORMAL_PHRASES)


def formality(text: str) -> float:
    """(formal markers - casual markers) per 100 words; > 0 formal, < 0 casual."""
    n = len(words(text))
    if n == 0:
        return 0.0
    return 100.0 * (formal_markers(text) - casual_markers(text)) / n


def sentence_length(text: str) -> float:
    """Mean words per sentence; sentences end at . ! ? or a line break."""
    parts = [p for p in re.split(r"[.!?]+(?:\s|$)|\n+", text) if words(p)]
    if not parts:
        return 0.0
    return sum(len(words(p)) for p in parts) / len(parts)


SCORERS: dict[str, Callable[[str], float]] = {
    "length": length,
    "list_use": list_use,
    "formality": formality,
    "sentence_length": sentence_length,
}


def score(text: str, names: tuple[str, ...] | list[str] | None = None) -> dict[str, float]:
    """``{attribute: score}`` of one text, for ``names`` (default: every scorer), rounded to 4 d.p.

    Rounding makes scores identical across platforms, so ties are decided the same way everywhere.
    """
    names = list(SCORERS) if names is None else list(names)
    unknown = [n for n in names if n not in SCORERS]
    if unknown:
        raise KeyError(f"unknown attribute(s) {unknown}; known: {sorted(SCORERS)}")
    return {n: round(float(SCORERS[n](text)), 4) for n in names}
