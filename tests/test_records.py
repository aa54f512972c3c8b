"""Record validation: every problem is named by file, line and field."""

import math

import pytest

from pluralign.data.records import (PreferenceRecord, Problem, RecordValidationError, check_consistent,
                                    option_text, parse_record, prompt_text)


def _problems(row):
    out = []
    rec = parse_record(row, "f.jsonl", 7, out)
    assert rec is None
    return {(p.file, p.line, p.field) for p in out}, out


def test_valid_rows_of_every_option_kind():
    text = parse_record({"user_id": 3, "prompt": "Hi", "chosen": "a", "rejected": "b"})
    assert text.user_id == "3" and not text.is_numeric and option_text(text.chosen) == "a"
    vec = parse_record({"user_id": "u", "chosen": [1, 2], "rejected": [0.5, 2], "user_latent": 1,
                        "pair_id": 12, "split": "test"})
    assert vec.is_numeric and vec.chosen == [1.0, 2.0] and vec.prompt == "" and vec.pair_id == "12"
    msgs = [{"role": "user", "content": "Q"}]
    conv = parse_record({"user_id": "u", "prompt": msgs, "chosen": [{"role": "assistant", "content": "x"}],
                         "rejected": [{"role": "assistant", "content": "y"}]})
    assert prompt_text(conv.prompt) == "Q" and option_text(conv.rejected) == "y"
    weights = parse_record({"user_id": "u", "chosen": "a", "rejected": "b", "user_latent": [0.2, 0.8]})
    assert weights.user_latent == [0.2, 0.8]


def test_attributes_in_both_shapes():
    a = parse_record({"user_id": "u", "chosen": "a", "rejected": "b", "attributes": {"helpfulness": [4, 2]}})
    b = parse_record({"user_id": "u", "chosen": "a", "rejected": "b",
                      "attributes": {"chosen": {"helpfulness": 4}, "rejected": {"helpfulness": 2}}})
    assert a.attributes == b.attributes == {"helpfulness": [4.0, 2.0]}


@pytest.mark.parametrize("row, field", [
    ({"chosen": "a", "rejected": "b"}, "user_id"),
    ({"user_id": " ", "chosen": "a", "rejected": "b"}, "user_id"),
    ({"user_id": 1.5, "chosen": "a", "rejected": "b"}, "user_id"),
    ({"user_id": "u", "rejected": "b"}, "chosen"),
    ({"user_id": "u", "chosen": "a"}, "rejected"),
    ({"user_id": "u", "chosen": "", "rejected": "b"}, "chosen"),
    ({"user_id": "u", "chosen": 3, "rejected": "b"}, "chosen"),
    ({"user_id": "u", "chosen": "a", "rejected": "a"}, "rejected"),
    ({"user_id": "u", "chosen": [1.0, math.nan], "rejected": [0.0, 1.0]}, "chosen"),
    ({"user_id": "u", "chosen": [1.0, 2.0], "rejected": [math.inf, 1.0]}, "rejected"),
    ({"user_id": "u", "chosen": [1.0, 2.0], "rejected": [1.0]}, "rejected"),
    ({"user_id": "u", "chosen": [1.0], "rejected": "b"}, "rejected"),
    ({"user_id": "u", "prompt": 5, "chosen": "a", "rejected": "b"}, "prompt"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "attributes": [1, 2]}, "attributes"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "attributes": {"h": [1]}}, "attributes.h"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "attributes": {"h": [1, math.nan]}}, "attributes.h"),
    ({"user_id": "u", "chosen": "a", "rejected": "b",
      "attributes": {"chosen": {"h": 1}, "rejected": {}}}, "attributes"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "split": "dev"}, "split"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "user_latent": "x"}, "user_latent"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "user_latent": True}, "user_latent"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "user_latent": [0.5, math.nan]}, "user_latent"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "pair_id": [1]}, "pair_id"),
    ({"user_id": "u", "chosen": "a", "rejected": "b", "meta": "x"}, "meta"),
])
def test_each_problem_names_file_line_and_field(row, field):
    where, problems = _problems(row)
    assert ("f.jsonl", 7, field) in where, problems
    assert f"f.jsonl:7: field '{field}'" in str(problems[0]) or any(
        f"field '{field}'" in str(p) for p in problems)


def test_several_problems_in_one_row_are_all_reported():
    where, _ = _problems({"user_id": None, "chosen": None, "rejected": "b", "split": "x"})
    assert {f for _, _, f in where} == {"user_id", "chosen", "split"}


def test_not_an_object():
    where, _ = _problems(["a", "b"])
    assert where == {("f.jsonl", 7, "<row>")}


def test_without_a_problem_list_it_raises():
    with pytest.raises(RecordValidationError) as err:
        parse_record({"user_id": "u", "chosen": "a", "rejected": "a"}, "x.jsonl", 3)
    assert err.value.problems == [Problem("x.jsonl", 3, "rejected", "identical to chosen")]
    assert "x.jsonl:3: field 'rejected'" in str(err.value)


def test_mixed_kinds_and_lengths_across_rows():
    recs = [PreferenceRecord("u", "", [0.0, 1.0], [1.0, 0.0]), PreferenceRecord("u", "", [0.0], [1.0]),
            PreferenceRecord("u", "", "a", "b")]
    problems = check_consistent(recs, "f.jsonl", [1, 4, 9])
    assert [(p.line, p.field) for p in problems] == [(4, "chosen"), (9, "chosen")]
    assert "vector length 1 != 2" in problems[0].message and "text option" in problems[1].message


def test_error_message_is_capped_but_keeps_every_problem():
    problems = [Problem("f", i, "user_id", "missing") for i in range(1, 80)]
    err = RecordValidationError(problems)
    assert len(err.problems) == 79 and "and 29 more" in str(err)


def test_to_dict_and_replace():
    r = PreferenceRecord("u", "", [0.0], [1.0], meta={"a": 1})
    assert r.to_dict() == {"user_id": "u", "prompt": "", "chosen": [0.0], "rejected": [1.0], "meta": {"a": 1}}
    s = r.replace(split="test")
    assert s.split == "test" and r.split is None and s.chosen == r.chosen
