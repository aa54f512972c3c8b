"""Neural-process episodes: per-user context/target sets, sampled deterministically, collated
to padded tensors with masks.

NP paper §3 / App. C.1: a task is one user's context set D^C (N^C pairs, N^C ~ U[min, max],
0 allowed) and target set D^T (N^T pairs). In training the context is a subset of the target
(``context_in_target=True``, the paper's convention); evaluation draws them disjoint. Each item
records which of its target pairs are *unseen* (not in its context) so evaluation scores only
those (the published code scored the wrong pairs; DESIGN.md §4).

Every item carries its own N^C; nothing in a batch has to share a context size. Sampling for
``step`` uses a generator seeded by ``(seed, stream, step)``, so any batch can be recreated
without replaying earlier ones (exact resume) and parallel workers use distinct ``stream``s.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch


@dataclass(frozen=True)
class TaskItem:
    """One episode: indices into the pair table the sampler was built on."""

    user: str
    user_type: int  # ground-truth type, -1 when unknown
    context: np.ndarray  # (N^C,) pair indices
    target: np.ndarray  # (N^T,) pair indices
    unseen: np.ndarray  # (N^T,) bool: target pair not in the context

    @property
    def n_context(self) -> int:
        return len(self.context)


@dataclass
class TaskBatch:
    """Padded tensors for a batch of B tasks; option vectors have D features.

    ``*_chosen`` is always the option the user preferred. Masks are True on real entries.
    """

    context_chosen: torch.Tensor  # (B, C, D)
    context_rejected: torch.Tensor  # (B, C, D)
    context_mask: torch.Tensor  # (B, C) bool
    target_chosen: torch.Tensor  # (B, T, D)
    target_rejected: torch.Tensor  # (B, T, D)
    target_mask: torch.Tensor  # (B, T) bool
    target_unseen: torch.Tensor  # (B, T) bool, True only where target_mask is
    context_index: torch.Tensor  # (B, C) long, -1 on padding
    target_index: torch.Tensor  # (B, T) long, -1 on padding
    user_type: torch.Tensor  # (B,) long, -1 unknown

    @property
    def n_context(self) -> torch.Tensor:
        return self.context_mask.sum(dim=1)

    def to(self, device: torch.device | str) -> "TaskBatch":
        return TaskBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class NotEnoughPairsError(ValueError):
    pass


class SkippedUsersWarning(UserWarning):
    """Users with fewer pairs than a task needs were left out (callers that name them, with
    their file and lines, filter this one)."""


class TaskSampler:
    """Samples tasks from the pairs of one split.

    Args:
        user_ids: the user of every pair in the table (index = pair index).
        context_range: (min, max) N^C, inclusive; N^C is drawn per task.
        n_target: N^T.
        context_in_target: training convention (context ⊂ target); False draws disjoint sets.
        user_types: ground-truth type of every pair's user (or None).
        seed: base seed of this sampler's random streams.
        shared_context_size: draw one N^C per ``sample`` call for the whole batch (the NP
            paper's code) instead of one per item.
        stratify_types: draw users type by type in turn (from a random first type, uniformly
            within a type), so a batch of at least as many tasks as there are types holds every
            type; the papers draw users uniformly (False). Needs ``user_types``.
    """

    def __init__(self, user_ids: Sequence[str], *, context_range: tuple[int, int] = (0, 10),
                 n_target: int = 20, context_in_target: bool = True,
                 user_types: Sequence[int] | None = None, seed: int = 0,
                 shared_context_size: bool = False, stratify_types: bool = False):
        lo, hi = context_range
        if not 0 <= lo <= hi:
            raise ValueError(f"context_range must satisfy 0 <= min <= max, got {context_range}")
        if n_target < 1:
            raise ValueError(f"n_target must be >= 1, got {n_target}")
        if context_in_target and hi > n_target:
            raise ValueError(f"with context_in_target the context ({hi}) cannot exceed n_target ({n_target})")
        self.context_range, self.n_target = (lo, hi), n_target
        self.context_in_target, self.seed = context_in_target, seed
        self.shared_context_size = shared_context_size
        need = n_target if context_in_target else hi + n_target
        users = np.asarray([str(u) for u in user_ids])
        order = np.argsort(users, kind="stable")
        names, starts = np.unique(users[order], return_index=True)
        pools = np.split(order, starts[1:]) if len(users) else []
        types = None if user_types is None else np.asarray(user_types, dtype=np.int64)
        self.users: list[str] = []
        self.pools: list[np.ndarray] = []
        self.types: list[int] = []
        skipped = 0
        for name, pool in zip(names, pools):
            if len(pool) < need:
                skipped += 1
                continue
            self.users.append(str(name))
            self.pools.append(pool)
            self.types.append(-1 if types is None else int(types[pool[0]]))
        if not self.users:
            raise NotEnoughPairsError(
                f"no user has the {need} pairs a task needs (N^T={n_target}, max N^C={hi}, "
                f"context_in_target={context_in_target}); {skipped} user(s) have fewer")
        if skipped:
            warnings.warn(f"skipped {skipped} of {skipped + len(self.users)} users with fewer than "
                          f"{need} pairs", SkippedUsersWarning, stacklevel=2)
        self.skipped = skipped
        # the pools as one flat array + offsets, for the vectorized sampler
        self._pool_len = np.asarray([len(p) for p in self.pools], dtype=np.int64)
        self._pool_start = np.concatenate([[0], np.cumsum(self._pool_len)[:-1]]).astype(np.int64)
        self._pool_flat = np.concatenate(self.pools).astype(np.int64)
        self.stratify_types = stratify_types
        if stratify_types:
            if any(t < 0 for t in self.types):
                raise ValueError("stratify_types needs the user type of every user (user_types)")
            kinds = np.asarray(self.types)
            self.type_pools = [np.flatnonzero(kinds == t) for t in sorted(set(self.types))]

    def rng(self, step: int, stream: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, step])

    def sample(self, n_tasks: int, step: int = 0, stream: int = 0,
               n_context: int | None = None) -> list[TaskItem]:
        """``n_tasks`` items for ``step``; users are drawn uniformly with replacement (or
        type by type in turn with ``stratify_types``).

        ``n_context`` fixes N^C for every item (evaluation at one context size).
        """
        rng = self.rng(step, stream)
        lo, hi = self._context_bounds(n_context)
        if self.shared_context_size and n_context is None:
            lo = hi = int(rng.integers(lo, hi + 1))
        items = []
        for u in self._draw_users(rng, n_tasks):
            pool = self.pools[u]
            n_c = int(rng.integers(lo, hi + 1))
            if self.context_in_target:
                target = pool[rng.choice(len(pool), size=self.n_target, replace=False)]
                context = target[:n_c]
                unseen = np.arange(self.n_target) >= n_c
            else:
                drawn = pool[rng.choice(len(pool), size=n_c + self.n_target, replace=False)]
                context, target = drawn[:n_c], drawn[n_c:]
                unseen = np.ones(self.n_target, dtype=bool)
            items.append(TaskItem(self.users[u], self.types[u], context, target, unseen))
        return items

    def sample_arrays(self, n_tasks: int, step: int = 0, stream: int = 0,
                      n_context: int | None = None) -> "TaskArrays":
        """The vectorized sampler: the same kind of tasks as :meth:`sample` (users uniform or
        stratified, N^C per task, distinct pairs, context ⊂ target or disjoint) drawn with a
        few batched RNG calls instead of several per task, as index arrays ready for
        :func:`collate_arrays`. Deterministic in ``(seed, stream, step)``; the draws differ from
        :meth:`sample`'s (another stream of the same distribution)."""
        rng = np.random.default_rng([self.seed, stream, step, 1])
        lo, hi = self._context_bounds(n_context)
        if self.shared_context_size and n_context is None:
            lo = hi = int(rng.integers(lo, hi + 1))
        users = self._draw_users(rng, n_tasks, vectorized=True)
        n_c = rng.integers(lo, hi + 1, size=n_tasks)
        t = self.n_target
        k = t if self.context_in_target else hi + t
        drawn = self._pool_flat[self._pool_start[users, None] + _distinct(rng, self._pool_len[users], k)]
        cols = np.arange(hi)
        width = int(n_c.max(initial=0))
        if self.context_in_target:
            target, context_full = drawn, drawn[:, :width]
            unseen = np.arange(t)[None, :] >= n_c[:, None]
        else:  # targets first, then up to hi context pairs, of which the first N^C are kept
            target, context_full = drawn[:, :t], drawn[:, t: t + width]
            unseen = np.ones((n_tasks, t), dtype=bool)
        context = np.where(cols[None, :width] < n_c[:, None], context_full, -1)
        types = np.asarray(self.types, dtype=np.int64)[users]
        return TaskArrays(users, types, context, target, unseen, [self.users[u] for u in users])

    def _context_bounds(self, n_context: int | None) -> tuple[int, int]:
        if n_context is not None:
            limit = self.n_target if self.context_in_target else self.context_range[1]
            if not 0 <= n_context <= limit:
                raise ValueError(f"n_context={n_context} outside [0, {limit}] for this sampler "
                                 f"(n_target={self.n_target}, context_range={self.context_range}, "
                                 f"context_in_target={self.context_in_target})")
            return n_context, n_context
        return self.context_range

    def _draw_users(self, rng: np.random.Generator, n_tasks: int, vectorized: bool = False) -> np.ndarray:
        if not self.stratify_types:
            return rng.integers(len(self.users), size=n_tasks)
        first = int(rng.integers(len(self.type_pools)))
        if vectorized:
            kinds = (first + np.arange(n_tasks)) % len(self.type_pools)
            sizes = np.asarray([len(p) for p in self.type_pools])[kinds]
            flat = np.concatenate(self.type_pools)
            starts = np.concatenate([[0], np.cumsum([len(p) for p in self.type_pools])[:-1]])
            return flat[starts[kinds] + (rng.random(n_tasks) * sizes).astype(np.int64)]
        pools = [self.type_pools[(first + i) % len(self.type_pools)] for i in range(n_tasks)]
        return np.asarray([pool[rng.integers(len(pool))] for pool in pools], dtype=np.int64)


def _distinct(rng: np.random.Generator, sizes: np.ndarray, k: int) -> np.ndarray:
    """(B, k) positions, row b a uniform draw of k distinct values from range(sizes[b]).

    Large pools: k uniform integers per row, rows with a repeat drawn again (exact: a draw
    conditioned on having no repeat is uniform over distinct k-tuples; few rows repeat when
    size >= k²/2). Small pools: the k smallest of size uniform keys, in key order.
    """
    out = np.empty((len(sizes), k), dtype=np.int64)
    large = sizes >= max(1, k * k // 2)
    rows = np.flatnonzero(large)
    while len(rows):
        pos = (rng.random((len(rows), k)) * sizes[rows, None]).astype(np.int64)
        srt = np.sort(pos, axis=1)
        ok = (srt[:, 1:] != srt[:, :-1]).all(axis=1)
        out[rows[ok]] = pos[ok]
        rows = rows[~ok]
    small = np.flatnonzero(~large)
    if len(small):
        width = int(sizes[small].max())
        keys = rng.random((len(small), width))
        keys[np.arange(width)[None, :] >= sizes[small, None]] = 2.0  # never among the k smallest
        first = np.argpartition(keys, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(keys, first, axis=1), axis=1)
        out[small] = np.take_along_axis(first, order, axis=1)
    return out


@dataclass
class TaskArrays:
    """A batch of tasks as index arrays (from :meth:`TaskSampler.sample_arrays`)."""

    users: np.ndarray  # (B,) index into the sampler's users
    user_type: np.ndarray  # (B,)
    context: np.ndarray  # (B, C) pair indices, -1 on padding
    target: np.ndarray  # (B, T)
    unseen: np.ndarray  # (B, T) bool
    user_names: list[str]

    def items(self) -> list[TaskItem]:
        """The same tasks as :class:`TaskItem` objects."""
        return [TaskItem(name, int(t), ctx[ctx >= 0], tgt, uns) for name, t, ctx, tgt, uns
                in zip(self.user_names, self.user_type, self.context, self.target, self.unseen)]


def collate_arrays(tasks: TaskArrays, chosen: torch.Tensor, rejected: torch.Tensor) -> TaskBatch:
    """:func:`collate` for :class:`TaskArrays`: one gather per tensor, no per-task loop."""
    context_index = torch.from_numpy(tasks.context)
    target_index = torch.from_numpy(np.ascontiguousarray(tasks.target))
    return TaskBatch(
        context_chosen=gather(chosen, context_index), context_rejected=gather(rejected, context_index),
        context_mask=context_index >= 0,
        target_chosen=gather(chosen, target_index), target_rejected=gather(rejected, target_index),
        target_mask=torch.ones(target_index.shape, dtype=torch.bool),
        target_unseen=torch.from_numpy(tasks.unseen),
        context_index=context_index, target_index=target_index,
        user_type=torch.from_numpy(tasks.user_type))


def _pad(index_lists: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max((len(ix) for ix in index_lists), default=0)
    index = torch.full((len(index_lists), width), -1, dtype=torch.long)
    for row, ix in enumerate(index_lists):
        index[row, : len(ix)] = torch.as_tensor(ix, dtype=torch.long)
    return index, index >= 0


def gather(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` with zeros where ``index`` is -1 (padding). (B, K) -> (B, K, D)."""
    index = index.to(table.device)
    pad = index < 0
    out = table.index_select(0, index.clamp(min=0).reshape(-1)).view(*index.shape, *table.shape[1:])
    if bool(pad.any()):  # (no second pass over the rows when nothing is padded)
        out[pad] = 0
    return out


def collate(items: Sequence[TaskItem], chosen: torch.Tensor, rejected: torch.Tensor) -> TaskBatch:
    """Pad ``items`` into a :class:`TaskBatch` using the option vectors of every pair.

    ``chosen``/``rejected``: (P, D) tensors, row i = pair i of the sampler's table.
    """
    context_index, context_mask = _pad([it.context for it in items])
    target_index, target_mask = _pad([it.target for it in items])
    unseen = torch.zeros_like(target_mask)
    for row, it in enumerate(items):
        unseen[row, : len(it.unseen)] = torch.as_tensor(it.unseen)
    return TaskBatch(
        context_chosen=gather(chosen, context_index), context_rejected=gather(rejected, context_index),
        context_mask=context_mask,
        target_chosen=gather(chosen, target_index), target_rejected=gather(rejected, target_index),
        target_mask=target_mask, target_unseen=unseen & target_mask,
        context_index=context_index, target_index=target_index,
        user_type=torch.tensor([it.user_type for it in items], dtype=torch.long),
    )
