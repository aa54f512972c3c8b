"""Synthetic preference data from simulated users (NP paper §4.1/§4.3, App. C-D; VPL App. D.1).

The NP paper's scheme: draw pairs of options once, let **every user type label every pair**,
split by pair (20k pairs -> 10k/5k/5k). A task then picks a user uniformly, which is
z ~ Bernoulli(0.5) for two types. Each record carries the true type in ``user_latent`` and the
shared ``pair_id``; choices are deterministic 1{r(a) > r(b)} (ties dropped) unless the users are
Bradley–Terry annotators or label noise is asked for.

Every generator returns ``(records, info)``; ``info`` is a JSON-able dict with the parameters,
the user types, the realised conflict rate and counts of dropped ties and flipped labels.
``GENERATORS`` maps a name to a generator for the CLI.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from .records import PreferenceRecord
from .splits import split_records
from .users import (SimulatedUser, attribute_users, compare_all, conflicting, example41_users,
                    gaussian_bump_users, sample_simplex_users)

PAPER_FRACTIONS = (0.5, 0.25, 0.25)  # 10k / 5k / 5k of 20k pairs


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------

def select_conflict_rate(conflict: np.ndarray, rate: float, n: int | None = None,
                         rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices of a subset of candidate pairs whose fraction of conflicting pairs is ``rate``.

    ``conflict``: (P,) bool. With ``n`` the subset has exactly ``n`` pairs (ValueError if the
    candidates cannot supply them); without, the largest subset with that fraction. The
    indices come back in a random order.
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"conflict rate must lie in [0, 1], got {rate}")
    rng = rng or np.random.default_rng(0)
    conf, agree = np.flatnonzero(conflict), np.flatnonzero(~conflict)
    if n is None:
        caps = [len(conf) / rate if rate > 0 else math.inf, len(agree) / (1 - rate) if rate < 1 else math.inf]
        n = int(math.floor(min(caps) + 1e-9))
    n_conf = int(round(rate * n))
    n_agree = n - n_conf
    if n_conf > len(conf) or n_agree > len(agree):
        raise ValueError(f"cannot reach conflict rate {rate} with {n} pairs: the candidates hold "
                         f"{len(conf)} conflicting and {len(agree)} agreeing pairs")
    picked = np.concatenate([rng.choice(conf, n_conf, replace=False), rng.choice(agree, n_agree, replace=False)])
    return picked[rng.permutation(len(picked))]


def _draw_pairs(draw: Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]],
                referees: Sequence[SimulatedUser], n_pairs: int, conflict_rate: float | None,
                rng: np.random.Generator, max_rounds: int = 200) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw ``n_pairs`` pairs with no ties among the ``referees`` (the finite user types whose
    agreement defines a conflict), optionally at a target conflict rate.

    ``draw(rng, m)`` returns m candidate pairs as two (m, D) arrays. Returns (left, right, ties).
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    need_conf = None if conflict_rate is None else int(round(conflict_rate * n_pairs))
    if conflict_rate is not None and not 0.0 <= conflict_rate <= 1.0:
        raise ValueError(f"conflict rate must lie in [0, 1], got {conflict_rate}")
    lefts, rights, confs, ties = [], [], [], 0
    have_conf = have_agree = 0
    for _ in range(max_rounds):
        a, b = draw(rng, max(n_pairs, 64))
        ch = compare_all(referees, a, b)
        keep = ~(ch == 0).any(axis=0)
        ties += int((~keep).sum())
        a, b, conf = a[keep], b[keep], conflicting(ch[:, keep])
        if need_conf is not None:  # take only what the quotas still need
            take_c = np.flatnonzero(conf)[: max(need_conf - have_conf, 0)]
            take_a = np.flatnonzero(~conf)[: max(n_pairs - need_conf - have_agree, 0)]
            idx = np.sort(np.concatenate([take_c, take_a]))
            a, b, conf = a[idx], b[idx], conf[idx]
        lefts.append(a), rights.append(b), confs.append(conf)
        have_conf += int(conf.sum())
        have_agree += int((~conf).sum())
        if have_conf + have_agree >= n_pairs:
            break
    else:
        raise ValueError(f"could not draw {n_pairs} pairs at conflict rate {conflict_rate} in "
                         f"{max_rounds} rounds ({have_conf} conflicting, {have_agree} agreeing found); "
                         "the users may (almost) never disagree, or always do, on these options")
    left, right, conf = np.concatenate(lefts), np.concatenate(rights), np.concatenate(confs)
    order = rng.permutation(len(left))[:n_pairs] if need_conf is None else rng.permutation(len(left))
    return left[order], right[order], ties


def _user_id(user: SimulatedUser, i: int) -> str:
    return f"z{user.latent}" if isinstance(user.latent, int) else f"u{i:05d}"


def label_pairs(left: Sequence[Any], right: Sequence[Any], users: Sequence[SimulatedUser], *,
                scores_left: np.ndarray | None = None, scores_right: np.ndarray | None = None,
                assignments: Sequence[np.ndarray] | None = None, attribute_names: Sequence[str] | None = None,
                prompts: Sequence[Any] | None = None, pair_ids: Sequence[str] | None = None,
                user_ids: Sequence[str] | None = None,
                rng: np.random.Generator | None = None) -> tuple[list[PreferenceRecord], int]:
    """One record per (user, pair) the user labels; ties are dropped.

    Args:
        left, right: the P options of each pair: (P, D) numbers, or lists of text/messages.
        users: the simulated users; they score ``scores_*`` ((P, K)), or the options themselves.
        assignments: pair indices each user labels (default: every user labels every pair).
        attribute_names: K names: records get ``attributes = {name: [chosen, rejected]}``.
        prompts, pair_ids, user_ids: per pair / per user (defaults: "", "p000000", "z{type}").
        rng: draws Bradley–Terry choices of stochastic users.
    Returns:
        (records, number of dropped ties).
    """
    n = len(left)
    sl = np.asarray(left if scores_left is None else scores_left, dtype=np.float64)
    sr = np.asarray(right if scores_right is None else scores_right, dtype=np.float64)
    if len(right) != n or len(sl) != n or len(sr) != n:
        raise ValueError("left, right and their scores must have one row per pair")
    numeric = isinstance(left, np.ndarray) and left.dtype.kind in "fiu"
    opt = (lambda arr, i: [float(v) for v in np.atleast_1d(arr[i])]) if numeric else (lambda arr, i: arr[i])
    pair_ids = pair_ids if pair_ids is not None else [f"p{i:06d}" for i in range(n)]
    user_ids = user_ids if user_ids is not None else [_user_id(u, i) for i, u in enumerate(users)]
    rng = rng or np.random.default_rng(0)
    records, ties = [], 0
    sl2, sr2 = sl.reshape(n, -1), sr.reshape(n, -1)
    for ui, user in enumerate(users):
        idx = np.arange(n) if assignments is None else np.asarray(assignments[ui], dtype=np.int64)
        choice = user.compare(sl2[idx], sr2[idx], rng)
        ties += int((choice == 0).sum())
        for i, c in zip(idx.tolist(), choice.tolist()):
            if c == 0:
                continue
            w, l = (left, right) if c > 0 else (right, left)
            sw, sc = (sl2, sr2) if c > 0 else (sr2, sl2)
            attrs = None if attribute_names is None else {
                name: [float(sw[i, k]), float(sc[i, k])] for k, name in enumerate(attribute_names)}
            records.append(PreferenceRecord(
                user_id=user_ids[ui], prompt="" if prompts is None else prompts[i],
                chosen=opt(w, i), rejected=opt(l, i), attributes=attrs,
                user_latent=user.latent, pair_id=pair_ids[i]))
    return records, ties


def flip_labels(records: Sequence[PreferenceRecord], fraction: float,
                rng: np.random.Generator) -> tuple[list[PreferenceRecord], int]:
    """Swap chosen/rejected in a random ``fraction`` of records (label noise); flipped records
    get ``meta["flipped"] = True`` so the truth stays recoverable."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"noise must lie in [0, 1], got {fraction}")
    out = list(records)
    k = int(round(fraction * len(out)))
    for i in rng.choice(len(out), size=k, replace=False).tolist():
        r = out[i]
        attrs = None if r.attributes is None else {n: [s[1], s[0]] for n, s in r.attributes.items()}
        out[i] = r.replace(chosen=r.rejected, rejected=r.chosen, attributes=attrs,
                           meta={**r.meta, "flipped": True})
    return out, k


