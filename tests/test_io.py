"""Readers and writers: JSONL, Parquet, TRL-format ``datasets.Dataset``; errors name file, line and
field; writes are atomic."""

import json
import math
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pluralign.data.io import (from_hf_dataset, read_records, to_hf_dataset, validate_records,
                               write_records)
from pluralign.data.records import PreferenceRecord, RecordValidationError

MSG = lambda role, text: [{"role": role, "content": text}]  # noqa: E731


def _mixed_records():
    return [
        PreferenceRecord("u1", "Which pet?", "A dog.", "A cat.", attributes={"helpfulness": [4.0, 2.0]},
                         split="train", meta={"source": "x"}),
        PreferenceRecord("u2", "Which pet?", "A cat.", "A dog.", user_latent=1, pair_id="p1"),
        PreferenceRecord("u2", "", "Plain.", "Other.", split="test"),
    ]


def _vector_records():
    return [PreferenceRecord(f"u{i % 3}", "", [float(i), 0.5], [0.0, float(-i)], user_latent=i % 2,
                             pair_id=f"p{i}", split="validation" if i % 4 == 0 else None) for i in range(1, 9)]


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
@pytest.mark.parametrize("make", [_mixed_records, _vector_records])
def test_round_trip(tmp_path, ext, make):
    records = make()
    path = write_records(records, tmp_path / f"d.{ext}")
    assert read_records(path) == records


@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_round_trip_messages_and_weight_latents(tmp_path, ext):
    records = [PreferenceRecord("u", MSG("user", "Q"), MSG("assistant", "yes"), MSG("assistant", "no"),
                                user_latent=[0.25, 0.75]),
               PreferenceRecord("v", MSG("user", "R"), MSG("assistant", "a"), MSG("assistant", "b"))]
    assert read_records(write_records(records, tmp_path / f"m.{ext}")) == records


def test_jsonl_problems_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"user_id": "a", "chosen": [1, 2], "rejected": [0, 1]}\n'
                     b'\n'
                     b'{"user_id": "b", "chosen": [1, NaN], "rejected": [0, 1]}\n'
                     b'{"user_id": "c", "chosen": [1, 2]}\n'
                     b'{not json\n'
                     b'{"user_id": "d", "chosen": [1, 2, 3], "rejected": [0, 1, 3]}\n'
                     b'\xff\xfe\n'
                     b'{"user_id": "e", "chosen": [3, 2], "rejected": [3, 2]}\n')
    with pytest.raises(RecordValidationError) as err:
        read_records(path)
    got = [(p.file, p.line, p.field) for p in err.value.problems]
    f = str(path)
    assert sorted(got, key=lambda t: t[1]) == [(f, 3, "chosen"), (f, 4, "rejected"), (f, 5, "<row>"),
                                               (f, 6, "chosen"), (f, 7, "<row>"), (f, 8, "rejected")]
    assert f"{f}:3: field 'chosen': vector contains NaN" in str(err.value)


def test_parquet_problems_name_file_row_and_field(tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({
        "user_id": ["a", None, "c", "d"],
        "chosen": [[1.0, 2.0], [1.0, 2.0], [1.0, float("nan")], [0.0, 1.0]],
        "rejected": [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]],
        "split": ["train", "train", "train", "holdout"],
        "meta": [None, None, None, "{broken"],
    }), path)
    with pytest.raises(RecordValidationError) as err:
        read_records(path)
    got = sorted((p.line, p.field) for p in err.value.problems)
    assert got == [(2, "user_id"), (3, "chosen"), (4, "meta")]
    assert all(p.file == str(path) for p in err.value.problems)


def test_parquet_wrong_column_type(tmp_path):
    path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"user_id": ["a", "b"], "chosen": [1, 2], "rejected": [3, 4]}), path)
    with pytest.raises(RecordValidationError) as err:
        read_records(path)
    assert {(p.line, p.field) for p in err.value.problems} == {(1, "chosen"), (1, "rejected"),
                                                               (2, "chosen"), (2, "rejected")}


def test_not_a_parquet_file_and_unknown_extension(tmp_path):
    (tmp_path / "x.parquet").write_text("hello")
    with pytest.raises(RecordValidationError, match="not a readable Parquet file"):
        read_records(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="unknown extension"):
        read_records(tmp_path / "x.csv")
    with pytest.raises(ValueError, match="unknown extension"):
        write_records(_vector_records(), tmp_path / "x.csv")


