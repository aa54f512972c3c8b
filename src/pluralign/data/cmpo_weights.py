"""Parameterized feedback -> attribute-weight-conditioned preference pairs (CMPO thesis §3.2.2).

A pair (y, y') with per-attribute scores is pairwise-preference reducible: on every attribute a
either y ≻_a y', y ≺_a y' or a tie. Let A_> be the attributes on which y ≻ y'. Every non-empty
subset S of A_> gives one training triple (x, y ≻ y', lambda) with (eq. 3.2)

    ``power_set``:  lambda_j = 1/|S| for a_j in S, 0 otherwise.

Variants (thesis App. A.3):

    ``negative`` (A.1): as above, and -1/|S̄| on S̄ = the attributes with the *opposite*
        preference (y' ≻_a y), "positive and negative weights for the attributes that resulted in
        the opposite pairwise preference". The printed formula lost its minus sign and does not
        say what S̄ is; we follow the prose (ties and A_> \\ S get 0).
    ``ratio`` (A.2): lambda_j = f_a(y_c) / f_a(y_r) · 1/|S| on S, 0 otherwise. Ratings of 0
        (HelpSteer's Likert scale starts at 0) make the ratio undefined: ``ratio_offset`` is
        added to both ratings (default 0 = the thesis; a 0 denominator is then an error).

Inputs:
- pairwise multi-label data (BeaverTails / PKU-SafeRLHF schema, the built-in text data, any
  :class:`PreferenceRecord` with ``attributes = {name: [score_chosen, score_rejected]}``):
  :func:`convert_pairs`, both directions of every pair (y' may win on some attributes);
- Likert data (HelpSteer / OASST schema: several rated responses per prompt):
  :func:`convert_likert` with the §5.1.1 selection — for each prompt and each condition S, of all
  pairs with y ≻_a y' on every a in S keep only the one with the greatest net margin
  sum_{a in S} (f_a(y) - f_a(y')).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any, Iterable, Mapping, Sequence

from .records import Option, PreferenceRecord

RULES = ("power_set", "negative", "ratio")


@dataclass(frozen=True)
class ConditionedPair:
    """(x, y_c ≻ y_r | lambda): one CMPO training example.

    ``weights`` follows the order of the ``attributes`` the conversion was given; ``subset`` is
    the condition S that produced it; ``source`` indexes the input pair/prompt.
    """

    prompt: Any
    chosen: Option
    rejected: Option
    weights: tuple[float, ...]
    subset: tuple[str, ...]
    source: int = -1
    meta: dict = field(default_factory=dict, compare=False)

    def to_record(self, attributes: Sequence[str]) -> PreferenceRecord:
        """As a :class:`PreferenceRecord`: user_id names the condition, user_latent holds lambda."""
        return PreferenceRecord(user_id="+".join(self.subset), prompt=self.prompt, chosen=self.chosen,
                                rejected=self.rejected, user_latent=list(self.weights),
                                pair_id=str(self.source),
                                meta={"cmpo_attributes": list(attributes), **self.meta})


@dataclass(frozen=True)
class RatedResponse:
    """One response with its per-attribute ratings (HelpSteer / OASST row)."""

    prompt: Any
    response: Option
    ratings: Mapping[str, float]


def nonempty_subsets(items: Sequence[str], max_size: int | None = None) -> list[tuple[str, ...]]:
    """Every non-empty subset of ``items`` (in order), smallest first; ``max_size`` caps |S|."""
    top = len(items) if max_size is None else min(max_size, len(items))
    return [s for r in range(1, top + 1) for s in combinations(items, r)]


def weight_vector(subset: Sequence[str], attributes: Sequence[str], *, rule: str = "power_set",
                  opposite: Sequence[str] = (), chosen_scores: Mapping[str, float] | None = None,
                  rejected_scores: Mapping[str, float] | None = None,
                  ratio_offset: float = 0.0) -> tuple[float, ...]:
    """lambda for condition ``subset`` (eq. 3.2, A.1 or A.2), ordered like ``attributes``.

    ``opposite`` (A.1) are the attributes where the rejected response is better; the scores
    (A.2) are the pair's ratings.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if not subset:
        raise ValueError("the condition S must be non-empty")
    missing = [a for a in subset if a not in attributes]
    if missing:
        raise ValueError(f"condition attributes {missing} are not among {list(attributes)}")
    size = len(subset)
    lam = {a: 0.0 for a in attributes}
    for a in subset:
        if rule == "ratio":
            if chosen_scores is None or rejected_scores is None:
                raise ValueError("the ratio rule needs the pair's scores")
            num = float(chosen_scores[a]) + ratio_offset
            den = float(rejected_scores[a]) + ratio_offset
            if den <= 0:
                raise ValueError(f"ratio rule: rejected rating of {a!r} is {rejected_scores[a]} "
                                 f"(+ offset {ratio_offset}); the ratio is undefined — set ratio_offset")
            lam[a] = num / den / size
        else:
            lam[a] = 1.0 / size
    if rule == "negative" and opposite:
        for a in opposite:
            lam[a] = -1.0 / len(opposite)
    return tuple(lam[a] for a in attributes)


