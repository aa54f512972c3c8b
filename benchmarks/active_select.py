"""Active query selection speed: choosing one user's next question from a pool of 10,000 pairs.

    .venv/bin/python benchmarks/active_select.py [--pool 10000] [--option-dim 384] [--threads 1]

Untrained models at the default sizes (MLPs 2 x 256; cost does not depend on the weights), a
user who has answered 3 questions, median wall time of ``select_queries`` over repeats:

* VPL, info-gain under q(z | answers) (App. B): 16 draws of q, ``--candidates`` pool pairs scored
  (App. B's sampling-based search; the per-user cost does not grow with the pool);
* NP-BTL, info-gain under a particle posterior (64 particles): the pool is scored once for the
  particles when a :class:`~pluralign.active.Pool` is first used (reported separately, shared by
  every user), after which each user's selection reweights the particles and scores every pair;
* uncertainty sampling and random, for scale; and batch mode (k = 4 from 256 sampled batches).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pluralign.active import ParticlePosterior, Pool, select_queries
from pluralign.rewards import build_reward_model


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (ms). On a shared, oversubscribed
    machine the wall time includes waiting for a core; the CPU time is the work itself."""
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return round(1000 * statistics.median(wall), 1), round(1000 * statistics.median(cpu), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=10_000, help="candidate pairs in the pool")
    ap.add_argument("--option-dim", type=int, default=384, help="features per option (384: MiniLM)")
    ap.add_argument("--candidates", type=int, default=128, help="pairs scored per question under q samples")
    ap.add_argument("--samples", type=int, default=16, help="draws of q(z | answers)")
    ap.add_argument("--particles", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = args.option_dim
    pool = Pool(torch.randn(args.pool, d), torch.randn(args.pool, d))
    answered = (torch.randn(3, d), torch.randn(3, d))
    vpl = build_reward_model("vpl", option_dim=d).eval()
    npbtl = build_reward_model("np-btl", option_dim=d).eval()
    parts = ParticlePosterior.from_contexts(npbtl, torch.randn(args.particles, 10, d), torch.randn(args.particles, 10, d))
    res = {"pool": args.pool, "option_dim": d, "threads": args.threads}
    def once(fn) -> tuple[float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        return round(1000 * (time.perf_counter() - t0), 1), round(1000 * (time.process_time() - c0), 1)

    for name, model in (("vpl", vpl), ("np-btl", npbtl)):
        res[f"{name} option embeddings (once per pool), ms"] = once(lambda: pool.scorer(model))
    res["np-btl particle table (once per pool), ms"] = once(lambda: parts.pool_rewards(npbtl, pool))
    cases = {
        "vpl info-gain (q samples), ms": lambda: select_queries(
            vpl, pool, answered, n_samples=args.samples, n_candidates=args.candidates),
        "np-btl info-gain (particles, whole pool), ms": lambda: select_queries(
            npbtl, pool, answered, particles=parts),
        "vpl uncertainty (whole pool), ms": lambda: select_queries(vpl, pool, answered, strategy="uncertainty"),
        "vpl random, ms": lambda: select_queries(vpl, pool, answered, strategy="random"),
        "vpl info-gain batch k=4 (128 sampled batches), ms": lambda: select_queries(
            vpl, pool, answered, k=4, n_samples=args.samples, n_candidates=128),
    }
    for name, fn in cases.items():
        res[name] = timed(fn, args.repeats)
    try:
        import os

        res["load average (1 min)"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    if args.json:
        print(json.dumps(res))
        return
    print(f"{'per-user selection (median of ' + str(args.repeats) + ')':52s} {'wall ms':>9s} {'CPU ms':>9s}")
    for k, v in res.items():
        if isinstance(v, tuple):
            print(f"{k.replace(', ms', ''):52s} {v[0]:9.1f} {v[1]:9.1f}")
        else:
            print(f"{k:52s} {v}")


if __name__ == "__main__":
    main()
