"""CMPO data conversion (thesis §3.2.2, §5.1.1, App. A.3) against hand-computed fixtures."""

import pytest

from pluralign.data.cmpo_weights import (ConditionedPair, RatedResponse, attribute_pairs, convert_likert,
                                         convert_pairs, nonempty_subsets, rated_responses, summarize,
                                         weight_vector)
from pluralign.data.records import PreferenceRecord

A = ["h", "v", "s"]


def pairs_fixture():
    # pair 0: chosen wins on h, loses on v, ties on s
    r0 = PreferenceRecord("u", "p0", "c0", "r0", attributes={"h": [3, 1], "v": [1, 2], "s": [2, 2]})
    # pair 1: chosen wins on h and v, loses on s
    r1 = PreferenceRecord("u", "p1", "c1", "r1", attributes={"h": [4, 2], "v": [3, 1], "s": [1, 2]})
    return [r0, r1]


def as_table(pairs):
    return sorted((p.chosen, p.rejected, p.subset, tuple(round(w, 6) for w in p.weights)) for p in pairs)


EXPECTED = {
    "power_set": [("c0", "r0", ("h",), (1, 0, 0)), ("r0", "c0", ("v",), (0, 1, 0)),
                  ("c1", "r1", ("h",), (1, 0, 0)), ("c1", "r1", ("v",), (0, 1, 0)),
                  ("c1", "r1", ("h", "v"), (0.5, 0.5, 0)), ("r1", "c1", ("s",), (0, 0, 1))],
    "negative": [("c0", "r0", ("h",), (1, -1, 0)), ("r0", "c0", ("v",), (-1, 1, 0)),
                 ("c1", "r1", ("h",), (1, 0, -1)), ("c1", "r1", ("v",), (0, 1, -1)),
                 ("c1", "r1", ("h", "v"), (0.5, 0.5, -1)), ("r1", "c1", ("s",), (-0.5, -0.5, 1))],
    "ratio": [("c0", "r0", ("h",), (3, 0, 0)), ("r0", "c0", ("v",), (0, 2, 0)),
              ("c1", "r1", ("h",), (2, 0, 0)), ("c1", "r1", ("v",), (0, 3, 0)),
              ("c1", "r1", ("h", "v"), (1, 1.5, 0)), ("r1", "c1", ("s",), (0, 0, 2))],
}


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_pairwise_conversion_matches_hand_computed(rule):
    out = convert_pairs(pairs_fixture(), A, rule=rule)
    assert len(out) == 6
    assert as_table(out) == sorted((c, r, s, tuple(float(x) for x in w)) for c, r, s, w in EXPECTED[rule])
    assert {p.source for p in out if p.chosen in ("c0", "r0")} == {0}


def test_one_direction_only():
    out = convert_pairs(pairs_fixture(), A, both_directions=False)
    assert summarize(out) == {"total": 4, "h": 2, "h+v": 1, "v": 1}


def test_power_set_weights_sum_to_one_and_count_is_2_to_the_wins_minus_1():
    rec = PreferenceRecord("u", "p", "a", "b", attributes={x: [2, 1] for x in "abcd"})
    out = convert_pairs([rec], list("abcd"))
    assert len(out) == 2 ** 4 - 1
    assert all(abs(sum(p.weights) - 1) < 1e-12 for p in out)
    assert len(convert_pairs([rec], list("abcd"), max_subset=1)) == 4


def likert_fixture():
    # A: h=4 v=0, B: h=2 v=2, C: h=1 v=3, D: h=0 v=0, plus a second prompt with one response
    rows = [("A", 4, 0), ("B", 2, 2), ("C", 1, 3), ("D", 0, 0)]
    out = [RatedResponse("q", text, {"h": h, "v": v}) for text, h, v in rows]
    out.append(RatedResponse("lonely", "E", {"h": 1, "v": 1}))
    return out


