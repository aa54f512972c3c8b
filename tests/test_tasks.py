"""Task sampling and collation: deterministic episodes, unseen bookkeeping, masks that make
pooling ignore padding (DESIGN.md §4)."""

import warnings

import numpy as np
import pytest
import torch

from pluralign.data.tasks import NotEnoughPairsError, TaskSampler, collate, gather


def _table(n_users=5, per_user=40, dim=3, seed=0):
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in range(n_users) for _ in range(per_user)]
    types = [i % 2 for i in range(n_users) for _ in range(per_user)]
    order = rng.permutation(len(users))  # pairs of one user need not be contiguous
    users, types = [users[i] for i in order], [types[i] for i in order]
    chosen = torch.randn(len(users), dim, generator=torch.Generator().manual_seed(seed))
    rejected = torch.randn(len(users), dim, generator=torch.Generator().manual_seed(seed + 1))
    return users, types, chosen, rejected


def _masked_mean(x, mask):
    """Reference set pooling: mean over real entries, zeros for an empty set. (B,C,D),(B,C)->(B,D)"""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def _masked_sum(x, mask):
    return (x * mask.unsqueeze(-1).to(x.dtype)).sum(1)


def test_items_draw_from_one_user_with_context_in_target():
    users, types, _, _ = _table()
    s = TaskSampler(users, context_range=(0, 10), n_target=20, user_types=types, seed=3)
    items = s.sample(200, step=0)
    sizes = set()
    for it in items:
        sizes.add(it.n_context)
        assert len(it.target) == 20 and len(set(it.target.tolist())) == 20
        assert {users[i] for i in it.target} == {it.user} and {users[i] for i in it.context} <= {it.user}
        assert all(types[i] == it.user_type for i in it.target)
        assert set(it.context.tolist()) <= set(it.target.tolist())  # training convention
        in_context = np.isin(it.target, it.context)
        np.testing.assert_array_equal(it.unseen, ~in_context)  # unseen = target \ context
        assert it.unseen.sum() == 20 - it.n_context
    assert sizes == set(range(0, 11))  # N^C drawn per item over [0, 10], 0 included


def test_disjoint_mode_is_really_disjoint():
    users, _, _, _ = _table()
    s = TaskSampler(users, context_range=(0, 10), n_target=20, context_in_target=False, seed=1)
    for it in s.sample(300, step=5):
        assert not set(it.context.tolist()) & set(it.target.tolist())
        assert len(set(it.context.tolist())) == it.n_context
        assert it.unseen.all()
        assert {users[i] for i in np.concatenate([it.context, it.target])} == {it.user}


def _same(a, b):
    return all(x.user == y.user and np.array_equal(x.context, y.context) and np.array_equal(x.target, y.target)
               for x, y in zip(a, b))


def test_same_seed_same_tasks_different_seed_different():
    users, _, _, _ = _table()
    a = TaskSampler(users, seed=7).sample(64, step=11)
    b = TaskSampler(users, seed=7).sample(64, step=11)  # a fresh sampler: exact resume
    c = TaskSampler(users, seed=8).sample(64, step=11)
    assert _same(a, b)
    assert not _same(a, c)
    s = TaskSampler(users, seed=7)
    assert not _same(s.sample(64, step=11), s.sample(64, step=12))  # per-step (per-epoch) reseeding
    assert not _same(s.sample(64, step=11, stream=0), s.sample(64, step=11, stream=1))  # per-process
    s.sample(64, step=3)  # sampling other steps first changes nothing
    assert _same(s.sample(64, step=11), a)


def test_fixed_context_size():
    users, _, _, _ = _table()
    items = TaskSampler(users, seed=0).sample(50, n_context=4)
    assert {it.n_context for it in items} == {4}


def test_users_with_too_few_pairs_skipped_with_counted_warning():
    users = ["a"] * 30 + ["b"] * 5 + ["c"] * 19 + ["d"] * 20
    with pytest.warns(UserWarning, match=r"skipped 2 of 4 users with fewer than 20 pairs"):
        s = TaskSampler(users, context_range=(0, 10), n_target=20)
    assert s.skipped == 2 and s.users == ["a", "d"]
    assert {it.user for it in s.sample(100)} == {"a", "d"}
    with pytest.warns(UserWarning, match=r"skipped 3 of 4"):  # disjoint needs max N^C + N^T = 30
        s = TaskSampler(users, context_range=(0, 10), n_target=20, context_in_target=False)
    assert s.users == ["a"]


def test_no_user_qualifies_is_a_clear_error():
    with pytest.raises(NotEnoughPairsError, match="no user has the 20 pairs"):
        TaskSampler(["a"] * 5 + ["b"] * 19, n_target=20)
    with pytest.raises(ValueError):
        TaskSampler(["a"] * 50, context_range=(5, 2))
    with pytest.raises(ValueError):
        TaskSampler(["a"] * 50, context_range=(0, 30), n_target=20)


