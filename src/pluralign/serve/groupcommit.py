"""Group commit of posted choices: one writer thread per worker stores every choice waiting for
it in one transaction, and each request is answered once that transaction has committed.

Why: a choice's own work is two short statements, but each transaction also pays a BEGIN, a
COMMIT (on SQLite the WAL append and the write lock that worker processes take in turn) and,
from a route run in the thread pool, two thread hand-offs; together several times the
statements. A route awaits :meth:`GroupCommit.submit` on its event loop instead; the writer
takes whatever has queued up meanwhile (up to ``max_group``), stores it with
``store.add_choices`` and hands each request its own result. Alone, a choice waits for
nothing; under load the groups grow by themselves while a commit runs.

Nothing is acknowledged before its commit, so a crash loses only choices that were never
acknowledged (a client retries them with the same Idempotency-Key). When a whole group fails
for a reason other than a lost race (which ``add_choices`` retries), its items are stored one
by one, so one bad item cannot fail the others.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, Callable, Sequence

IDLE_EXIT_S = 10.0  # an idle writer thread ends; the next submit starts a new one


@dataclass
class _Job:
    item: Any
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


class GroupCommit:
    """Runs ``store_many(items) -> results`` (a result may be an exception instance, handed to
    its request) on a writer thread, for everything submitted while the last group was stored;
    ``store_one(item)`` is the fallback when a whole group raises."""

    def __init__(self, store_many: Callable[[Sequence[Any]], list[Any]], store_one: Callable[[Any], Any], *,
                 max_group: int = 64, on_group: Callable[[int], None] | None = None) -> None:
        self._many, self._one, self.max_group, self._on_group = store_many, store_one, max_group, on_group
        self._queue: list[_Job] = []
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    async def submit(self, item: Any) -> Any:
        """Store ``item`` with the next group; its result once committed (or its exception)."""
        loop = asyncio.get_running_loop()
        job = _Job(item, loop.create_future(), loop)
        with self._cv:
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pluralign-group-commit", daemon=True)
                self._thread.start()
            self._cv.notify()
        return await job.future

    def _run(self) -> None:
        while True:
            with self._cv:
                if not self._queue:
                    self._cv.wait(IDLE_EXIT_S)
                if not self._queue:
                    self._thread = None  # decided under the lock: a submit now starts a new thread
                    return
                jobs, self._queue = self._queue[:self.max_group], self._queue[self.max_group:]
            if self._on_group is not None:
                self._on_group(len(jobs))
            try:
                results = self._many([j.item for j in jobs])
            except Exception:  # noqa: BLE001 - one item may be at fault: store them one by one
                results = []
                for j in jobs:
                    try:
                        results.append(self._one(j.item))
                    except Exception as err:  # noqa: BLE001 - handed to that request
                        results.append(err)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, Any]]] = {}
            for j, r in zip(jobs, results):
                by_loop.setdefault(j.loop, []).append((j.future, r))
            for loop, answers in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_answer, answers)
                except RuntimeError:  # that event loop has closed: nobody is waiting any more
                    pass


def _answer(answers: list[tuple[asyncio.Future, Any]]) -> None:
    for future, result in answers:
        if future.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
