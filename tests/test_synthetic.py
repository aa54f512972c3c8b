"""Simulated users and synthetic generators (NP paper Ex. 4.1 / 4.3 / App. D, VPL App. D.1)."""

import math
from collections import Counter, defaultdict

import numpy as np
import pytest

from pluralign.data import synthetic as S
from pluralign.data.splits import by_split
from pluralign.data.tables import pair_conflicts, true_chosen
from pluralign.data.users import (AttributeUser, Example41User, GaussianBumpUser, TieError, WeightedUser,
                                  compare_all, conflicting, sample_simplex_users)


# ----------------------------------------------------------------------------------- users

def test_example41_rewards_follow_the_paper():
    y = np.array([0.1, 0.5, 0.6, 0.9])
    np.testing.assert_allclose(Example41User(0).reward(y), [0.1, 0.5, 1.2, 1.8])
    np.testing.assert_allclose(Example41User(1).reward(y), [0.1, 0.5, 0.4, 0.1])
    assert Example41User(0).prefers(0.9, 0.6) and not Example41User(1).prefers(0.9, 0.6)
    assert Example41User(0).prefers(0.4, 0.2) and Example41User(1).prefers(0.4, 0.2)  # agree below 0.5
    with pytest.raises(TieError):
        Example41User(1).prefers(0.25, 0.75)  # r = 0.25 for both
    with pytest.raises(ValueError):
        Example41User(2)


def test_attribute_weighted_and_bump_users():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    assert AttributeUser(0).prefers(a, b) and not AttributeUser(1).prefers(a, b)
    assert WeightedUser([0.8, 0.2]).prefers(a, b) and not WeightedUser([0.5, 0.5]).prefers(a, b)
    with pytest.raises(TieError):
        WeightedUser([2 / 3, 1 / 3]).prefers(a, b)
    assert list(AttributeUser(1).compare([[1, 2], [3, 0], [1, 1]], [[0, 1], [0, 1], [0, 1]])) == [1, -1, 0]
    users = sample_simplex_users(50, 3, 0.5, np.random.default_rng(0))
    w = np.array([u.latent for u in users])
    assert w.shape == (50, 3) and np.allclose(w.sum(1), 1) and (w >= 0).all()
    bump = GaussianBumpUser(0, [0.25], sigma=0.1)
    assert bump.prefers(0.25, 0.6) and bump.prob([[0.25]], [[0.6]])[0] > 0.99
    np.testing.assert_allclose(bump.prob([[0.2]], [[0.3]]), [0.5])  # symmetric around the centre


def test_bradley_terry_choices_match_their_probability():
    bump = GaussianBumpUser(0, [0.5], sigma=0.3)
    a, b = np.full((20000, 1), 0.5), np.full((20000, 1), 0.8)
    p = bump.prob(a[:1], b[:1])[0]
    freq = (bump.compare(a, b, np.random.default_rng(0)) > 0).mean()
    assert 0.5 < p < 0.95 and abs(freq - p) < 4 * math.sqrt(p * (1 - p) / 20000)


def test_conflicting_marks_strict_disagreement_only():
    ch = np.array([[1, 1, -1, 0], [1, -1, -1, 1]])
    assert conflicting(ch).tolist() == [False, True, False, False]


# ------------------------------------------------------------------------------ generators

@pytest.mark.parametrize("rho", [-1.0, -0.7, 0.0, 0.7])
def test_example43_conflict_rate_matches_arcsin_formula(rho):
    records, info = S.example43(n_pairs=20000, rho=rho, seed=1, split=None)
    expected = 0.5 - math.asin(rho) / math.pi
    assert info["n_pairs"] == 20000 and info["expected_conflict_rate"] == pytest.approx(expected)
    assert abs(info["conflict_rate"] - expected) < 0.01
    conf = pair_conflicts(records)  # measured again from the records themselves
    assert len(conf) == 20000 and abs(np.mean(list(conf.values())) - expected) < 0.01


