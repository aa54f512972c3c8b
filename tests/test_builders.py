"""Builders for UltraFeedback (NP paper HH/HHT/simplex, conflict rates), UF-P (VPL), HelpSteer and
PKU-SafeRLHF, run on fixture files in the datasets' exact schemas (tests/fixtures/)."""

import json
from collections import defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch

from pluralign.data.builders import (HH, HHT, HelpSteerConfig, SafeRLHFConfig, SourceRowError, UFPConfig,
                                     UltraFeedbackConfig, build_helpsteer, build_saferlhf, build_ufp,
                                     build_ultrafeedback, conflict_summary, select_conflict_rate)
from pluralign.data.io import read_records, write_records
from pluralign.data.splits import split_records
from pluralign.data.tasks import collate

FIX = Path(__file__).parent / "fixtures"
UF_TINY = FIX / "ultrafeedback_tiny.jsonl"
UF_SYNTH = FIX / "ultrafeedback_synth.jsonl"
ALL_TRAIN = (1.0, 0.0, 0.0)


def raw_rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def reference_pairs(path, attrs):
    """Independent brute force: (kept, conflicting) pair ids under the NP rules."""
    kept, conflicting = set(), set()
    for line, row in enumerate(raw_rows(path), start=1):
        comps = row["completions"]
        for i, j in combinations(range(len(comps)), 2):
            ri = [comps[i]["annotations"][a]["Rating"] for a in attrs]
            rj = [comps[j]["annotations"][a]["Rating"] for a in attrs]
            if "N/A" in ri or "N/A" in rj:
                continue
            signs = {np.sign(float(x) - float(y)) for x, y in zip(ri, rj)}
            if 0 in signs:
                continue
            kept.add(f"uf{line}-{i}-{j}")
            if len(signs) > 1:
                conflicting.add(f"uf{line}-{i}-{j}")
    return kept, conflicting


def by_pair(records):
    out = defaultdict(list)
    for r in records:
        out[r.pair_id].append(r)
    return out


# ---------------------------------------------------------------- UltraFeedback: counts and rules
def test_ultrafeedback_hh_counts_by_hand():
    # 6 prompts, 21 completions -> 6+6+1+3+6+6 = 28 pairs; 2 use an N/A honesty rating; 2 are tied
    # (prompt 2 a-d on helpfulness, prompt 3 on helpfulness); of the 24 left, 11 conflict
    # (prompt 1: all 6, prompt 2: 2, prompt 4: 1, prompt 6: 2) and 13 agree.
    built = build_ultrafeedback(UF_TINY, UltraFeedbackConfig(conflict_rate=None, fractions=ALL_TRAIN))
    c = built.counts
    assert (c["rows"], c["completions"], c["pairs"], c["missing"], c["ties"]) == (6, 21, 28, 2, 2)
    assert c["pairs_train"] == 24 and c["records"] == 48 and c["users"] == 2
    assert c["conflict_rate_train"] == pytest.approx(11 / 24)
    hh = build_ultrafeedback(UF_TINY, UltraFeedbackConfig(conflict_rate=1.0, fractions=ALL_TRAIN))
    assert hh.counts["pairs_train"] == 11 and len(hh.records) == 22
    kept, conflicting = reference_pairs(UF_TINY, HH)
    assert {r.pair_id for r in hh.records} == conflicting and len(kept) == 24


def test_ultrafeedback_drops_ties_and_na_and_orients_choices():
    built = build_ultrafeedback(UF_TINY, UltraFeedbackConfig(conflict_rate=None, fractions=ALL_TRAIN))
    ids = {r.pair_id for r in built.records}
    assert "uf2-0-3" not in ids and "uf3-0-1" not in ids  # ties on helpfulness
    assert "uf4-0-1" not in ids and "uf4-0-2" not in ids  # honesty "N/A"
    assert "uf5-0-3" in ids  # truthfulness N/A does not matter when truthfulness is not in play
    for rec in built.records:
        assert rec.user_id in HH and rec.user_latent == HH.index(rec.user_id)
        for name in HH:
            assert rec.attributes[name][0] != rec.attributes[name][1]  # no ties in play
        assert rec.attributes[rec.user_id][0] > rec.attributes[rec.user_id][1]  # chosen wins on the user's attribute
    for pair_id, recs in by_pair(built.records).items():
        assert sorted(r.user_id for r in recs) == sorted(HH)  # every pair labelled by every user