def _finish(records: list[PreferenceRecord], info: dict, *, noise: float, split: Sequence[float] | None,
            seed: int, rng: np.random.Generator) -> tuple[list[PreferenceRecord], dict]:
    records, flipped = flip_labels(records, noise, rng) if noise else (records, 0)
    if split is not None:
        records = split_records(records, tuple(split), seed=seed, group_by="pair")
    info.update(n_records=len(records), flipped=flipped, noise=noise,
                split=None if split is None else list(split))
    return records, info


def _common_info(name: str, users: Sequence[SimulatedUser], conf: np.ndarray, **params: Any) -> dict:
    return {"generator": name, "params": params, "user_types": [repr(u) for u in users],
            "n_pairs": int(len(conf)), "conflict_rate": float(conf.mean()) if len(conf) else float("nan")}


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------

def example41(n_pairs: int = 20000, low: float = 0.0, high: float = 1.0, seed: int = 0,
              noise: float = 0.0, conflict_rate: float | None = None,
              split: Sequence[float] | None = PAPER_FRACTIONS) -> tuple[list[PreferenceRecord], dict]:
    """NP paper Example 4.1: scalar options ~ U[low, high], two piecewise user types.

    App. C.1 / eq. 9-10: r = y for y <= 0.5; for y > 0.5, r = 2y (z = 0) or 1 - y (z = 1).
    [0, 1] is the default: only there half the pairs conflict and BTL scores the reported ~75%
    (App. C.1's [-1, 1] gives a conflict rate of 1/8; DESIGN.md §3).
    """
    if not high > low:
        raise ValueError(f"need high > low, got [{low}, {high}]")
    rng = np.random.default_rng(seed)
    users = example41_users()
    draw = lambda r, m: (r.uniform(low, high, (m, 1)), r.uniform(low, high, (m, 1)))  # noqa: E731
    left, right, ties = _draw_pairs(draw, users, n_pairs, conflict_rate, rng)
    conf = conflicting(compare_all(users, left, right))
    records, _ = label_pairs(left, right, users, rng=rng)
    info = _common_info("example41", users, conf, n_pairs=n_pairs, low=low, high=high, seed=seed,
                        conflict_rate=conflict_rate)
    info["ties_dropped"] = ties
    return _finish(records, info, noise=noise, split=split, seed=seed, rng=rng)