def test_collate_shapes_padding_and_bookkeeping():
    users, types, chosen, rejected = _table()
    s = TaskSampler(users, context_range=(0, 10), n_target=20, user_types=types, seed=2)
    items = s.sample(32, step=0)
    batch = collate(items, chosen, rejected)
    cmax = max(it.n_context for it in items)
    assert batch.context_chosen.shape == (32, cmax, 3) and batch.target_chosen.shape == (32, 20, 3)
    assert batch.context_mask.dtype == torch.bool and batch.target_unseen.dtype == torch.bool
    assert torch.equal(batch.n_context, torch.tensor([it.n_context for it in items]))
    for b, it in enumerate(items):
        n = it.n_context
        assert torch.equal(batch.context_index[b, :n], torch.as_tensor(it.context))
        assert (batch.context_index[b, n:] == -1).all() and not batch.context_mask[b, n:].any()
        assert torch.equal(batch.context_chosen[b, :n], chosen[it.context])
        assert torch.equal(batch.context_rejected[b, :n], rejected[it.context])
        assert (batch.context_chosen[b, n:] == 0).all()  # padding is zeros, not another pair
        assert torch.equal(batch.target_chosen[b], chosen[it.target])
        assert torch.equal(batch.target_unseen[b], torch.as_tensor(it.unseen))
        # unseen targets are exactly the target pairs whose index is not in the context
        ctx = set(it.context.tolist())
        assert batch.target_unseen[b].tolist() == [int(i) not in ctx for i in batch.target_index[b]]
    assert torch.equal(batch.user_type, torch.tensor([it.user_type for it in items]))
    moved = batch.to("cpu")
    assert torch.equal(moved.context_mask, batch.context_mask)


def test_gather_pads_with_zeros():
    table = torch.arange(12.0).reshape(4, 3) + 1
    out = gather(table, torch.tensor([[2, -1], [-1, -1]]))
    assert torch.equal(out[0, 0], table[2]) and (out[0, 1] == 0).all() and (out[1] == 0).all()


@pytest.mark.parametrize("pool", [_masked_mean, _masked_sum])
def test_masks_make_pooling_ignore_padding(pool):
    users, _, chosen, rejected = _table(dim=4)
    items = TaskSampler(users, context_range=(0, 10), n_target=20, seed=5).sample(40)
    batch = collate(items, chosen, rejected)
    pairs = torch.cat([batch.context_chosen, batch.context_rejected], dim=-1)  # (B, C, 2D)
    pooled = pool(pairs, batch.context_mask)
    # 1. each item pooled alone, unpadded, gives the same vector
    for b, it in enumerate(items):
        alone = torch.cat([chosen[it.context], rejected[it.context]], dim=-1).unsqueeze(0)
        ref = pool(alone, torch.ones(1, it.n_context, dtype=torch.bool))
        torch.testing.assert_close(pooled[b], ref[0])
    # 2. garbage in padded slots changes nothing
    garbage = torch.where(batch.context_mask.unsqueeze(-1), pairs, torch.full_like(pairs, 1e6))
    torch.testing.assert_close(pool(garbage, batch.context_mask), pooled)
    # 3. permuting the real context entries changes nothing
    perm = pairs.clone()
    for b, it in enumerate(items):
        p = torch.randperm(it.n_context, generator=torch.Generator().manual_seed(b))
        perm[b, : it.n_context] = pairs[b, p]
    torch.testing.assert_close(pool(perm, batch.context_mask), pooled)
    # 4. extra padding columns change nothing; an empty context pools to zeros
    wider = torch.cat([pairs, torch.randn(len(items), 3, pairs.shape[-1])], dim=1)
    wider_mask = torch.cat([batch.context_mask, torch.zeros(len(items), 3, dtype=torch.bool)], dim=1)
    torch.testing.assert_close(pool(wider, wider_mask), pooled)
    empty = [b for b, it in enumerate(items) if it.n_context == 0]
    assert empty and (pooled[empty] == 0).all()


def test_all_empty_contexts_collate():
    users, _, chosen, rejected = _table()
    items = TaskSampler(users, seed=0).sample(4, n_context=0)
    batch = collate(items, chosen, rejected)
    assert batch.context_chosen.shape == (4, 0, 3) and batch.context_mask.shape == (4, 0)
    assert batch.target_unseen.all()


def test_sampler_warning_free_when_all_qualify():
    users, _, _, _ = _table()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskSampler(users)


def test_shared_context_size_per_batch_and_context_size_limits():
    users, _, _, _ = _table()
    s = TaskSampler(users, context_range=(0, 10), n_target=20, shared_context_size=True, seed=0)
    sizes = [{it.n_context for it in s.sample(16, step=k)} for k in range(30)]
    assert all(len(x) == 1 for x in sizes) and len(set().union(*sizes)) > 3
    with pytest.raises(ValueError, match="n_context=21"):
        s.sample(2, n_context=21)
    d = TaskSampler(users, context_range=(0, 10), n_target=20, context_in_target=False)
    with pytest.raises(ValueError, match="n_context=11"):
        d.sample(2, n_context=11)


def test_stratified_draw_puts_every_type_in_every_batch():
    users, types = [], []
    for u in range(9):  # 3 users of type 0, 6 of type 1: uniform draws would favour type 1
        users += [f"u{u}"] * 30
        types += [int(u >= 3)] * 30
    s = TaskSampler(users, context_range=(0, 4), n_target=10, user_types=types, seed=0,
                    stratify_types=True)
    seen = set()
    for step in range(50):
        items = s.sample(2, step=step)
        assert sorted(it.user_type for it in items) == [0, 1]
        seen.update(it.user for it in items)
    assert seen == {f"u{u}" for u in range(9)}  # uniform within a type reaches every user
    again = TaskSampler(users, context_range=(0, 4), n_target=10, user_types=types, seed=0,
                        stratify_types=True).sample(2, step=7)
    assert [it.user for it in again] == [it.user for it in s.sample(2, step=7)]
    with pytest.raises(ValueError, match="user type"):
        TaskSampler(users, n_target=10, stratify_types=True)