def test_ultrafeedback_hht_matches_brute_force():
    built = build_ultrafeedback(UF_TINY, UltraFeedbackConfig(attributes=HHT, conflict_rate=None,
                                                              fractions=ALL_TRAIN))
    kept, _ = reference_pairs(UF_TINY, HHT)
    assert {r.pair_id for r in built.records} == kept
    assert "uf5-0-3" not in kept  # now the truthfulness N/A drops it
    assert built.counts["users"] == 3 and len(built.records) == 3 * len(kept)
    strict = build_ultrafeedback(UF_TINY, UltraFeedbackConfig(attributes=HHT, fractions=ALL_TRAIN))
    _, conflicting = reference_pairs(UF_TINY, HHT)
    assert {r.pair_id for r in strict.records} == conflicting  # App. D.1: not all three agree


@pytest.mark.parametrize("rate", [1.0, 0.75, 0.5, 0.25])
def test_conflict_rate_targets(rate):
    cfg = UltraFeedbackConfig(conflict_rate=rate, fractions=(0.6, 0.2, 0.2), seed=3)
    built = build_ultrafeedback(UF_SYNTH, cfg)
    measured = conflict_summary(built.records)
    kept, conflicting = reference_pairs(UF_SYNTH, HH)
    for split, value in measured.items():
        n = built.counts[f"pairs_{split}"]
        assert abs(value - rate) <= 0.5 / n + 1e-12
        assert value == pytest.approx(built.counts[f"conflict_rate_{split}"])
    # paper's size rule: each split is as large as its 100%-conflict version, unless too few
    # agreeing pairs exist (the fixture has enough for rates >= 0.5, not for 0.25)
    full = build_ultrafeedback(UF_SYNTH, UltraFeedbackConfig(conflict_rate=1.0, fractions=(0.6, 0.2, 0.2), seed=3))
    for split in ("train", "validation", "test"):
        if rate >= 0.5:
            assert built.counts[f"pairs_{split}"] == full.counts[f"pairs_{split}"]
        else:
            assert 0 < built.counts[f"pairs_{split}"] <= full.counts[f"pairs_{split}"]
    assert {r.pair_id for r in built.records} <= kept
    assert sum(full.counts[f"pairs_{s}"] for s in ("train", "validation", "test")) == len(conflicting)


def test_select_conflict_rate_exact_and_errors():
    conflicting = np.array([True] * 30 + [False] * 10)
    idx = select_conflict_rate(conflicting, 0.75, n_pairs=40, rng=np.random.default_rng(0))
    assert len(idx) == 40 and conflicting[idx].sum() == 30
    # paper size would be 30; with 10 agreeing pairs the largest that fits is 21 (11 conflicting, half up)
    idx = select_conflict_rate(conflicting, 0.5, rng=np.random.default_rng(0))
    assert len(idx) == 21 and conflicting[idx].sum() == 11
    with pytest.raises(ValueError, match="cannot draw 40 pairs"):
        select_conflict_rate(conflicting, 0.5, n_pairs=40)
    with pytest.raises(ValueError, match="conflict rate"):
        select_conflict_rate(conflicting, 1.5)


def test_prompt_grouped_splits():
    built = build_ultrafeedback(UF_SYNTH, UltraFeedbackConfig(conflict_rate=None, fractions=(0.5, 0.25, 0.25)))
    split_of = defaultdict(set)
    for r in built.records:
        split_of[r.prompt].add(r.split)
    assert all(len(s) == 1 for s in split_of.values())
    assert {s for v in split_of.values() for s in v} == {"train", "validation", "test"}
    assert split_records(built.records, group_by="prompt") == built.records  # existing splits are kept
    resplit = split_records(built.records, fractions=(0.5, 0.25, 0.25), seed=9, group_by="prompt",
                            keep_existing=False)
    again = defaultdict(set)
    for r in resplit:
        again[r.prompt].add(r.split)
    assert all(len(s) == 1 for s in again.values())