def test_example41_nP_scheme_every_type_labels_every_pair():
    records, info = S.example41(n_pairs=4000, seed=0)
    assert len(records) == 8000 and info["n_pairs"] == 4000
    by_pair = defaultdict(dict)
    for r in records:
        assert r.user_id == f"z{r.user_latent}" and len(r.chosen) == 1
        assert Example41User(r.user_latent).prefers(r.chosen[0], r.rejected[0])
        by_pair[r.pair_id][r.user_latent] = r
    assert len(by_pair) == 4000 and all(set(v) == {0, 1} for v in by_pair.values())
    for v in by_pair.values():  # both labels of a pair are in one split, over the same two options
        assert v[0].split == v[1].split
        assert sorted([v[0].chosen, v[0].rejected]) == sorted([v[1].chosen, v[1].rejected])
    assert abs(info["conflict_rate"] - 0.5) < 0.03  # [0, 1]: half the pairs conflict
    pairs = {s: len({r.pair_id for r in rs}) for s, rs in by_split(records).items()}
    assert pairs == {"train": 2000, "validation": 1000, "test": 1000}


def test_example41_range_is_a_parameter():
    records, info = S.example41(n_pairs=20000, low=-1.0, high=1.0, seed=0, split=None)
    assert abs(info["conflict_rate"] - 1 / 8) < 0.01  # App. C.1's [-1, 1]: 1/8 conflict
    assert min(min(r.chosen[0], r.rejected[0]) for r in records) < -0.99
    with pytest.raises(ValueError):
        S.example41(n_pairs=10, low=1.0, high=0.0)


def test_paper_default_sizes_split_by_pair():
    records, info = S.example43()
    pairs = {s: len({r.pair_id for r in rs}) for s, rs in by_split(records).items()}
    assert pairs == {"train": 10000, "validation": 5000, "test": 5000}
    assert len(records) == 40000


def test_same_seed_same_data_different_seed_different():
    a, _ = S.example43(n_pairs=500, rho=0.3, seed=4)
    b, _ = S.example43(n_pairs=500, rho=0.3, seed=4)
    c, _ = S.example43(n_pairs=500, rho=0.3, seed=5)
    assert a == b and a != c


@pytest.mark.parametrize("rate", [0.0, 0.25, 1.0])
def test_conflict_rate_control(rate):
    records, info = S.example43(n_pairs=2000, rho=0.0, conflict_rate=rate, seed=2, split=None)
    conf = pair_conflicts(records)
    assert len(conf) == 2000 and np.mean(list(conf.values())) == pytest.approx(rate)
    assert info["conflict_rate"] == pytest.approx(rate)
    recs41, _ = S.example41(n_pairs=1000, conflict_rate=0.9, seed=0, split=None)
    assert np.mean(list(pair_conflicts(recs41).values())) == pytest.approx(0.9)


def test_unreachable_conflict_rate_is_a_clear_error():
    with pytest.raises(ValueError, match="conflict rate"):
        S.example43(n_pairs=100, rho=1.0, conflict_rate=0.5, seed=0)  # identical scores never conflict
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        S.example43(n_pairs=100, conflict_rate=1.5)


def test_select_conflict_rate_largest_subset_and_exact_n():
    conf = np.array([True] * 30 + [False] * 70)
    idx = S.select_conflict_rate(conf, 0.5, rng=np.random.default_rng(0))
    assert len(idx) == 60 and conf[idx].mean() == 0.5 and len(set(idx.tolist())) == 60
    idx = S.select_conflict_rate(conf, 0.25, n=40, rng=np.random.default_rng(0))
    assert len(idx) == 40 and conf[idx].sum() == 10
    with pytest.raises(ValueError):
        S.select_conflict_rate(conf, 0.9, n=80)


def test_label_noise_flips_the_asked_fraction_and_is_recorded():
    clean, _ = S.example43(n_pairs=1000, rho=0.0, seed=3, split=None)
    noisy, info = S.example43(n_pairs=1000, rho=0.0, seed=3, noise=0.1, split=None)
    assert info["flipped"] == 200
    flipped = [r for r in noisy if r.meta.get("flipped")]
    assert len(flipped) == 200
    for r in flipped:  # the stored label contradicts the user's reward; true_chosen undoes it
        assert not AttributeUser(r.user_latent).prefers(r.chosen, r.rejected)
        assert true_chosen(r) == r.rejected
    assert {(r.pair_id, r.user_id) for r in noisy} == {(r.pair_id, r.user_id) for r in clean}


