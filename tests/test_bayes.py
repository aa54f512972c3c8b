"""Bayes-optimal references: closed forms (NP paper §4.3, App. A eq. 15-17) and enumeration over
sampled tasks."""

import math

import numpy as np
import pytest

from pluralign.data import synthetic as S
from pluralign.data.splits import by_split
from pluralign.data.tables import user_ids, user_types
from pluralign.data.tasks import TaskItem, TaskSampler
from pluralign.eval import bayes as B


def test_closed_forms_match_the_paper_numbers():
    acc = [B.example41_bayes_accuracy(n) for n in (0, 1, 3, 5, 10)]
    np.testing.assert_allclose(acc, [0.75, 0.875, 0.96875, 0.9921875, 1 - 0.25 / 1024])
    assert B.example43_conflict_rate(-1.0) == pytest.approx(1.0)
    assert B.example43_conflict_rate(-0.7) == pytest.approx(0.75, abs=0.005)  # paper: 100/75/50/25 %
    assert B.example43_conflict_rate(0.0) == pytest.approx(0.5)
    assert B.example43_conflict_rate(0.7) == pytest.approx(0.25, abs=0.005)
    assert B.example43_single_context_error(-1.0) == pytest.approx(0.0)
    assert B.example43_single_context_error(1.0) == pytest.approx(0.5)
    # one context pair: the type error is (1 - c) / 2, consistent with the accuracy formula
    for rho in (-0.7, 0.0, 0.3):
        c = B.example43_conflict_rate(rho)
        assert B.example43_single_context_error(rho) == pytest.approx((1 - c) / 2)
        assert B.example43_bayes_accuracy(rho, 0) == pytest.approx(1 - c / 2)
    np.testing.assert_allclose(B.bayes_accuracy_conflict(0.5, np.array([0, 1])), [0.75, 0.875])


def test_eq17_orthant_probability_by_monte_carlo():
    """P(X0 > 0, X1 > 0) for X ~ N(0, [[1, rho], [rho, 1]]) is 1/4 + arcsin(rho)/(2 pi)."""
    rng = np.random.default_rng(0)
    for rho in (-0.7, 0.0, 0.5):
        x = S.correlated_gaussian(rng, 200000, 2, rho)
        p = ((x[:, 0] > 0) & (x[:, 1] > 0)).mean()
        assert abs(p - B.example43_single_context_error(rho)) < 0.005


def _items(context, target, unseen=None):
    target = np.asarray(target)
    return TaskItem("u", 0, np.asarray(context, dtype=np.int64), target,
                    np.ones(len(target), bool) if unseen is None else np.asarray(unseen))


def test_enumeration_on_a_hand_made_table():
    # pairs 0..3; type 0 agrees with the stored label on 0, 1, 2; type 1 on 0, 3
    L = np.array([[1, 1, 1, 0], [1, 0, 0, 1]], dtype=bool)
    items = [_items([], [0, 1]),  # no context: pair 0 both agree (1), pair 1 is a coin flip (0.5)
             _items([1], [2, 3]),  # context pair 1 reveals type 0: right on 2, wrong on 3
             _items([0], [1])]  # an uninformative context pair leaves the flip
    r = B.bayes_optimal_accuracy(L, items)
    np.testing.assert_allclose(r.item_accuracy, [0.75, 0.5, 0.5])
    assert r.accuracy == pytest.approx((1 + 0.5 + 1 + 0 + 0.5) / 5) and r.n_targets == 5
    np.testing.assert_allclose(r.posterior, [[0.5, 0.5], [1, 0], [0.5, 0.5]])
    np.testing.assert_allclose(r.item_expected, [0.75, 1.0, 0.5])
    # a prior breaks the tie
    r = B.bayes_optimal_accuracy(L, [_items([], [1])], prior=np.array([0.7, 0.3]))
    assert r.accuracy == 1.0 and r.expected_accuracy == pytest.approx(0.7)
    # seen targets are not scored
    r = B.bayes_optimal_accuracy(L, [_items([1], [1, 3], unseen=[False, True])])
    assert r.n_targets == 1 and r.accuracy == 0.0


def test_impossible_context_falls_back_to_prior_with_warning():
    L = np.array([[1, 0], [1, 0]], dtype=bool)
    with pytest.warns(UserWarning, match="no user type explains"):
        r = B.bayes_optimal_accuracy(L, [_items([1], [0])])
    assert r.n_inconsistent == 1 and r.accuracy == 1.0