@pytest.mark.parametrize("attrs", [HH, HHT])
def test_simplex_users(attrs):
    cfg = UltraFeedbackConfig(attributes=attrs, users="simplex", conflict_rate=None, n_users=30,
                              pairs_per_user=8, fractions=(0.5, 0.25, 0.25), seed=1)
    built = build_ultrafeedback(UF_SYNTH, cfg)
    per_user = defaultdict(list)
    for r in built.records:
        per_user[r.user_id].append(r)
    assert 1 < len(per_user) <= 30
    for recs in per_user.values():
        assert len(recs) <= 8 and len({r.split for r in recs}) == 1  # new users per split
        z = np.array(recs[0].user_latent)
        assert z.shape == (len(attrs),) and z.sum() == pytest.approx(1.0) and (z >= 0).all()
        for r in recs:
            assert r.user_latent == recs[0].user_latent
            margin = sum(w * (r.attributes[n][0] - r.attributes[n][1]) for w, n in zip(z, attrs))
            assert margin > 0  # chosen wins under the user's weights; ties were dropped


# ---------------------------------------------------------------- UF-P
def test_ufp2_controversial_and_survey_contexts():
    cfg = UFPConfig(n_users=2, survey_size=10, context_range=(2, 8), n_duplicates=3, seed=4)
    data = build_ufp(UF_SYNTH, cfg)
    recs = data.records
    for pair_id, group in by_pair(recs).items():
        assert sorted(r.user_id for r in group) == sorted(HH)
        assert group[0].chosen == group[1].rejected  # every UF-P-2 pair is labelled oppositely
    for k, pool in data.survey.items():
        assert len(pool) == 10
        assert all(recs[i].user_latent == k and recs[i].split == "train" for i in pool)
    n_items = 0
    for split, items in data.items.items():
        assert len(items) == 3 * sum(r.split == split for r in recs)  # M duplicates per labelled pair
        for it in items:
            target = int(it.target[0])
            assert recs[target].split == split and recs[target].user_latent == it.user_type
            assert 2 <= len(it.context) <= 8 and len(set(it.context.tolist())) == len(it.context)
            assert target not in it.context.tolist()
            assert set(it.context.tolist()) <= set(data.survey[it.user_type].tolist())  # same type's pool only
            assert all(recs[i].user_latent == it.user_type for i in it.context)
        n_items += len(items)
    assert n_items == sum(data.counts[f"items_{s}"] for s in ("train", "validation", "test"))
    vectors = torch.randn(len(recs), 4)
    batch = collate(data.items["test"][:5], vectors, -vectors)
    assert batch.context_mask.sum(1).tolist() == [len(it.context) for it in data.items["test"][:5]]


def test_ufp4_filters_agreement_and_per_user_ties():
    data = build_ufp(UF_SYNTH, UFPConfig(n_users=4, survey_size=12, n_duplicates=1))
    for pair_id, group in by_pair(data.records).items():
        chosen = {r.chosen for r in group}
        assert len(chosen) == 2  # some users disagree on every kept pair
        for r in group:
            assert r.attributes[r.user_id][0] > r.attributes[r.user_id][1]  # no tied user labels it
    rows = raw_rows(UF_SYNTH)
    n_agree = 0
    for row in rows:
        comps = row["completions"]
        for i, j in combinations(range(len(comps)), 2):
            signs = {np.sign(float(comps[i]["annotations"][a]["Rating"]) - float(comps[j]["annotations"][a]["Rating"]))
                     for a in ("helpfulness", "honesty", "instruction_following", "truthfulness")} - {0}
            n_agree += len(signs) <= 1
    assert data.counts["agreeing"] + data.counts["ties"] == n_agree


def test_ufp_rejects_too_small_survey():
    with pytest.raises(ValueError, match="survey_size"):
        UFPConfig(survey_size=4, context_range=(2, 8))


