"""Splits never leak: text grouped by prompt, synthetic data by pair; seeded; tasks stay inside one
split."""

from collections import defaultdict

import numpy as np
import pytest

from pluralign.data import synthetic as S
from pluralign.data.records import PreferenceRecord
from pluralign.data.splits import by_split, group_key, split_records
from pluralign.data.tables import user_ids
from pluralign.data.tasks import TaskSampler


def _text_records(n_prompts=60, users=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_prompts):
        for u in range(users):  # many users, many responses per prompt
            for k in range(int(rng.integers(1, 4))):
                out.append(PreferenceRecord(f"u{u}", f"prompt {p}", f"good {p}.{k}", f"bad {p}.{k}"))
    return out


def test_no_prompt_crosses_splits():
    records = split_records(_text_records(), seed=3)
    where = defaultdict(set)
    for r in records:
        where[r.prompt].add(r.split)
    assert all(len(s) == 1 for s in where.values())
    counts = {s: len({r.prompt for r in rs}) for s, rs in by_split(records).items()}
    assert counts == {"train": 30, "validation": 15, "test": 15}


def test_conversational_prompts_group_too():
    recs = [PreferenceRecord(f"u{i}", [{"role": "user", "content": f"q{i % 7}"}], "a", "b") for i in range(70)]
    where = defaultdict(set)
    for r in split_records(recs, seed=0):
        where[r.prompt[0]["content"]].add(r.split)
    assert len(where) == 7 and all(len(s) == 1 for s in where.values())


def test_synthetic_data_splits_by_pair_and_keeps_all_users_of_a_pair_together():
    records, _ = S.example43(n_pairs=2000, split=None)
    split = split_records(records, seed=1)
    where = defaultdict(set)
    for r in split:
        assert group_key(r).startswith("pair:")
        where[r.pair_id].add(r.split)
    assert all(len(s) == 1 for s in where.values())
    assert {s: len({r.pair_id for r in rs}) for s, rs in by_split(split).items()} == {
        "train": 1000, "validation": 500, "test": 500}


def test_pairs_without_pair_id_group_by_unordered_options():
    a = PreferenceRecord("u1", "", [0.0], [1.0])
    b = PreferenceRecord("u2", "", [1.0], [0.0])  # same pair, other user, other choice
    assert group_key(a) == group_key(b)
    assert group_key(a, "prompt") == "prompt:"


def test_seeded_and_fraction_checked():
    recs = _text_records()
    a, b, c = split_records(recs, seed=5), split_records(recs, seed=5), split_records(recs, seed=6)
    assert [r.split for r in a] == [r.split for r in b] != [r.split for r in c]
    with pytest.raises(ValueError):
        split_records(recs, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError):
        split_records(recs, fractions=(1.0, 0.0))


def test_existing_splits_are_kept_and_missing_split_is_an_error():
    recs = [PreferenceRecord("u", f"p{i}", "a", "b", split="test") for i in range(4)]
    assert split_records(recs) == recs
    assert {r.split for r in split_records(recs, keep_existing=False)} <= {"train", "validation", "test"}
    with pytest.raises(ValueError, match="no split"):
        by_split([PreferenceRecord("u", "p", "a", "b")])


def test_tasks_sampled_in_one_split_only_use_that_split():
    records, _ = S.example41(n_pairs=2000, seed=0)
    for name, part in by_split(records).items():
        sampler = TaskSampler(user_ids(part), context_range=(0, 5), n_target=10, seed=0)
        items = sampler.sample(50)
        used = {int(i) for it in items for i in np.concatenate([it.context, it.target])}
        assert max(used) < len(part) and all(part[i].split == name for i in used)