def beats(first: float, second: float, margin: float = 0.0) -> bool:
    """first ≻ second: strictly greater, by at least ``margin`` (smaller gaps are ties)."""
    diff = float(first) - float(second)
    return diff > 0 and diff >= margin


def _better(first: Mapping[str, float], second: Mapping[str, float], attributes: Sequence[str],
            margins: Mapping[str, float] | None = None) -> list[str]:
    m = margins or {}
    return [a for a in attributes if beats(first[a], second[a], m.get(a, 0.0))]


def pair_conditions(chosen_scores: Mapping[str, float], rejected_scores: Mapping[str, float],
                    attributes: Sequence[str], *, rule: str = "power_set", ratio_offset: float = 0.0,
                    max_subset: int | None = None, margins: Mapping[str, float] | None = None,
                    ) -> list[tuple[tuple[str, ...], tuple[float, ...]]]:
    """[(S, lambda)] for y_c ≻ y_r: every non-empty S ⊆ A_> (empty when y_c wins nowhere).
    ``margins``: per-attribute score gaps below which the pair ties on that attribute."""
    wins = _better(chosen_scores, rejected_scores, attributes, margins)
    losses = _better(rejected_scores, chosen_scores, attributes, margins)
    return [(s, weight_vector(s, attributes, rule=rule, opposite=losses, chosen_scores=chosen_scores,
                              rejected_scores=rejected_scores, ratio_offset=ratio_offset))
            for s in nonempty_subsets(wins, max_subset)]


def _scores(record: PreferenceRecord, attributes: Sequence[str], index: int) -> tuple[dict, dict]:
    if not record.attributes:
        raise ValueError(f"pair {index} (user {record.user_id!r}) has no attribute scores")
    missing = [a for a in attributes if a not in record.attributes]
    if missing:
        raise ValueError(f"pair {index} (user {record.user_id!r}) lacks attribute(s) {missing}; "
                         f"it has {sorted(record.attributes)}")
    chosen = {a: float(record.attributes[a][0]) for a in attributes}
    rejected = {a: float(record.attributes[a][1]) for a in attributes}
    return chosen, rejected


def convert_pairs(records: Iterable[PreferenceRecord], attributes: Sequence[str], *,
                  rule: str = "power_set", both_directions: bool = True, ratio_offset: float = 0.0,
                  max_subset: int | None = None, margins: Mapping[str, float] | None = None,
                  ) -> list[ConditionedPair]:
    """Pairwise multi-label data -> weight-conditioned pairs (§3.2.2, §5.1.2).

    Each record's ``attributes`` gives [score_chosen, score_rejected] per attribute (binary
    labels such as PKU's better/safer are scores 1/0). With ``both_directions`` the pair also
    yields triples with the record's *rejected* response preferred, on the attributes where
    it scores higher. Pairs that duplicate a (prompt, response) pair are kept (they are data).
    """
    out: list[ConditionedPair] = []
    for i, rec in enumerate(records):
        c, r = _scores(rec, attributes, i)
        directions = [(rec.chosen, rec.rejected, c, r)]
        if both_directions:
            directions.append((rec.rejected, rec.chosen, r, c))
        for y, y_prime, fy, fy_prime in directions:
            for subset, lam in pair_conditions(fy, fy_prime, attributes, rule=rule, ratio_offset=ratio_offset,
                                               max_subset=max_subset, margins=margins):
                out.append(ConditionedPair(rec.prompt, y, y_prime, lam, subset, i))
    return out


def rated_responses(records: Iterable[PreferenceRecord], attributes: Sequence[str]) -> list[RatedResponse]:
    """The distinct rated responses behind pairwise records (each record rates two responses).

    A response seen twice with different ratings is an error (the ratings are per response).
    """
    seen: dict[tuple[str, str], RatedResponse] = {}
    for i, rec in enumerate(records):
        c, r = _scores(rec, attributes, i)
        for option, ratings in ((rec.chosen, c), (rec.rejected, r)):
            key = (repr(rec.prompt), repr(option))
            old = seen.get(key)
            if old is not None and dict(old.ratings) != ratings:
                raise ValueError(f"pair {i}: a response of prompt {str(rec.prompt)[:40]!r} has two "
                                 f"different ratings {dict(old.ratings)} and {ratings}")
            seen.setdefault(key, RatedResponse(rec.prompt, option, ratings))
    return list(seen.values())