def correlated_gaussian(rng: np.random.Generator, m: int, k: int, rho: float) -> np.ndarray:
    """(m, k) scores ~ N(0, Σ) with unit variances and correlation ``rho`` between every two."""
    if k > 1 and not -1.0 / (k - 1) - 1e-12 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [{-1.0 / (k - 1):.3g}, 1] for {k} attributes, got {rho}")
    cov = np.full((k, k), rho) + (1 - rho) * np.eye(k)
    vals, vecs = np.linalg.eigh(cov)  # eigh, not Cholesky: Σ is singular at rho = ±1
    root = vecs * np.sqrt(np.clip(vals, 0, None))
    return rng.standard_normal((m, k)) @ root.T


def example43(n_pairs: int = 20000, rho: float = 0.0, seed: int = 0, noise: float = 0.0,
              conflict_rate: float | None = None,
              split: Sequence[float] | None = PAPER_FRACTIONS) -> tuple[list[PreferenceRecord], dict]:
    """NP paper Example 4.3: 2-D Gaussian options with correlation rho; z prefers the larger h_z.

    App. C.3.1: y = [h0, h1] ~ N(0, [[1, rho], [rho, 1]]). Expected conflict rate
    1/2 - arcsin(rho)/pi."""
    rng = np.random.default_rng(seed)
    users = attribute_users(2, ["h0", "h1"])
    draw = lambda r, m: (correlated_gaussian(r, m, 2, rho), correlated_gaussian(r, m, 2, rho))  # noqa: E731
    left, right, ties = _draw_pairs(draw, users, n_pairs, conflict_rate, rng)
    conf = conflicting(compare_all(users, left, right))
    records, _ = label_pairs(left, right, users, rng=rng)
    info = _common_info("example43", users, conf, n_pairs=n_pairs, rho=rho, seed=seed,
                        conflict_rate=conflict_rate)
    info.update(ties_dropped=ties, expected_conflict_rate=0.5 - math.asin(rho) / math.pi)
    return _finish(records, info, noise=noise, split=split, seed=seed, rng=rng)


