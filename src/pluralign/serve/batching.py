"""Micro-batching of rank requests: concurrent requests for one model share one forward pass.

Request threads :meth:`RankBatcher.submit` (prompt, candidates, user state) and wait on a
future; one worker thread takes everything queued, groups requests with the same prompt and
candidates, and scores each group for all its users in one ``Personalizer.score`` call. The
batching is opportunistic: nothing waits for a batch to fill, so a lone request pays no delay,
and under load requests pile up while the model is busy and go through together.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch


@dataclass
class _Job:
    prompt: str
    candidates: tuple[str, ...]
    state: Any
    future: Future = field(default_factory=Future)


class RankBatcher:
    """One thread scoring queued rank jobs in batches of up to ``max_batch`` users."""

    def __init__(self, score: Callable[[str, Sequence[str], Sequence[Any]], torch.Tensor], *,
                 max_batch: int = 64, on_batch: Callable[[int], None] | None = None) -> None:
        self._score, self.max_batch, self._on_batch = score, max_batch, on_batch
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="rank-batcher", daemon=True)
        self._thread.start()

    def submit(self, prompt: str, candidates: Sequence[str], state: Any) -> Future:
        """A future of the (N,) scores of ``candidates`` for the user ``state``."""
        job = _Job(prompt, tuple(candidates), state)
        self._queue.put(job)
        return job.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _take(self) -> list[_Job] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        while len(jobs) < self.max_batch:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # finish this batch, then stop
                break
            jobs.append(job)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            groups: dict[tuple[str, tuple[str, ...]], list[_Job]] = {}
            for job in jobs:
                groups.setdefault((job.prompt, job.candidates), []).append(job)
            if self._on_batch is not None:
                self._on_batch(len(jobs))
            for (prompt, candidates), group in groups.items():
                try:
                    scores = self._score(prompt, candidates, [j.state for j in group])
                except BaseException as err:  # noqa: BLE001 - handed to the waiting requests
                    for j in group:
                        j.future.set_exception(err)
                    continue
                for row, j in zip(scores, group):
                    j.future.set_result(row)
