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


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


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
    for name, model in (("vpl", vpl), ("np-btl", npbtl)):
        t0 = time.perf_counter()
        pool.scorer(model)
        res[f"{name} option embeddings (once per pool), ms"] = round(1000 * (time.perf_counter() - t0), 1)
    t0 = time.perf_counter()
    parts.pool_rewards(npbtl, pool)
    res["np-btl particle table (once per pool), ms"] = round(1000 * (time.perf_counter() - t0), 1)
    cases = {
        "vpl info-gain (q samples), ms": lambda: select_queries(
            vpl, pool, answered, n_samples=args.samples, n_candidates=args.candidates),
        "np-btl info-gain (particles, whole pool), ms": lambda: select_queries(
            npbtl, pool, answered, particles=parts, n_candidates=args.pool),
        "vpl uncertainty (whole pool), ms": lambda: select_queries(vpl, pool, answered, strategy="uncertainty"),
        "vpl random, ms": lambda: select_queries(vpl, pool, answered, strategy="random"),
        "vpl info-gain batch k=4 (128 sampled batches), ms": lambda: select_queries(
            vpl, pool, answered, k=4, n_samples=args.samples, n_candidates=128),
    }
    for name, fn in cases.items():
        res[name] = round(timed(fn, args.repeats), 1)
    if args.json:
        print(json.dumps(res))
        return
    for k, v in res.items():
        print(f"{k:52s} {v}")


if __name__ == "__main__":
    main()