def _pool_pairs(n_options: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """(n_pairs, 2) indices of distinct options, without repeated pairs where possible."""
    if n_options < 2:
        raise ValueError("need at least two options to form pairs")
    a = rng.integers(n_options, size=n_pairs)
    b = (a + rng.integers(1, n_options, size=n_pairs)) % n_options
    return np.stack([a, b], axis=1)


def attribute_records(options: Any, scores: np.ndarray, users: Sequence[SimulatedUser], *,
                      pairs: np.ndarray | None = None, n_pairs: int = 20000,
                      conflict_rate: float | None = None, n_keep: int | None = None,
                      pairs_per_user: int | None = None,
                      attribute_names: Sequence[str] | None = None, prompts: Sequence[Any] | None = None,
                      seed: int = 0) -> tuple[list[PreferenceRecord], dict]:
    """Users over any option matrix with attribute scores (NP paper §4.2, App. D).

    Args:
        options: N options: (N, D) vectors, or a list of texts.
        scores: (N, K) attribute scores of the options; the users score these.
        users: K-mode :class:`AttributeUser`s, :class:`WeightedUser`s, ...
        pairs: (P, 2) option indices to compare (default: ``n_pairs`` random pairs).
        conflict_rate: keep a subset of pairs with this fraction of pairs on which the K
            one-attribute users disagree (the paper's 100% / 75% / 50% HH datasets): ``n_keep``
            pairs, or the largest such subset.
        pairs_per_user: each user labels this many random pairs (default: all pairs).
        prompts: per option (paired options share the prompt of the first one).
    Pairs with a tie for any of the K one-attribute users are dropped.
    """
    rng = np.random.default_rng(seed)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or len(scores) != len(options):
        raise ValueError(f"scores must be (N, K) with N = {len(options)} options, got {scores.shape}")
    k = scores.shape[1]
    names = list(attribute_names) if attribute_names is not None else [f"a{i}" for i in range(k)]
    pairs = _pool_pairs(len(options), n_pairs, rng) if pairs is None else np.asarray(pairs, dtype=np.int64)
    referees = attribute_users(k, names)
    ch = compare_all(referees, scores[pairs[:, 0]], scores[pairs[:, 1]])
    keep = np.flatnonzero(~(ch == 0).any(axis=0))
    ties = len(pairs) - len(keep)
    conf = conflicting(ch[:, keep])
    if conflict_rate is not None:
        sub = np.sort(select_conflict_rate(conf, conflict_rate, n=n_keep, rng=rng))
        keep, conf = keep[sub], conf[sub]
    elif n_keep is not None:
        keep, conf = keep[:n_keep], conf[:n_keep]
    pairs = pairs[keep]
    numeric = not isinstance(options, list)
    opts = np.asarray(options, dtype=np.float64) if numeric else options
    pick = (lambda col: opts[pairs[:, col]]) if numeric else (lambda col: [opts[i] for i in pairs[:, col]])
    assignments = None
    if pairs_per_user is not None:
        if pairs_per_user > len(pairs):
            raise ValueError(f"pairs_per_user={pairs_per_user} exceeds the {len(pairs)} pairs")
        assignments = [rng.choice(len(pairs), pairs_per_user, replace=False) for _ in users]
    records, user_ties = label_pairs(
        pick(0), pick(1), users, scores_left=scores[pairs[:, 0]], scores_right=scores[pairs[:, 1]],
        assignments=assignments, attribute_names=names, rng=rng,
        prompts=None if prompts is None else [prompts[i] for i in pairs[:, 0]])
    info = _common_info("attribute", referees, conf, n_users=len(users), k=k, attribute_names=names,
                        conflict_rate=conflict_rate, pairs_per_user=pairs_per_user, seed=seed)
    info.update(ties_dropped=ties + user_ties)
    return records, info


def kmode(n_pairs: int = 20000, k: int = 2, rho: float = 0.0, n_options: int | None = None,
          seed: int = 0, noise: float = 0.0, conflict_rate: float | None = None,
          split: Sequence[float] | None = PAPER_FRACTIONS) -> tuple[list[PreferenceRecord], dict]:
    """K-mode users: user type z prefers the option with the larger attribute score a_z.

    The options are K Gaussian attribute scores with pairwise correlation ``rho`` (k = 2 is
    Example 4.3, here with pairs drawn from a finite pool of ``n_options`` options, default
    2·n_pairs); records carry the scores as ``attributes``."""
    rng = np.random.default_rng(seed)
    n_options = n_options or 2 * n_pairs
    scores = correlated_gaussian(rng, n_options, k, rho)
    draw_n = 4 * n_pairs if conflict_rate is not None else n_pairs + n_pairs // 10  # room for ties / filtering
    records, info = attribute_records(scores, scores, attribute_users(k, [f"a{i}" for i in range(k)]),
                                      n_pairs=draw_n, conflict_rate=conflict_rate, n_keep=n_pairs,
                                      seed=seed + 1)
    info.update(generator="kmode", params=dict(n_pairs=n_pairs, k=k, rho=rho, n_options=n_options, seed=seed,
                                               conflict_rate=conflict_rate))
    return _finish(records, info, noise=noise, split=split, seed=seed, rng=rng)


def simplex(n_users: int = 250, pairs_per_user: int = 200, n_pairs: int = 20000, k: int = 2,
            alpha: float = 0.5, rho: float = 0.0, seed: int = 0, noise: float = 0.0,
            conflict_rate: float | None = None,
            split: Sequence[float] | None = PAPER_FRACTIONS) -> tuple[list[PreferenceRecord], dict]:
    """Continuous users on the simplex: w ~ Dirichlet(alpha·1_k), reward w·scores.

    NP paper App. D.2, over Gaussian attribute scores with correlation ``rho``; each user labels ``pairs_per_user`` of
    the ``n_pairs`` pairs. ``user_latent`` is the weight vector; the conflict rate is between
    the K one-attribute users."""
    rng = np.random.default_rng(seed)
    scores = correlated_gaussian(rng, 2 * n_pairs, k, rho)
    users = sample_simplex_users(n_users, k, alpha, rng)
    draw_n = 4 * n_pairs if conflict_rate is not None else n_pairs + n_pairs // 10  # room for ties / filtering
    records, info = attribute_records(scores, scores, users, n_pairs=draw_n, conflict_rate=conflict_rate,
                                      n_keep=n_pairs, pairs_per_user=pairs_per_user, seed=seed + 1)
    info.update(generator="simplex", params=dict(n_users=n_users, pairs_per_user=pairs_per_user,
                                                 n_pairs=n_pairs, k=k, alpha=alpha, rho=rho, seed=seed,
                                                 conflict_rate=conflict_rate))
    info["user_types"] = f"{n_users} users with weights ~ Dirichlet({alpha}·1_{k})"
    return _finish(records, info, noise=noise, split=split, seed=seed, rng=rng)


def vpl_didactic(n_pairs: int = 20000, m: int = 4, dim: int = 1, sigma: float = 0.1, beta: float = 1.0,
                 low: float = 0.0, high: float = 1.0, seed: int = 0, noise: float = 0.0,
                 split: Sequence[float] | None = PAPER_FRACTIONS) -> tuple[list[PreferenceRecord], dict]:
    """VPL's didactic mixture: M annotators with Gaussian-bump rewards, Bradley–Terry choices.

    Poddar et al. App. D.1: e^{r_i} = N(mu_i, sigma_i); options ~ U[low, high]^dim; every
    annotator labels every pair with a Bradley–Terry draw."""
    rng = np.random.default_rng(seed)
    users = gaussian_bump_users(m, dim, low, high, sigma, beta)
    left, right = rng.uniform(low, high, (n_pairs, dim)), rng.uniform(low, high, (n_pairs, dim))
    conf = conflicting(compare_all(users, left, right))  # by each annotator's most likely choice
    records, _ = label_pairs(left, right, users, rng=rng)
    info = _common_info("vpl_didactic", users, conf, n_pairs=n_pairs, m=m, dim=dim, sigma=sigma,
                        beta=beta, low=low, high=high, seed=seed)
    info["ties_dropped"] = 0
    return _finish(records, info, noise=noise, split=split, seed=seed, rng=rng)


GENERATORS: dict[str, Callable[..., tuple[list[PreferenceRecord], dict]]] = {
    "example41": example41,
    "example43": example43,
    "kmode": kmode,
    "simplex": simplex,
    "vpl-didactic": vpl_didactic,
}