def test_kmode_three_attributes_and_attributes_field():
    records, info = S.kmode(n_pairs=900, k=3, rho=0.2, seed=0, split=None)
    assert {r.user_latent for r in records} == {0, 1, 2} and info["n_pairs"] == 900
    assert Counter(r.user_id for r in records) == {"z0": 900, "z1": 900, "z2": 900}
    for r in records[:50] + records[-50:]:
        scores = r.attributes
        assert set(scores) == {"a0", "a1", "a2"}
        z = f"a{r.user_latent}"
        assert scores[z][0] > scores[z][1]  # the chosen option wins on the user's attribute
        assert [scores[f"a{i}"][0] for i in range(3)] == r.chosen
    rec_c, info_c = S.kmode(n_pairs=600, k=3, conflict_rate=0.5, seed=1, split=None)
    assert info_c["n_pairs"] == 600
    assert np.mean(list(pair_conflicts(rec_c).values())) == pytest.approx(0.5)


def test_simplex_users_have_weight_latents_and_label_their_share():
    records, info = S.simplex(n_users=20, pairs_per_user=30, n_pairs=300, k=3, seed=0, split=None)
    per_user = Counter(r.user_id for r in records)
    assert len(per_user) == 20 and set(per_user.values()) == {30}
    for r in records:
        w = np.asarray(r.user_latent)
        assert w.shape == (3,) and np.isclose(w.sum(), 1)
        assert WeightedUser(w).prefers(r.chosen, r.rejected)


def test_attribute_records_over_text_options():
    texts = [f"answer {i}" for i in range(30)]
    scores = np.random.default_rng(0).integers(1, 6, size=(30, 2)).astype(float)  # ratings: ties
    records, info = S.attribute_records(texts, scores, [AttributeUser(0), AttributeUser(1)],
                                        n_pairs=200, attribute_names=["helpfulness", "honesty"],
                                        prompts=["Q?"] * 30, seed=0)
    assert info["ties_dropped"] > 0 and records
    for r in records:
        assert isinstance(r.chosen, str) and r.prompt == "Q?"
        h = r.attributes["helpfulness" if r.user_latent == 0 else "honesty"]
        assert h[0] > h[1]
    conf = pair_conflicts(records)
    assert len(conf) == info["n_pairs"]  # ties dropped for the whole pair: both types label it


def test_vpl_didactic_labels_with_bradley_terry():
    records, info = S.vpl_didactic(n_pairs=3000, m=4, sigma=0.2, seed=0, split=None)
    assert {r.user_latent for r in records} == {0, 1, 2, 3} and len(records) == 12000
    assert info["conflict_rate"] > 0.5
    # stochastic: some labels go against the more likely option, about as often as predicted
    users = {u.latent: u for u in S.gaussian_bump_users(4, 1, 0.0, 1.0, 0.2, 1.0)}
    p = np.array([users[r.user_latent].prob([r.chosen], [r.rejected])[0] for r in records])
    against = (p < 0.5).mean()
    expected_against = np.mean(np.minimum(p, 1 - p))
    assert 0 < against and abs(against - expected_against) < 0.02


def test_registry_lists_every_generator():
    assert set(S.GENERATORS) == {"example41", "example43", "kmode", "simplex", "vpl-didactic"}
    for name, fn in S.GENERATORS.items():
        records, info = fn(n_pairs=200, seed=0) if name != "simplex" else fn(
            n_users=10, pairs_per_user=50, n_pairs=200, seed=0)
        assert records and info["n_records"] == len(records)
        assert all(r.pair_id and r.user_latent is not None and r.split for r in records)


def test_compare_all_shapes():
    users = [AttributeUser(0), AttributeUser(1)]
    ch = compare_all(users, np.zeros((5, 2)), np.ones((5, 2)))
    assert ch.shape == (2, 5) and (ch == -1).all()