# --------------------------------------------------------------------- property tests

# corruption -> (field it must be reported under, how to apply it to a JSON row)
def _drop(key):
    return lambda row: row.pop(key)


def _set(key, value):
    return lambda row: row.__setitem__(key, value)


CORRUPTIONS = {
    "no_user": ("user_id", _drop("user_id")),
    "blank_user": ("user_id", _set("user_id", "  ")),
    "no_chosen": ("chosen", _drop("chosen")),
    "no_rejected": ("rejected", _drop("rejected")),
    "same": ("rejected", lambda row: row.__setitem__("rejected", list(row["chosen"]))),
    "nan": ("chosen", lambda row: row["chosen"].__setitem__(0, math.nan)),
    "inf": ("rejected", lambda row: row["rejected"].__setitem__(-1, math.inf)),
    "short": ("rejected", lambda row: row["rejected"].pop()),
    "dim": ("chosen", lambda row: (row["chosen"].append(1.0), row["rejected"].append(2.0))),
    "split": ("split", _set("split", "holdout")),
    "latent": ("user_latent", _set("user_latent", "big")),
    "attr": ("attributes.h", _set("attributes", {"h": [1.0]})),
    "prompt": ("prompt", _set("prompt", 12)),
}
PARQUET_SAFE = ["no_user", "blank_user", "no_chosen", "no_rejected", "same", "nan", "inf", "short", "dim",
                "split"]


def _rows(n, dim, seed):
    import random

    rnd = random.Random(seed)
    return [{"user_id": f"u{rnd.randrange(4)}", "prompt": "", "chosen": [rnd.uniform(-1, 1) for _ in range(dim)],
             "rejected": [rnd.uniform(2, 3) for _ in range(dim)], "split": "train", "user_latent": 0}
            for _ in range(n)]


def _corrupt(rows, picks):
    expected = set()
    for line, name in picks.items():  # line is 1-based; row 1 is never corrupted (reference row)
        field, apply = CORRUPTIONS[name]
        apply(rows[line - 1])
        expected.add((line, field))
    return expected


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 12), dim=st.integers(1, 4), seed=st.integers(0, 10_000), data=st.data())
def test_property_jsonl_every_corrupted_row_is_reported(tmp_path, n, dim, seed, data):
    rows = _rows(n, dim, seed)
    lines = data.draw(st.lists(st.integers(2, n), unique=True, min_size=1, max_size=n - 1))
    picks = {ln: data.draw(st.sampled_from(sorted(CORRUPTIONS))) for ln in lines}
    if dim == 1:  # a 1-d vector cannot be shortened without becoming empty
        picks = {ln: ("nan" if c == "short" else c) for ln, c in picks.items()}
    expected = _corrupt(rows, picks)
    path = tmp_path / f"p{seed}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(RecordValidationError) as err:
        read_records(path)
    got = {(p.line, p.field) for p in err.value.problems}
    assert expected <= got
    assert {ln for ln, _ in got} == set(picks)  # no clean row is blamed
    assert all(p.file == str(path) for p in err.value.problems)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 10), dim=st.integers(2, 4), seed=st.integers(0, 10_000), data=st.data())
def test_property_parquet_every_corrupted_row_is_reported(tmp_path, n, dim, seed, data):
    rows = _rows(n, dim, seed)
    lines = data.draw(st.lists(st.integers(2, n), unique=True, min_size=1, max_size=n - 1))
    picks = {ln: data.draw(st.sampled_from(PARQUET_SAFE)) for ln in lines}
    expected = _corrupt(rows, picks)
    keys = ["user_id", "prompt", "chosen", "rejected", "split", "user_latent"]
    table = pa.table({k: [r.get(k) for r in rows] for k in keys})
    path = tmp_path / f"p{seed}.parquet"
    pq.write_table(table, path)
    with pytest.raises(RecordValidationError) as err:
        read_records(path)
    got = {(p.line, p.field) for p in err.value.problems}
    assert expected <= got and {ln for ln, _ in got} == set(picks)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(min_size=1).filter(str.strip), min_size=2, max_size=6, unique=True),
       ext=st.sampled_from(["jsonl", "parquet"]))
