"""Where ``pluralign rl bench`` spends most of its time, one policy at a time or several at once:
:func:`fit_and_drive` trains one policy's IQL on its relabelled dataset and drives it from the
test starts with each test z it was given (a :class:`PolicyJob` in, a :class:`PolicyResult` out);
:func:`policy_pool` runs such jobs in this process (``jobs=1``) or in ``jobs`` worker processes.

Why workers and not torch's threads: IQL's MLPs (2 x 512, batches of 256) are too small for a
second intra-op thread to pay its way. On the 2-core machine of 2026-12-03 a step took 52.5 ms
on one thread and 38.9 ms on two, while two one-thread processes side by side took 52 ms each:
1.5 times the throughput (``python benchmarks/rl_worker_speed.py``).

The results do not depend on ``jobs``. The bench relabels every policy's data in this process,
in the policy list's order, so its draws stay the same. Each job seeds its own IQL run. A job
reads only what it is given. ``tests/test_rl.py`` checks that jobs=1 and jobs=2 give the same
successes and paths.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .iql import IQLSettings, train_iql
from .maze import Maze
from .rollout import Episodes, rollout


@dataclass
class PolicyJob:
    """One policy's training data and the test z to drive it with: ``curves`` maps each reported
    curve (e.g. ``vpl+spo`` and ``vpl+spo/active``) to {answered queries n: z (B, L)} for the B test
    episodes of ``test``. ``paths_at``: the n whose paths are kept (every other step)."""

    states: np.ndarray
    z: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    episode_len: int
    iql: IQLSettings
    seed: int
    curves: dict[str, dict[int, np.ndarray]]
    maze: Maze
    action_repeat: int
    test: Episodes
    goals_xy: np.ndarray
    horizon: int
    radius: float
    paths_at: int


@dataclass
class PolicyResult:
    """Per curve: each test episode's success per n, and the paths at ``paths_at``; ``seconds``:
    the job's own time (IQL and rollouts)."""

    success: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    paths: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0


def fit_and_drive(job: PolicyJob) -> PolicyResult:
    """Train the job's IQL policy, then roll it out from every test start for each curve and n."""
    from .env import MazeSim

    t0 = time.time()
    policy = train_iql(job.states, job.z, job.actions, job.rewards, job.episode_len, job.iql, seed=job.seed)
    sim = MazeSim(job.maze, len(job.test.goal_index), job.action_repeat)
    result = PolicyResult()
    for name, by_n in job.curves.items():
        result.success[name] = {}
        for n, z in by_n.items():
            ok, paths = rollout(policy, z, sim, job.test, job.goals_xy, job.horizon, job.radius)
            result.success[name][n] = ok
            if n == job.paths_at:
                result.paths[name] = paths[:, ::2].round(3).tolist()
    result.seconds = time.time() - t0
    return result


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS says, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_jobs(jobs: int, n_policies: int) -> int:
    """``jobs`` (0: one per usable core), at most one per policy and at least 1."""
    if jobs < 0:
        raise ValueError(f"jobs must be >= 0 (0: one per CPU core), got {jobs}")
    return max(1, min(jobs or usable_cores(), n_policies))


class InProcess(Executor):
    """Runs each job at once, in this process: ``jobs=1``, the bench as it ran before workers."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # handed to whoever reads the future, as a pool's worker would
            future.set_exception(err)
        return future


#: what a spawned worker that could not start most likely means
GUARD_HINT = ("if it could not start: a script that runs the bench must call it under "
              "`if __name__ == \"__main__\":` (each worker imports the script that started it), or "
              "pass jobs=1 (--jobs 1) to train the policies one at a time in this process")


def refuse_in_bootstrap() -> None:
    """Raise, before any work, when this is a worker importing its parent's script: the script ran
    the bench without a ``__main__`` guard, and the worker would run it again. (``_inheriting`` is
    what multiprocessing itself checks to raise its own error at that point.)"""
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"a worker process is importing the script that started it: {GUARD_HINT}")


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@contextmanager
def policy_pool(jobs: int) -> Iterator[Executor]:
    """An executor for :func:`fit_and_drive`: this process for ``jobs=1``, else ``jobs`` spawned
    workers with the usable cores split between them (spawned, not forked: a fork of a process
    that has run torch's OpenMP threads can hang)."""
    if jobs <= 1:
        yield InProcess()
        return
    threads = max(1, usable_cores() // jobs)
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_limit_threads, initargs=(threads,))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
