"""Bayes-optimal references for simulated users with a finite set of types.

Given a user's context pairs, the Bayes-optimal predictor computes the posterior over the user
types by enumeration, p(t | D^C) ∝ p(t) ∏_{c ∈ D^C} p(c | t), and predicts a target pair by the
posterior majority: chosen if q = Σ_t p(t | D^C)·p(chosen ≻ rejected | t) > 1/2 (a tie is a coin
flip, worth 0.5). No model can beat it on average, so evaluation prints it beside every model.

The likelihood table holds each type's *choice probabilities* — 1/0 for deterministic users,
1-ε/ε under label noise ε, the Bradley–Terry probability for stochastic users — never the
labels a stochastic user happened to draw (that would be an oracle, not a Bayes line). A type
that is indifferent on a pair (or never labels it) is NaN in the table and *abstains*: it casts
no vote on that target pair (q averages over the types with a preference), and since it would
not have produced a record on the pair, a context record there rules it out.
Continuous users (weights on a simplex) are handled by the same enumeration over M draws from
their distribution: :func:`sampled_likelihood` (a Monte Carlo posterior).

The closed forms reproduce the NP paper (Kobalczyk et al., §4.3 and App. A eq. 15-17): with two
deterministic types, pairs that conflict with probability c, and N^C i.i.d. context pairs, the
type stays unidentified only if no context pair conflicts ((1-c)^N^C), and then an unseen
target is a coin flip when it conflicts (c), so the accuracy is 1 - c·(1-c)^N^C / 2.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..data.records import PreferenceRecord
from ..data.tables import option_key, type_choices

_EPS = 1e-9


# ---------------------------------------------------------------------------------------------
# closed forms
# ---------------------------------------------------------------------------------------------

def bayes_accuracy_conflict(c: float, n_context: int | np.ndarray) -> float | np.ndarray:
    """Bayes-optimal unseen-target accuracy for two deterministic, equally likely user types
    whose choices conflict on a fraction ``c`` of pairs: 1 - c·(1-c)^N^C / 2."""
    return 1.0 - c * (1.0 - c) ** np.asarray(n_context, dtype=np.float64) / 2.0


def example41_bayes_accuracy(n_context: int | np.ndarray) -> float | np.ndarray:
    """Example 4.1 on [0, 1] (half the pairs conflict): 1 - 0.25·0.5^N^C
    (75.0, 87.5, 96.9, 99.2, 99.98 % at N^C = 0, 1, 3, 5, 10)."""
    return bayes_accuracy_conflict(0.5, n_context)


def example43_conflict_rate(rho: float) -> float:
    """Example 4.3: P(sign(h0_a - h0_b) != sign(h1_a - h1_b)) = 1/2 - arcsin(rho)/pi."""
    return 0.5 - math.asin(rho) / math.pi


def example43_single_context_error(rho: float) -> float:
    """NP paper eq. 11/17: error of the Bayes classifier of z from one context pair,
    P(X0 > 0, X1 > 0) = 1/4 + arcsin(rho)/(2 pi) with X the difference of the two options."""
    return 0.25 + math.asin(rho) / (2 * math.pi)


def example43_bayes_accuracy(rho: float, n_context: int | np.ndarray) -> float | np.ndarray:
    """Bayes-optimal unseen-target accuracy for Example 4.3 at correlation ``rho``."""
    return bayes_accuracy_conflict(example43_conflict_rate(rho), n_context)


# ---------------------------------------------------------------------------------------------
# likelihood tables
# ---------------------------------------------------------------------------------------------

def preference_matrix(records: Sequence[PreferenceRecord], types: Sequence[int] | None = None,
                      noise: float = 0.0) -> tuple[np.ndarray, list[int]]:
    """L[t, i] = p(type t labels record i's ``chosen`` over its ``rejected``), from records.

    Every user type of the simulated data labels every pair (the NP scheme), so record i's pair
    (``pair_id``) tells what each type prefers. Flipped labels (``meta["flipped"]``) are
    undone: the table holds the types' true preferences. With ``noise`` = ε each label is
    flipped with probability ε, so entries are 1-ε / ε. Types that did not label the pair
    (indifferent: ties are dropped) get NaN — they abstain (module doc) — and a warning.

    Returns:
        (L of shape (n_types, P) float64, the type ids of its rows).
    """
    choices = type_choices(records)
    types = sorted({t for c in choices.values() for t in c}) if types is None else list(types)
    if not types:
        raise ValueError("no records with an integer user_latent and a pair_id: "
                         "the Bayes reference needs simulated users of finitely many types")
    L = np.full((len(types), len(records)), np.nan)
    missing = 0
    for i, r in enumerate(records):
        known = choices.get(r.pair_id, {}) if r.pair_id is not None else {}
        key = option_key(r.chosen)
        for row, t in enumerate(types):
            if t in known:
                L[row, i] = 1.0 if known[t] == key else 0.0
            else:
                missing += 1
    if missing:
        warnings.warn(f"{missing} (type, record) entries unknown (type did not label the pair); "
                      "those types abstain on the pair", stacklevel=2)
    if noise:
        L = L * (1 - 2 * noise) + noise  # NaN stays NaN
    return L, types


def likelihood_from_users(users, chosen: np.ndarray, rejected: np.ndarray, noise: float = 0.0) -> np.ndarray:
    """L[t, i] = p(user t labels chosen_i over rejected_i) straight from simulated users: 1/0
    for deterministic users (NaN on a tie: the user abstains), the Bradley–Terry probability for
    stochastic ones (anything with a ``prob`` method); with label ``noise`` ε, L·(1-2ε) + ε.
    chosen/rejected: (P, D) option (or score) arrays."""
    rows = []
    for u in users:
        if hasattr(u, "prob"):
            rows.append(u.prob(chosen, rejected))
        else:
            c = u.compare(chosen, rejected).astype(np.float64)
            rows.append(np.where(c == 0, np.nan, (c + 1) / 2))
    L = np.stack(rows)
    return L * (1 - 2 * noise) + noise if noise else L


def sampled_likelihood(weights: np.ndarray, scores_chosen: np.ndarray, scores_rejected: np.ndarray,
                       noise: float = 0.0) -> np.ndarray:
    """L[m, i] for users with linear rewards w_m · s over attribute scores: 1 if user m prefers
    pair i's stored chosen option, 0 if the rejected one, NaN on a tie; with label ``noise`` ε,
    1-ε / ε. weights: (M, K) — the one-hot rows of K finite types (exact enumeration), or M
    draws from a continuous user distribution (a Monte Carlo posterior with a uniform prior
    over the draws). scores_*: (P, K). Returns float32 (M, P)."""
    diff = (np.asarray(scores_chosen, np.float64) - np.asarray(scores_rejected, np.float64)) @ np.asarray(
        weights, np.float64).T  # (P, M)
    L = np.where(diff > 0, 1.0 - noise, np.where(diff < 0, noise, np.nan))
    return np.ascontiguousarray(L.T, dtype=np.float32)


# ---------------------------------------------------------------------------------------------
# enumeration over sampled tasks
# ---------------------------------------------------------------------------------------------

@dataclass
class BayesResult:
    """Bayes-optimal accuracy on the unseen targets of sampled tasks.

    ``accuracy``: realised score of the posterior-majority prediction against the stored labels
    (the number to print beside a model evaluated on the same tasks; ties count 0.5).
    ``expected_accuracy``: the same predictor's accuracy in expectation under the posterior,
    mean of max(q, 1-q) (lower variance; equal in expectation for a correct likelihood table).
    Per-item arrays: ``item_accuracy`` (nan for items without unseen targets), ``n_context``,
    ``posterior`` over the types and ``q`` per target (what :mod:`pluralign.eval.single_reward`
    scores a single reward against).
    """

    accuracy: float
    expected_accuracy: float
    n_targets: int
    n_inconsistent: int
    item_accuracy: np.ndarray
    item_expected: np.ndarray
    item_n_unseen: np.ndarray
    n_context: np.ndarray
    posterior: np.ndarray  # (B, n_types)
    q: np.ndarray | None = None  # (B, T) p(the stored chosen option of each target is the user's choice)

    def by_context(self, expected: bool = False) -> dict[int, float]:
        """Pooled unseen-target accuracy for each context size present."""
        acc = self.item_expected if expected else self.item_accuracy
        out = {}
        for n in np.unique(self.n_context):
            sel = (self.n_context == n) & (self.item_n_unseen > 0)
            w = self.item_n_unseen[sel]
            out[int(n)] = float((acc[sel] * w).sum() / w.sum()) if w.sum() else float("nan")
        return out


def _pad(lists: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    width = max((len(x) for x in lists), default=0)
    idx = np.zeros((len(lists), width), dtype=np.int64)
    mask = np.zeros((len(lists), width), dtype=bool)
    for b, x in enumerate(lists):
        idx[b, : len(x)] = x
        mask[b, : len(x)] = True
    return idx, mask


def posterior(likelihood: np.ndarray, context: np.ndarray, mask: np.ndarray,
              prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """p(t | D^C) for B padded contexts by enumeration.

    Args:
        likelihood: (n_types, P) p(type t labels pair p as stored).
        context: (B, C) pair indices; mask: (B, C) bool, True on real entries.
        prior: (n_types,) (default uniform).
    Returns:
        (posterior (B, n_types), impossible (B,) bool: no type explains the context, posterior
        falls back to the prior).
    """
    n_types = likelihood.shape[0]
    prior = np.full(n_types, 1.0 / n_types) if prior is None else np.asarray(prior, dtype=np.float64)
    if prior.shape != (n_types,) or np.any(prior < 0) or not np.isclose(prior.sum(), 1.0):
        raise ValueError(f"prior must be {n_types} non-negative numbers summing to 1")
    with np.errstate(divide="ignore"):
        # a type that abstains on a context pair could not have produced the record: p = 0
        log_l = np.log(np.nan_to_num(likelihood[:, context].astype(np.float64), nan=0.0))  # (n_types, B, C)
        log_p = np.where(mask[None], log_l, 0.0).sum(axis=2).T + np.log(prior)  # (B, n_types)
    top = log_p.max(axis=1, keepdims=True)
    impossible = ~np.isfinite(top[:, 0])
    w = np.exp(log_p - np.where(np.isfinite(top), top, 0.0))
    w[impossible] = prior
    return w / w.sum(axis=1, keepdims=True), impossible


def per_task_mean(values: np.ndarray, unseen: np.ndarray) -> np.ndarray:
    """(B, T) values -> (B,) their mean over each task's unseen targets (nan: a task without any)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(unseen, values, 0.0).sum(axis=1) / unseen.sum(axis=1)


def bayes_optimal_accuracy(likelihood: np.ndarray, items: Sequence, prior: np.ndarray | None = None,
                           chunk: int | None = None) -> BayesResult:
    """Exact Bayes-optimal accuracy on the unseen targets of ``items``.

    Args:
        likelihood: (n_types, P) table over the pairs the tasks index (bool for deterministic
            types: "type t prefers the stored chosen option of pair p"), e.g. from
            :func:`preference_matrix` on the records of the sampled split.
        items: :class:`pluralign.data.tasks.TaskItem`s (ragged contexts are fine).
        prior: over the types (default uniform; the NP tasks pick a user uniformly).
        chunk: tasks per vectorised block (default: sized to keep blocks near 2M entries, so
            tables of many Monte Carlo draws stay small in memory).
    NaN entries abstain (module doc).
    """
    L = np.asarray(likelihood)
    if L.ndim != 2:
        raise ValueError(f"likelihood must be (n_types, P), got shape {L.shape}")
    if L.dtype not in (np.float32, np.float64):
        L = L.astype(np.float64)
    ctx, ctx_mask = _pad([np.asarray(it.context, dtype=np.int64) for it in items])
    tgt, tgt_mask = _pad([np.asarray(it.target, dtype=np.int64) for it in items])
    unseen, _ = _pad([np.asarray(it.unseen, dtype=bool) for it in items])
    unseen = unseen.astype(bool) & tgt_mask
    if chunk is None:
        chunk = max(1, 2_000_000 // (L.shape[0] * max(1, ctx.shape[1] + tgt.shape[1])))
    posts, imps, qs = [], [], []
    for s in range(0, max(len(items), 1), chunk):
        post, impossible = posterior(L, ctx[s: s + chunk], ctx_mask[s: s + chunk], prior)
        lt = L[:, tgt[s: s + chunk]].astype(np.float64)  # (n_types, b, T)
        votes = ~np.isnan(lt)  # abstaining types cast no vote on the pair
        num = np.einsum("bt,tbk->bk", post, np.nan_to_num(lt, nan=0.0))
        den = np.einsum("bt,tbk->bk", post, votes.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            qs.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.5))
        posts.append(post)
        imps.append(impossible)
    post, impossible = np.concatenate(posts), np.concatenate(imps)
    if impossible.any():
        warnings.warn(f"{int(impossible.sum())} task(s) have contexts no user type explains "
                      "(label noise?); the prior was used for them", stacklevel=2)
    q = np.concatenate(qs)  # (B, T) p(stored chosen is the user's choice)
    realised = np.where(q > 0.5 + _EPS, 1.0, np.where(q >= 0.5 - _EPS, 0.5, 0.0))
    expected = np.maximum(q, 1.0 - q)
    n_unseen = unseen.sum(axis=1)
    item_acc, item_exp = per_task_mean(realised, unseen), per_task_mean(expected, unseen)
    total = int(n_unseen.sum())
    return BayesResult(
        accuracy=float(np.where(unseen, realised, 0).sum() / max(total, 1)),
        expected_accuracy=float(np.where(unseen, expected, 0).sum() / max(total, 1)),
        n_targets=total, n_inconsistent=int(impossible.sum()),
        item_accuracy=item_acc, item_expected=item_exp, item_n_unseen=n_unseen,
        n_context=np.array([len(it.context) for it in items]), posterior=post, q=q)