def convert_likert(responses: Iterable[RatedResponse], attributes: Sequence[str], *,
                   rule: str = "power_set", ratio_offset: float = 0.0, max_subset: int | None = None,
                   margins: Mapping[str, float] | None = None) -> list[ConditionedPair]:
    """Likert-rated responses -> weight-conditioned pairs with §5.1.1's selection.

    For every prompt and every non-empty condition S ⊆ attributes, among the ordered pairs
    (y, y') of that prompt's responses with f_a(y) > f_a(y') for all a in S, keep the one with
    the greatest net margin sum_{a in S} f_a(y) - f_a(y') (first in input order on ties);
    lambda from S by ``rule``. ``source`` is the prompt's index (order of first appearance).
    """
    groups: dict[str, list[RatedResponse]] = defaultdict(list)
    order: dict[str, int] = {}
    for i, rr in enumerate(responses):
        missing = [a for a in attributes if a not in rr.ratings]
        if missing:
            raise ValueError(f"response {i} lacks rating(s) {missing}; it has {sorted(rr.ratings)}")
        key = repr(rr.prompt)
        order.setdefault(key, len(order))
        groups[key].append(rr)
    out: list[ConditionedPair] = []
    m = margins or {}
    conditions = nonempty_subsets(list(attributes), max_subset)
    for key, group in groups.items():
        for subset in conditions:
            best, best_margin = None, None
            for y in group:
                for y_prime in group:
                    if y is y_prime or not all(beats(y.ratings[a], y_prime.ratings[a], m.get(a, 0.0))
                                               for a in subset):
                        continue
                    margin = sum(float(y.ratings[a]) - float(y_prime.ratings[a]) for a in subset)
                    if best_margin is None or margin > best_margin:
                        best, best_margin = (y, y_prime), margin
            if best is None:
                continue
            y, y_prime = best
            opposite = _better(y_prime.ratings, y.ratings, attributes, margins)
            lam = weight_vector(subset, attributes, rule=rule, opposite=opposite,
                                chosen_scores=y.ratings, rejected_scores=y_prime.ratings,
                                ratio_offset=ratio_offset)
            out.append(ConditionedPair(y.prompt, y.response, y_prime.response, lam, subset, order[key]))
    return out


def attribute_pairs(records: Iterable[PreferenceRecord], attribute: str,
                    margin: float = 0.0) -> list[PreferenceRecord]:
    """All pairs oriented by one attribute: y_c ≻_a y_r (ties, gaps below ``margin``, dropped) —
    the per-attribute DPO training set (§5.3.1) and the attribute-conditioned evaluation set
    (eq. 5.1)."""
    out = []
    for i, rec in enumerate(records):
        if not rec.attributes or attribute not in rec.attributes:
            raise ValueError(f"pair {i} (user {rec.user_id!r}) has no score for {attribute!r}")
        sc, sr = (float(v) for v in rec.attributes[attribute])
        if not (beats(sc, sr, margin) or beats(sr, sc, margin)):
            continue
        out.append(rec if sc > sr else rec.replace(chosen=rec.rejected, rejected=rec.chosen,
                                                   attributes={a: [v[1], v[0]] for a, v in rec.attributes.items()}))
    return out


def summarize(pairs: Sequence[ConditionedPair]) -> dict[str, int]:
    """Count of pairs per condition S (``a+b`` keys), plus ``total``."""
    counts: dict[str, int] = defaultdict(int)
    for p in pairs:
        counts["+".join(p.subset)] += 1
    return {"total": len(pairs), **dict(sorted(counts.items()))}


def builtin_rated(types: Sequence[str] = ("concise", "detailed", "formal"), *,
                  fractions: Sequence[float] = (0.5, 0.25, 0.25), seed: int = 0,
                  path: str | None = None) -> tuple[dict[str, list[RatedResponse]], dict[str, float]]:
    """The built-in SmolLM2 corpus as rated responses per split, one steering attribute per user
    type (``concise`` = -length, ``formal`` = +formality, ... see
    :data:`pluralign.data.builtin.corpus.PREFERENCES`), and each attribute's tie margin.

    Splits are by prompt (the corpus' own split). Returns ``({split: responses}, margins)``.
    """
    from .builtin.corpus import DEFAULT_MARGINS, corpus_pool, parse_user_type

    parsed = {t: parse_user_type(t) for t in types}
    out: dict[str, list[RatedResponse]] = {"train": [], "validation": [], "test": []}
    seen: set[tuple[str, str]] = set()
    for pair in corpus_pool(fractions, seed, path):
        for text, scores in ((pair.a, pair.scores_a), (pair.b, pair.scores_b)):
            if (pair.prompt, text) in seen:
                continue
            seen.add((pair.prompt, text))
            ratings = {t: direction * float(scores[attr]) for t, (attr, direction) in parsed.items()}
            out[pair.split].append(RatedResponse(pair.prompt, text, ratings))
    margins = {t: float(DEFAULT_MARGINS.get(attr, 0.0)) for t, (attr, _) in parsed.items()}
    return out, margins
