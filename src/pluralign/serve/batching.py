"""Micro-batching of rank requests: concurrent requests for one model share one forward pass.

A rank request :meth:`RankBatcher.submit`\\ s (prompt, candidates, user state) and awaits a
future. The first submit of an event-loop turn schedules a flush for the end of that turn; every
request that reaches submit before it joins the batch. The flush groups the jobs with the same
prompt and candidates and scores each group for all its users in one ``Personalizer.score`` call.

Everything runs on the event loop's thread, on purpose: a worker process per core, and no
hand-off between threads. A first version scored on a separate batcher thread; on this shared
machine each hand-off (to the thread and back, and the GIL with it) waited for the OS scheduler,
and the waiting was most of a ranking's time (docs/serve.md, "Performance"). Blocking the loop
for a forward pass of a few milliseconds is what batches requests: those that arrive meanwhile
are read together when it ends and go into the next flush together.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch


@dataclass
class _Job:
    prompt: str
    candidates: tuple[str, ...]
    state: Any
    future: asyncio.Future


class RankBatcher:
    """Scores queued rank jobs at the end of each event-loop turn, up to ``max_batch`` users a call."""

    def __init__(self, score: Callable[[str, Sequence[str], Sequence[Any]], torch.Tensor], *,
                 max_batch: int = 64, on_batch: Callable[[int], None] | None = None) -> None:
        self._score, self.max_batch, self._on_batch = score, max_batch, on_batch
        self._pending: list[_Job] = []
        self._scheduled = False

    def submit(self, prompt: str, candidates: Sequence[str], state: Any) -> asyncio.Future:
        """A future of the (N,) scores of ``candidates`` for the user ``state`` (call on the loop)."""
        loop = asyncio.get_running_loop()
        job = _Job(prompt, tuple(candidates), state, loop.create_future())
        self._pending.append(job)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return job.future

    def _flush(self) -> None:
        self._scheduled = False
        jobs, self._pending = self._pending, []
        for start in range(0, len(jobs), self.max_batch):
            self._run(jobs[start:start + self.max_batch])

    def _run(self, jobs: list[_Job]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(jobs))
        groups: dict[tuple[str, tuple[str, ...]], list[_Job]] = {}
        for job in jobs:
            groups.setdefault((job.prompt, job.candidates), []).append(job)
        for (prompt, candidates), group in groups.items():
            try:
                scores = self._score(prompt, candidates, [j.state for j in group])
            except Exception as err:  # noqa: BLE001 - handed to the waiting requests
                for j in group:
                    if not j.future.done():
                        j.future.set_exception(err)
                continue
            for row, j in zip(scores, group):
                if not j.future.done():  # the request may have been cancelled (client gone)
                    j.future.set_result(row)