# ---------------------------------------------------------------- HelpSteer, PKU-SafeRLHF
def test_helpsteer_counts_and_orientation():
    built = build_helpsteer(FIX / "helpsteer_tiny.jsonl")
    assert built.counts == {"rows": 13, "missing_rows": 1, "prompts": 6, "pairs": 6, "ties": 1, "records": 19}
    for r in built.records:
        assert r.attributes[r.user_id][0] > r.attributes[r.user_id][1]
        assert set(r.attributes) == {"helpfulness", "correctness", "coherence", "complexity", "verbosity"}
    summed = build_helpsteer(FIX / "helpsteer_tiny.jsonl", HelpSteerConfig(per_attribute=False, fractions=None))
    assert summed.counts["records"] == 4 and summed.counts["sum_ties"] == 1
    for r in summed.records:
        assert sum(v[0] for v in r.attributes.values()) > sum(v[1] for v in r.attributes.values())
        assert r.split is None


def test_saferlhf_counts_and_orientation():
    built = build_saferlhf(FIX / "pku_saferlhf_tiny.jsonl")
    assert built.counts == {"rows": 6, "identical": 1, "records": 10, "pairs": 5}
    rows = raw_rows(FIX / "pku_saferlhf_tiny.jsonl")
    for r in built.records:
        row = rows[int(r.pair_id[3:]) - 1]
        field = "better_response_id" if r.user_id == "helpfulness" else "safer_response_id"
        assert r.chosen == row[f"response_{row[field]}"]
        assert r.attributes[r.user_id] == [1.0, 0.0]
    strict = build_saferlhf(FIX / "pku_saferlhf_tiny.jsonl", SafeRLHFConfig(require_safety_differs=True))
    assert strict.counts["same_safety"] == 2 and strict.counts["records"] == 6
    for r in strict.records:
        assert r.attributes["is_safe"][0] != r.attributes["is_safe"][1]


# ---------------------------------------------------------------- sources and errors
def test_parquet_source_and_record_round_trip(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "hs.parquet"
    pq.write_table(pa.Table.from_pylist(raw_rows(FIX / "helpsteer_tiny.jsonl")), path)
    assert build_helpsteer(path).counts == build_helpsteer(FIX / "helpsteer_tiny.jsonl").counts
    uf = tmp_path / "uf.parquet"
    pq.write_table(pa.Table.from_pylist(raw_rows(UF_TINY)), uf)
    assert build_ultrafeedback(uf).counts == build_ultrafeedback(UF_TINY).counts
    records = build_ultrafeedback(UF_TINY).records
    assert read_records(write_records(records, tmp_path / "uf.jsonl")) == records


def test_bad_rows_name_file_line_and_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    rows = raw_rows(UF_TINY)[:2]
    del rows[1]["instruction"]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(SourceRowError, match=r"bad.jsonl:2: field 'instruction' is missing"):
        build_ultrafeedback(bad)
    with pytest.raises(FileNotFoundError):
        build_helpsteer(tmp_path / "nope.jsonl")
    pku = raw_rows(FIX / "pku_saferlhf_tiny.jsonl")[:1]
    pku[0]["better_response_id"] = 2
    (tmp_path / "pku.jsonl").write_text(json.dumps(pku[0]) + "\n")
    with pytest.raises(SourceRowError, match="better_response_id"):
        build_saferlhf(tmp_path / "pku.jsonl")
    with pytest.raises(ValueError, match="attributes"):
        UltraFeedbackConfig(attributes=("helpfulness", "kindness"))


def test_rows_in_memory_and_max_pairs():
    rows = raw_rows(UF_SYNTH)
    from_rows = build_ultrafeedback(rows, UltraFeedbackConfig(conflict_rate=0.5))
    assert from_rows.counts == build_ultrafeedback(UF_SYNTH, UltraFeedbackConfig(conflict_rate=0.5)).counts
    capped = build_ultrafeedback(rows, UltraFeedbackConfig(conflict_rate=0.5, max_pairs=20,
                                                           fractions=(0.5, 0.25, 0.25)))
    sizes = [capped.counts[f"pairs_{s}"] for s in ("train", "validation", "test")]
    assert sizes == [10, 5, 5]
    for split, value in conflict_summary(capped.records).items():
        assert abs(value - 0.5) <= 0.5 / capped.counts[f"pairs_{split}"]
    import datasets  # a declared dependency: a missing one must fail, not skip
    ds = datasets.Dataset.from_list(raw_rows(FIX / "helpsteer_tiny.jsonl"))
    assert build_helpsteer(ds).counts == build_helpsteer(FIX / "helpsteer_tiny.jsonl").counts