def test_example41_enumeration_matches_closed_form():
    """The 'Done when' check: on sampled tasks of the test split, exact enumeration of the
    posterior gives 1 - 0.25·0.5^N^C within sampling error."""
    records, _ = S.example41(n_pairs=20000, seed=0)
    test = by_split(records)["test"]
    L, types = B.preference_matrix(test)
    assert types == [0, 1] and L.shape == (2, len(test)) and L.dtype == np.float64
    sampler = TaskSampler(user_ids(test), context_range=(0, 10), n_target=20, context_in_target=False,
                          user_types=user_types(test), seed=11)
    # the finite test pool has its own conflict rate; its sampling error is part of the budget
    c_hat = np.mean(L[0] != L[1])
    n_pool = len(test) // 2
    for n in (0, 1, 3, 5, 10):
        r = B.bayes_optimal_accuracy(L, sampler.sample(2000, step=n, n_context=n))
        closed = B.example41_bayes_accuracy(n)
        # standard error: between tasks (items' unseen-target accuracies) and of the pool's conflict rate
        se_tasks = np.std(r.item_accuracy) / math.sqrt(len(r.item_accuracy))
        se_pool = (1 + n) * 0.5 ** n / 2 * math.sqrt(0.25 / n_pool)  # |d acc / d c| · sd(c_hat), bounded
        assert abs(r.accuracy - closed) < 4 * math.hypot(se_tasks, se_pool) + 1e-4, (n, r.accuracy, closed)
        # against the pool's own conflict rate only the task sampling error remains
        assert abs(r.accuracy - B.bayes_accuracy_conflict(c_hat, n)) < 4 * se_tasks + 1e-3, (n, r.accuracy)
        assert r.by_context() == {n: pytest.approx(r.accuracy)}


@pytest.mark.parametrize("rho", [-0.7, 0.7])
def test_example43_enumeration_matches_closed_form(rho):
    records, _ = S.example43(n_pairs=8000, rho=rho, seed=3)
    test = by_split(records)["test"]
    L, _ = B.preference_matrix(test)
    c_hat = np.mean(L[0] != L[1])
    sampler = TaskSampler(user_ids(test), context_range=(0, 10), n_target=20, context_in_target=False, seed=0)
    for n in (0, 1, 4):
        r = B.bayes_optimal_accuracy(L, sampler.sample(1500, step=n, n_context=n))
        assert abs(r.accuracy - B.bayes_accuracy_conflict(c_hat, n)) < 0.01


def test_training_tasks_score_only_unseen_targets():
    records, _ = S.example41(n_pairs=2000, seed=1)
    train = by_split(records)["train"]
    L, _ = B.preference_matrix(train)
    sampler = TaskSampler(user_ids(train), context_range=(0, 10), n_target=20, seed=0)  # context ⊂ target
    items = sampler.sample(500, step=0)
    r = B.bayes_optimal_accuracy(L, items)
    assert r.n_targets == sum(20 - it.n_context for it in items)
    by_n = r.by_context()
    assert set(by_n) <= set(range(11)) and by_n[0] < by_n[10]


def test_preference_matrix_undoes_noise_and_models_it():
    clean, _ = S.example43(n_pairs=300, rho=0.0, seed=0, split=None)
    noisy, _ = S.example43(n_pairs=300, rho=0.0, seed=0, noise=0.2, split=None)
    Lc, _ = B.preference_matrix(clean)
    Ln, _ = B.preference_matrix(noisy)
    flipped = np.array([bool(r.meta.get("flipped")) for r in noisy])
    # the stored label of a flipped record is the opposite of what every type truly prefers
    np.testing.assert_array_equal(Ln[:, flipped], 1 - Lc[:, flipped])
    np.testing.assert_array_equal(Ln[:, ~flipped], Lc[:, ~flipped])
    for i, r in enumerate(noisy):  # the own type's entry is 0 exactly where the label was flipped
        assert Ln[r.user_latent, i] == (0.0 if flipped[i] else 1.0)
    Le, _ = B.preference_matrix(noisy, noise=0.2)
    assert set(np.unique(Le)) == {0.2, 0.8}


def test_likelihood_from_users_deterministic_and_bradley_terry():
    from pluralign.data.users import AttributeUser, GaussianBumpUser

    a, b = np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 0.0]])
    L = B.likelihood_from_users([AttributeUser(0), AttributeUser(1)], a, b)
    np.testing.assert_array_equal(L, [[1, np.nan], [0, np.nan]])  # a tie: the type abstains
    bump = GaussianBumpUser(0, [0.0], 1.0)
    Lb = B.likelihood_from_users([bump], np.array([[0.0]]), np.array([[1.0]]))
    assert Lb[0, 0] == pytest.approx(1 / (1 + math.exp(-0.5)))


def test_preference_matrix_needs_typed_users():
    from pluralign.data.records import PreferenceRecord

    with pytest.raises(ValueError, match="finitely many types"):
        B.preference_matrix([PreferenceRecord("u", "", [0.0], [1.0])])


