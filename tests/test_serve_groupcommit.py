"""Group commit of posted choices (serve/groupcommit.py) and the one-transaction store of a group
(store.add_choices) on a real SQLite file: requests waiting together share a transaction, each
gets its own answer, a conflict or a failure stays with its own item, and a group with a
retried idempotency key or two users stores each choice once, in order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytest.importorskip("sqlalchemy")

from pluralign.serve import auth, groupcommit, store  # noqa: E402
from pluralign.serve.db import make_engine  # noqa: E402
from pluralign.serve.groupcommit import GroupCommit  # noqa: E402
from pluralign.serve.migrate import upgrade  # noqa: E402


def test_requests_waiting_together_share_one_group_and_get_their_own_answers():
    groups: list[list[int]] = []
    gate = threading.Event()

    def many(items):
        gate.wait(5)  # the first group is slow: the rest queue up meanwhile
        groups.append(list(items))
        return [ValueError(f"bad {i}") if i == 7 else i * 10 for i in items]

    async def main():
        gc = GroupCommit(many, lambda i: i * 10)
        first = asyncio.ensure_future(gc.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(gc.submit(i)) for i in range(1, 10)]
        await asyncio.sleep(0.05)
        gate.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    out = asyncio.run(main())
    assert out[:7] == [0, 10, 20, 30, 40, 50, 60] and out[8:] == [80, 90]
    assert isinstance(out[7], ValueError) and str(out[7]) == "bad 7"
    assert groups == [[0], list(range(1, 10))]


def test_a_failing_group_is_stored_one_by_one():
    def many(items):
        raise RuntimeError("the group failed")

    def one(i):
        if i == 2:
            raise KeyError(i)
        return -i

    async def main():
        gc = GroupCommit(many, one)
        return await asyncio.gather(*(gc.submit(i) for i in range(4)), return_exceptions=True)

    out = asyncio.run(main())
    assert out[0] == 0 and out[1] == -1 and out[3] == -3 and isinstance(out[2], KeyError)


def test_an_idle_writer_thread_ends_and_a_new_one_starts(monkeypatch):
    monkeypatch.setattr(groupcommit, "IDLE_EXIT_S", 0.05)
    gc = GroupCommit(lambda items: list(items), lambda i: i)
    assert asyncio.run(gc.submit(1)) == 1
    deadline = time.monotonic() + 5
    while gc._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gc._thread is None
    assert asyncio.run(gc.submit(2)) == 2


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'g.sqlite'}")
    upgrade(engine)
    auth.create_key(engine, "t")
    yield engine
    engine.dispose()


def test_one_transaction_stores_a_group_in_order_and_each_key_once(engine):
    new = store.NewChoice
    items = [new(1, "ann", "p", "a", "b", "k1"), new(1, "bob", "p", "c", "d", "k1"),
             new(1, "ann", "p", "e", "f", None), new(1, "ann", "p", "a", "b", "k1"),  # a retry in the group
             new(1, "ann", "p", "x", "y", "k1")]  # the same key, another body
    out = store.add_choices(engine, items)
    (c0, u0, r0), (c1, _, r1), (c2, u2, r2), (c3, u3, r3) = out[:4]
    assert (c0.seq, c2.seq, c1.seq) == (0, 1, 0) and not (r0 or r1 or r2)
    assert r3 and c3.seq == 0 and (c3.chosen, c3.rejected) == ("a", "b")
    assert (u2.n_choices, u2.revision) == (2, 2) and (u3.n_choices, u3.revision) == (2, 2)
    assert isinstance(out[4], store.Conflict) and "k1" in str(out[4])
    ann = store.get_user(engine, 1, "ann")
    assert (ann.n_choices, ann.revision) == (2, 2)
    assert store.choice_texts(engine, ann) == [("p", "a", "b"), ("p", "e", "f")]
    # a retry after the commit is a replay too, and counts nothing
    again, user, replayed = store.add_choice(engine, 1, "ann", "p", "a", "b", "k1")
    assert replayed and again.seq == 0 and user.n_choices == 2
    with pytest.raises(store.Conflict):
        store.add_choice(engine, 1, "ann", "p", "x", "y", "k1")
