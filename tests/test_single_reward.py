"""The single-reward line: equal to Bayes where one reward can follow the posterior majority,
below it where the majority is cyclic (Condorcet), and never above it."""

import numpy as np
import pytest

from pluralign.data.tasks import TaskItem
from pluralign.eval.bayes import bayes_optimal_accuracy, sampled_likelihood
from pluralign.eval.single_reward import fit_single_rewards, single_reward_accuracy


def _setup(directions: np.ndarray, n_pairs: int = 3000, seed: int = 0):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((2, n_pairs, directions.shape[1]))
    L = sampled_likelihood(np.eye(len(directions)), a @ directions.T, b @ directions.T)
    fit_diffs = rng.standard_normal((3000, directions.shape[1])) - rng.standard_normal((3000, directions.shape[1]))
    return L, a - b, fit_diffs


def _items(n_items: int, n_types: int, context: list[int], seed: int = 1) -> list[TaskItem]:
    rng = np.random.default_rng(seed)
    return [TaskItem(user=f"u{i}", user_type=i % n_types, context=np.array(context, dtype=np.int64),
                     target=rng.choice(np.arange(100, 3000), 20, replace=False),
                     unseen=np.ones(20, dtype=bool)) for i in range(n_items)]


def _lines(directions, context):
    L, target_diffs, fit_diffs = _setup(directions)
    items = _items(40, len(directions), context)
    bayes = bayes_optimal_accuracy(L, items)
    return bayes.expected_accuracy, single_reward_accuracy(bayes, items, directions, fit_diffs, target_diffs)


def test_two_types_no_context_single_reward_reaches_bayes():
    # two users: where they disagree the majority is a tie (worth 1/2 whatever one predicts)
    directions = np.array([[1.0, 0.0], [0.6, 0.8]])
    bayes, single = _lines(directions, [])
    assert single == pytest.approx(bayes, abs=0.01)


def test_three_symmetric_types_condorcet_gap():
    # three directions 120 degrees apart: the pairwise majority is cyclic; Bayes picks it on
    # every pair, one reward cannot (its best is the Borda-like aggregate)
    angles = np.deg2rad([90.0, 210.0, 330.0])
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    bayes, single = _lines(directions, [])
    assert bayes == pytest.approx(2 / 3, abs=0.01)  # every pair is split 2 to 1
    assert single < bayes - 0.05


def test_known_type_single_reward_is_that_type():
    directions = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    w = fit_single_rewards(np.array([[0.0, 1.0, 0.0]]), directions,
                           np.random.default_rng(0).standard_normal((2000, 3)))
    assert w[0] @ directions[1] > 0.95


def test_never_above_bayes_on_random_types():
    rng = np.random.default_rng(3)
    directions = rng.standard_normal((4, 5))
    for context in ([], [0], [0, 1, 2]):
        bayes, single = _lines(directions, context)
        assert single <= bayes + 1e-9