def test_indifferent_type_abstains():
    """Types 0, 1, 2; type 1 is indifferent on pairs 0-2 (NaN). Counting it as evidence 0.5
    would give pair 0 q = (1 + 0.5 + 1) / 3 = 5/6; abstaining, q = 1."""
    nan = np.nan
    L = np.array([[1, 1, 1, 0],
                  [nan, nan, nan, 1],
                  [1, 0, 0, 1]])
    r = B.bayes_optimal_accuracy(L, [_items([], [0]), _items([], [1])])
    np.testing.assert_allclose(r.item_expected, [1.0, 0.5])
    np.testing.assert_allclose(r.item_accuracy, [1.0, 0.5])
    # a record on pair 0 rules type 1 out (it never labels pair 0): posterior (1/2, 0, 1/2)
    r = B.bayes_optimal_accuracy(L, [_items([0], [1])])
    np.testing.assert_allclose(r.posterior, [[0.5, 0.0, 0.5]])
    assert r.expected_accuracy == pytest.approx(0.5)
    # pair 2 reveals type 0, which rejects pair 3's stored choice: expected 1, realised 0
    r = B.bayes_optimal_accuracy(L, [_items([2], [3])])
    np.testing.assert_allclose(r.posterior, [[1.0, 0.0, 0.0]])
    assert r.expected_accuracy == 1.0 and r.accuracy == 0.0


def test_stochastic_users_use_choice_probabilities():
    """Bradley–Terry types A, B with P(stored chosen) 0.9 / 0.2 on pair 0 and 0.8 / 0.3 on
    pair 1: no context q = 0.55; after a record on pair 0, p(A) = 0.9 / 1.1 = 9/11 and
    q = (9·0.8 + 2·0.3) / 11 = 7.8/11."""
    L = np.array([[0.9, 0.8], [0.2, 0.3]])
    assert B.bayes_optimal_accuracy(L, [_items([], [1])]).expected_accuracy == pytest.approx(0.55)
    r = B.bayes_optimal_accuracy(L, [_items([0], [1])])
    np.testing.assert_allclose(r.posterior, [[9 / 11, 2 / 11]])
    assert r.expected_accuracy == pytest.approx(7.8 / 11)
    # from the users: P(a > b) = sigmoid(r(a) - r(b)), not a drawn label
    from pluralign.data.users import GaussianBumpUser

    u = GaussianBumpUser(0, [0.0], 1.0)
    Lu = B.likelihood_from_users([u], np.array([[0.0], [1.0]]), np.array([[1.0], [0.0]]))
    np.testing.assert_allclose(Lu, [[1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(0.5))]])


def test_label_noise_likelihood():
    """Deterministic types with 10% flipped labels: a record on pair 0 (A prefers it, B not)
    gives p(A) = 0.9; on pair 1 (same split) q = 0.9·0.9 + 0.1·0.1 = 0.82."""
    from pluralign.data.users import AttributeUser

    a, b = np.array([[1.0, 0.0], [1.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 1.0]])
    L = B.likelihood_from_users([AttributeUser(0), AttributeUser(1)], a, b, noise=0.1)
    np.testing.assert_allclose(L, [[0.9, 0.9], [0.1, 0.1]])
    r = B.bayes_optimal_accuracy(L, [_items([0], [1])])
    np.testing.assert_allclose(r.posterior, [[0.9, 0.1]])
    assert r.expected_accuracy == pytest.approx(0.82)


def test_monte_carlo_posterior_over_simplex_users():
    """Users w = (w0, 1 - w0), w0 ~ U(0, 1) (Dirichlet(1, 1)). Score differences (chosen -
    rejected): pair 0 (1, -1) is preferred iff w0 > 1/2; pair 1 (3, -1) iff w0 > 1/4. No
    context: q = 3/4; after a record on pair 0, w0 > 1/2 and q = 1."""
    rng = np.random.default_rng(0)
    w = rng.dirichlet([1.0, 1.0], size=20000)
    sc, sr = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[0.0, 1.0], [0.0, 1.0]])
    L = B.sampled_likelihood(w, sc, sr)
    assert L.shape == (20000, 2) and L.dtype == np.float32
    assert B.bayes_optimal_accuracy(L, [_items([], [1])]).expected_accuracy == pytest.approx(0.75, abs=0.01)
    assert B.bayes_optimal_accuracy(L, [_items([0], [1])]).expected_accuracy == pytest.approx(1.0)
    # one-hot weights are the exact finite-type table, chunking changes nothing
    from pluralign.data.users import AttributeUser

    np.testing.assert_array_equal(B.sampled_likelihood(np.eye(2), sc, sr),
                                  B.likelihood_from_users([AttributeUser(0), AttributeUser(1)], sc, sr))
    items = [_items([0], [1]), _items([], [0, 1]), _items([1], [0])]
    full, chunked = B.bayes_optimal_accuracy(L, items), B.bayes_optimal_accuracy(L, items, chunk=1)
    np.testing.assert_allclose(full.item_expected, chunked.item_expected)
