"""Build the next training batch in a background thread while the current step computes.

``batch_fn(step, stream)`` is deterministic (see :mod:`pluralign.train.loop`), so a batch built
ahead of time is the batch the loop would have built: prefetching changes the wall time, never
the result. After serving ``(step, stream)`` the next step's batch for the same stream is
started; a request that was not predicted (the first one, a resume, a changed schedule) is
built in the calling thread. Sampling and gathering spend most of their time in NumPy and torch
kernels that release the GIL, so the thread overlaps with the model's step.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

BatchFn = Callable[[int, int], Any]


class PrefetchingBatchFn:
    """``batch_fn`` with the next step's batches built ahead in one worker thread.

    Call it like ``batch_fn``; call :meth:`close` (or use it as a context manager) at the end.
    """

    def __init__(self, batch_fn: BatchFn):
        self.batch_fn = batch_fn
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pluralign-prefetch")
        self._pending: dict[tuple[int, int], Future] = {}
        self.hits = self.misses = 0

    def __call__(self, step: int, stream: int) -> Any:
        future = self._pending.pop((step, stream), None)
        for key in [k for k in self._pending if k[0] <= step]:  # stale predictions
            self._pending.pop(key).cancel()
        self._pending[(step + 1, stream)] = self._pool.submit(self.batch_fn, step + 1, stream)
        if future is not None:
            self.hits += 1
            return future.result()
        self.misses += 1
        return self.batch_fn(step, stream)

    def close(self) -> None:
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "PrefetchingBatchFn":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
