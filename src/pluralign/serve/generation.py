"""Where policy work runs: generation (and ranking by a policy's implicit reward) off the event
loop, in a thread pool of its own with a bounded queue.

A decode of a few hundred tokens takes seconds on a CPU; on the event loop it would stall every
other request (rank, choices, health checks). The steering of a policy is model state while a
call runs (FiLM's z, CMPO's lambda), so calls into one model are serialised by its lock anyway:
``workers`` threads (default 1) run them, and at most ``max_pending`` calls may be admitted
(running or waiting). Beyond that the caller gets :class:`Busy` (the route answers 503 with
Retry-After) instead of an unbounded queue whose latency grows without limit.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class Busy(RuntimeError):
    """Too many policy calls admitted already; retry later."""


class PolicyPool:
    """A bounded pool for blocking policy calls (see the module docstring)."""

    def __init__(self, workers: int = 1, max_pending: int = 8) -> None:
        if workers < 1 or max_pending < workers:
            raise ValueError(f"need workers >= 1 and max_pending >= workers, got {workers}, {max_pending}")
        self.workers, self.max_pending = workers, max_pending
        self._executor: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return self._pending

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on a pool thread; :class:`Busy` when ``max_pending`` calls are
        in already. A cancelled request (client gone) still lets its call finish: a decode
        cannot be interrupted, and the slot is freed when it ends."""
        with self._lock:
            if self._pending >= self.max_pending:
                raise Busy(f"{self._pending} generations are running or queued (at most {self.max_pending}); "
                           "retry shortly")
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="pluralign-policy")
        future = self._executor.submit(fn, *args, **kwargs)
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def _release(self, _: Any) -> None:
        with self._lock:
            self._pending -= 1

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