@pytest.mark.parametrize("rule,offset,expected", [
    ("power_set", 0.0, [("A", "D", ("h",), (1.0, 0.0)), ("B", "D", ("h", "v"), (0.5, 0.5)),
                        ("C", "A", ("v",), (0.0, 1.0))]),
    ("negative", 0.0, [("A", "D", ("h",), (1.0, 0.0)), ("B", "D", ("h", "v"), (0.5, 0.5)),
                       ("C", "A", ("v",), (-1.0, 1.0))]),
    ("ratio", 1.0, [("A", "D", ("h",), (5.0, 0.0)), ("B", "D", ("h", "v"), (1.5, 1.5)),
                    ("C", "A", ("v",), (0.0, 4.0))]),
])
def test_likert_greatest_net_margin_selection(rule, offset, expected):
    out = convert_likert(likert_fixture(), ["h", "v"], rule=rule, ratio_offset=offset)
    assert as_table(out) == expected
    assert all(p.prompt == "q" and p.source == 0 for p in out)


def test_ratio_rule_refuses_zero_denominator():
    with pytest.raises(ValueError, match="ratio_offset"):
        convert_likert(likert_fixture(), ["h", "v"], rule="ratio")


def test_rated_responses_recovers_likert_rows_from_pairs():
    recs = [PreferenceRecord("u", "q", "A", "B", attributes={"h": [4, 2], "v": [0, 2]}),
            PreferenceRecord("u", "q", "B", "C", attributes={"h": [2, 1], "v": [2, 3]})]
    rated = rated_responses(recs, ["h", "v"])
    assert [(r.response, dict(r.ratings)) for r in rated] == [
        ("A", {"h": 4.0, "v": 0.0}), ("B", {"h": 2.0, "v": 2.0}), ("C", {"h": 1.0, "v": 3.0})]
    bad = recs + [PreferenceRecord("u", "q", "A", "C", attributes={"h": [3, 1], "v": [0, 3]})]
    with pytest.raises(ValueError, match="two different ratings"):
        rated_responses(bad, ["h", "v"])


def test_pku_style_binary_labels():
    # PKU-SafeRLHF: response 0 more helpful, response 1 safer -> two opposite single-attribute pairs
    rec = PreferenceRecord("u", "x", "r0", "r1", attributes={"helpful": [1, 0], "safe": [0, 1]})
    out = convert_pairs([rec], ["helpful", "safe"])
    assert as_table(out) == [("r0", "r1", ("helpful",), (1.0, 0.0)), ("r1", "r0", ("safe",), (0.0, 1.0))]


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="lacks attribute"):
        convert_pairs([PreferenceRecord("u", "x", "a", "b", attributes={"h": [1, 0]})], ["h", "v"])
    with pytest.raises(ValueError, match="no attribute scores"):
        convert_pairs([PreferenceRecord("u", "x", "a", "b")], ["h"])
    with pytest.raises(ValueError, match="rule"):
        weight_vector(("h",), ["h"], rule="softmax")


def test_attribute_pairs_orient_by_one_attribute_and_drop_ties():
    recs = pairs_fixture()
    by_v = attribute_pairs(recs, "v")
    assert [(r.chosen, r.rejected) for r in by_v] == [("r0", "c0"), ("c1", "r1")]
    assert by_v[0].attributes["v"] == [2, 1]
    assert [(r.chosen, r.rejected) for r in attribute_pairs(recs, "s")] == [("r1", "c1")]


def test_to_record_keeps_lambda():
    p = ConditionedPair("x", "a", "b", (0.5, 0.5), ("h", "v"), 3)
    rec = p.to_record(["h", "v"])
    assert rec.user_latent == [0.5, 0.5] and rec.user_id == "h+v" and rec.pair_id == "3"
    assert nonempty_subsets(["a", "b"]) == [("a",), ("b",), ("a", "b")]


def test_margins_turn_small_gaps_into_ties():
    rec = PreferenceRecord("u", "x", "a", "b", attributes={"h": [10, 4], "v": [1.0, 0.9]})
    assert summarize(convert_pairs([rec], ["h", "v"])) == {"total": 3, "h": 1, "h+v": 1, "v": 1}
    assert summarize(convert_pairs([rec], ["h", "v"], margins={"v": 0.5})) == {"total": 1, "h": 1}
    assert len(attribute_pairs([rec], "v", margin=0.5)) == 0 and len(attribute_pairs([rec], "h", margin=5)) == 1
    rated = [RatedResponse("q", "a", {"h": 10, "v": 1.0}), RatedResponse("q", "b", {"h": 4, "v": 0.9})]
    assert summarize(convert_likert(rated, ["h", "v"], margins={"h": 7})) == {"total": 1, "v": 1}
