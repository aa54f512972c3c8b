"""NP-BTL speed: training throughput (tasks/s) and personalize + score latency.

    .venv/bin/python benchmarks/np_btl_throughput.py [--option-dim 1] [--steps 50] [--threads 1]

Training: Adam steps on batches of 64 tasks (N^C ~ U[0, 10], N^T = 20, context ⊂ target; the
NP paper's setting) through the model's own objective, timed after warm-up steps; batches are
pre-collated so the figure is the model's, not the sampler's. Latency: one user's context of
N^C pairs -> z (``personalize``) and rewards for 1,000 candidate options (``reward``), the
median over repeats. Everything is batched tensor code: no Python loop over tasks or users.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from pluralign.data.tasks import TaskSampler, collate
from pluralign.rewards import build_reward_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--option-dim", type=int, default=1, help="features per option (1: Example 4.1)")
    ap.add_argument("--encoder", default="deepset", choices=["deepset", "attention"])
    ap.add_argument("--tasks", type=int, default=64, help="tasks per training batch")
    ap.add_argument("--steps", type=int, default=50, help="timed training steps")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--candidates", type=int, default=1000)
    ap.add_argument("--context", type=int, default=10, help="N^C for the latency measurement")
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)

    n_pairs = 20_000
    chosen, rejected = torch.rand(n_pairs, args.option_dim), torch.rand(n_pairs, args.option_dim)
    users = [f"u{i % 100}" for i in range(n_pairs)]
    sampler = TaskSampler(users, context_range=(0, 10), n_target=20, seed=0)
    batches = [collate(sampler.sample(args.tasks, step=s), chosen, rejected).to(dev)
               for s in range(args.warmup + args.steps)]
    model = build_reward_model("np-btl", option_dim=args.option_dim, encoder=args.encoder).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(batch):
        loss, _ = model(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for b in batches[: args.warmup]:
        step(b)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for b in batches[args.warmup:]:
        step(b)
    sync()
    train_s = time.perf_counter() - t0
    tasks_per_s = args.tasks * args.steps / train_s

    model.eval()
    ctx_c = torch.rand(1, args.context, args.option_dim, device=dev)
    ctx_r = torch.rand(1, args.context, args.option_dim, device=dev)
    mask = torch.ones(1, args.context, dtype=torch.bool, device=dev)
    cands = torch.rand(1, args.candidates, args.option_dim, device=dev)
    times = []
    with torch.inference_mode():
        for i in range(args.repeats + 3):
            sync()
            t0 = time.perf_counter()
            z = model.personalize(ctx_c, ctx_r, mask)
            scores = model.reward(cands, z)
            sync()
            if i >= 3:
                times.append(time.perf_counter() - t0)
    assert scores.shape == (1, args.candidates)
    result = {"device": str(dev), "threads": args.threads, "option_dim": args.option_dim,
              "encoder": args.encoder, "params": sum(p.numel() for p in model.parameters()),
              "train_tasks_per_s": round(tasks_per_s, 1), "train_steps_per_s": round(args.steps / train_s, 2),
              "latency_ms_median": round(1000 * statistics.median(times), 3),
              "latency_ms_p90": round(1000 * sorted(times)[int(0.9 * len(times)) - 1], 3),
              "candidates": args.candidates, "context_pairs": args.context}
    if args.json:
        print(json.dumps(result))
        return
    print(f"NP-BTL ({args.encoder}, option_dim={args.option_dim}, {result['params']:,} parameters) "
          f"on {dev} with {args.threads} thread(s)")
    print(f"  training: {result['train_tasks_per_s']:.0f} tasks/s ({result['train_steps_per_s']:.2f} "
          f"steps/s of {args.tasks} tasks, N^C in [0, 10], N^T = 20)")
    print(f"  personalize ({args.context} context pairs) + score {args.candidates} candidates: "
          f"median {result['latency_ms_median']:.2f} ms, p90 {result['latency_ms_p90']:.2f} ms")


if __name__ == "__main__":
    main()
