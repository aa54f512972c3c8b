"""IQL's time per gradient step at the bench's 10-goal size (2 x 512, batch 256), on one torch
thread, on every core's thread, and in one one-thread process per core side by side: why
``pluralign rl bench`` trains policies in worker processes (:mod:`pluralign.rl.workers`).

    python benchmarks/rl_worker_speed.py [--steps 300]

Prints ms per step for each way, and the throughput of the side-by-side processes against one
process on every core. Random data of the bench's shape (40,000 rows, 4-d state, 10-d z): the
time of a step does not depend on what the data says.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import time

import numpy as np


def ms_per_step(threads: int, steps: int) -> float:
    import torch

    from pluralign.rl.config import RLBenchConfig
    from pluralign.rl.iql import train_iql

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    n, episode_len = 40_000, 50
    settings = dataclasses.replace(RLBenchConfig().iql_for(10), steps=steps)
    args = (rng.normal(size=(n, 4)), rng.normal(size=(n, 10)), rng.uniform(-1, 1, (n, 2)), rng.uniform(size=n))
    train_iql(*[a.astype(np.float32) for a in args], episode_len, dataclasses.replace(settings, steps=5))  # warm up
    t0 = time.perf_counter()
    train_iql(*[a.astype(np.float32) for a in args], episode_len, settings)
    return 1000 * (time.perf_counter() - t0) / steps


def main() -> None:
    from pluralign.rl.workers import usable_cores

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    steps = parser.parse_args().steps
    cores = usable_cores()
    one = ms_per_step(1, steps)
    print(f"one process, 1 thread: {one:.1f} ms/step")
    every = ms_per_step(cores, steps)
    print(f"one process, {cores} threads: {every:.1f} ms/step")
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        side = pool.starmap(ms_per_step, [(1, steps)] * cores)
    print(f"{cores} processes side by side, 1 thread each: " + ", ".join(f"{t:.1f}" for t in side) + " ms/step")
    print(f"throughput of {cores} one-thread processes against one {cores}-thread process: "
          f"{every * cores / max(side):.2f}x")


if __name__ == "__main__":
    main()