def test_property_text_round_trip(tmp_path, texts, ext):
    records = [PreferenceRecord(f"user {i}", texts[0], texts[i], texts[i - 1]) for i in range(1, len(texts))]
    assert read_records(write_records(records, tmp_path / f"t.{ext}")) == records


# --------------------------------------------------------------------- Hugging Face datasets

def test_trl_plain_dataset_with_user_id_round_trips():
    import datasets

    ds = datasets.Dataset.from_dict({"prompt": ["Which pet?", "Which pet?", "Say hi"],
                                     "chosen": ["A dog.", "A cat.", "Hi!"],
                                     "rejected": ["A cat.", "A dog.", "Go away."],
                                     "user_id": ["u1", "u2", "u1"]})
    records = from_hf_dataset(ds)
    assert [r.user_id for r in records] == ["u1", "u2", "u1"] and records[1].chosen == "A cat."
    back = to_hf_dataset(records)
    assert back.to_list() == ds.to_list()
    assert from_hf_dataset(back) == records


def test_trl_conversational_dataset_with_user_id_round_trips():
    import datasets

    ds = datasets.Dataset.from_list([
        {"prompt": MSG("user", "Which pet?"), "chosen": MSG("assistant", "A dog."),
         "rejected": MSG("assistant", "A cat."), "user_id": "u1"},
        {"prompt": MSG("user", "Which pet?"), "chosen": MSG("assistant", "A cat."),
         "rejected": MSG("assistant", "A dog."), "user_id": "u2"}])
    records = from_hf_dataset(ds)
    assert records[0].prompt == MSG("user", "Which pet?") and records[1].chosen == MSG("assistant", "A cat.")
    back = to_hf_dataset(records)
    assert back.to_list() == ds.to_list()


def test_plain_records_to_conversational_dataset():
    records = [PreferenceRecord("u", "Q", "yes", "no"), PreferenceRecord("v", "", "a", "b")]
    ds = to_hf_dataset(records, conversational=True)
    assert ds[0]["prompt"] == MSG("user", "Q") and ds[0]["chosen"] == MSG("assistant", "yes")
    back = from_hf_dataset(ds)
    assert back[1].prompt == "" and back[1].chosen == MSG("assistant", "a")


def test_dataset_keeps_columns_absent_from_the_first_record():
    records = [PreferenceRecord("u", "Q", "a", "b"),
               PreferenceRecord("v", "Q", "c", "d", attributes={"h": [1.0, 0.0]}, user_latent=1, split="train")]
    ds = to_hf_dataset(records)
    assert {"attributes", "user_latent", "split", "user_id"} <= set(ds.column_names)
    assert from_hf_dataset(ds) == records


def test_hf_dataset_problems_are_reported_by_row():
    import datasets

    ds = datasets.Dataset.from_dict({"prompt": ["q", "q"], "chosen": ["a", "b"], "rejected": ["b", "b"],
                                     "user_id": ["u", "v"]})
    with pytest.raises(RecordValidationError) as err:
        from_hf_dataset(ds, name="my_ds")
    assert [(p.file, p.line, p.field) for p in err.value.problems] == [("my_ds", 2, "rejected")]


# --------------------------------------------------------------------- atomic writes

@pytest.mark.parametrize("ext", ["jsonl", "parquet"])
def test_failed_write_leaves_existing_file_intact(tmp_path, ext):
    path = tmp_path / f"keep.{ext}"
    good = _vector_records()
    write_records(good, path)
    before = path.read_bytes()
    bad = good + [PreferenceRecord("x", "", [1.0, 2.0], [1.0, 2.0])]  # invalid: identical options
    with pytest.raises(RecordValidationError, match="identical to chosen"):
        write_records(bad, path)
    unserialisable = [good[0].replace(meta={"obj": object()})]  # fails half-way through writing
    with pytest.raises(TypeError):
        write_records(unserialisable, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary files left behind
    assert read_records(path) == good


def test_validate_records_names_in_memory_rows():
    problems = validate_records([PreferenceRecord("u", "", [0.0], [1.0]),
                                 PreferenceRecord("u", "", [math.nan], [1.0])])
    assert [(p.file, p.line, p.field) for p in problems] == [("<records>", 2, "chosen")]


def test_written_file_has_normal_permissions(tmp_path):
    path = write_records(_vector_records(), tmp_path / "perm.jsonl")
    assert path.stat().st_mode & 0o044  # readable by group/others per umask, not mkstemp's 0600
