"""NP-BTL speed, side by side with the paper's model in the authors' form (issue 15).

    python benchmarks/np_btl_throughput.py                 # 1 and 2 threads, 1-D and 384-d options
    python benchmarks/np_btl_throughput.py --json          # one JSON line (train_speedup, latency_ms_median, ...)
    python benchmarks/np_btl_throughput.py --accuracy-seconds 60   # + accuracy after equal wall time

Two models in one process, timed in alternating rounds so that load from other jobs on a shared
machine hits both alike; the figures to read are the ratios.

* **reference** — the NP paper's model as the authors' code builds it: DeepSet encoder with mean
  pooling, every MLP one hidden layer of 256 (GELU), decoder MLP2([MLP1(y) ‖ z]) with z
  concatenated to every option, fp32, plain Adam, no caching; batches sampled task by task and
  collated row by row (pluralign's earlier sampler, of the same form as the authors' loader).
* **ours** — ``build_reward_model("np-btl")`` with the library's defaults and its training path:
  the vectorized sampler (``sample_arrays`` + ``collate_arrays``), batch prefetch in a thread,
  the fused Adam of ``build_optimizer``, autocast as ``mixed_precision="auto"`` resolves it here.

Training, end to end: sampling + collation + forward + backward + Adam on batches of 64 tasks
(N^C ~ U[0, 10], N^T = 20, context ⊂ target; NP paper App. C.1), tasks/s. Latency: one user's
10 context pairs -> z and rewards for 1,000 candidates; ours for candidates seen before
(``prepare_candidates`` once, then ``score_candidates``) and unseen (prepared in the call).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time

import numpy as np
import torch
from torch import nn

from pluralign.data.tasks import TaskSampler, collate, collate_arrays
from pluralign.rewards import build_reward_model
from pluralign.train.config import TrainConfig
from pluralign.train.accelerator import resolve_precision
from pluralign.train.loop import build_optimizer
from pluralign.train.prefetch import PrefetchingBatchFn


OURS: dict = {}  # config fields of our model that differ from the library default (--hidden-layers)


def mlp(i: int, o: int, h: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.GELU(), nn.Linear(h, o))


class Reference(nn.Module):
    """The authors' form of NP-BTL (see the module doc)."""

    def __init__(self, d: int, h: int = 256):
        super().__init__()
        self.pair, self.outer = mlp(2 * d, h), mlp(h, h)
        self.embed, self.head = mlp(d, h), mlp(2 * h, 1)

    def personalize(self, c, r, mask):
        x = self.pair(torch.cat([c, r], -1)) * mask.unsqueeze(-1)
        return self.outer(x.sum(1) / mask.sum(1, keepdim=True).clamp(min=1))

    def reward(self, y, z):
        zz = z.unsqueeze(1).expand(-1, y.shape[1], -1)
        return self.head(torch.cat([self.embed(y), zz], -1)).squeeze(-1)

    def forward(self, b):
        z = self.personalize(b.context_chosen, b.context_rejected, b.context_mask)
        r = self.reward(torch.cat([b.target_chosen, b.target_rejected], 1), z)
        rc, rr = r.chunk(2, dim=1)
        return -(nn.functional.logsigmoid(rc - rr) * b.target_mask).sum() / b.target_mask.sum()


class Trainer:
    """One model, its optimiser and its batch source; ``run(k)`` does k training steps."""

    def __init__(self, model, batch_fn, optimizer, autocast=contextlib.nullcontext, loss=None):
        self.model, self.batch_fn, self.opt, self.autocast = model.train(), batch_fn, optimizer, autocast
        self.loss = loss or (lambda m, b: m(b)[0])
        self.step, self.cpu = 0, 0.0

    def run(self, k: int) -> float:
        """Wall seconds of k steps; CPU seconds of the process (all threads, the prefetch
        thread's too) are added to ``self.cpu``: on a loaded machine they count the work done,
        not the time spent waiting for a core."""
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(k):
            batch = self.batch_fn(self.step, 0)
            with self.autocast():
                loss = self.loss(self.model, batch)
            loss.backward()
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step += 1
        self.cpu += time.process_time() - c0
        return time.perf_counter() - t0


def make_pair(d: int, tables, users, n_tasks: int, precision: str):
    chosen, rejected = tables
    sampler = TaskSampler(users, context_range=(0, 10), n_target=20, seed=0)
    torch.manual_seed(0)
    ref = Reference(d)
    ref_trainer = Trainer(ref, lambda s, st: collate(sampler.sample(n_tasks, s, st), chosen, rejected),
                          torch.optim.Adam(ref.parameters(), lr=1e-4), loss=lambda m, b: m(b))
    ours = build_reward_model("np-btl", option_dim=d, **OURS)
    prefetch = PrefetchingBatchFn(lambda s, st: collate_arrays(sampler.sample_arrays(n_tasks, s, st),
                                                               chosen, rejected))
    cast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext
    ours_trainer = Trainer(ours, prefetch, build_optimizer(list(ours.parameters()), TrainConfig()), cast)
    return ref_trainer, ours_trainer, prefetch


def bench_training(d, tables, users, args, precision):
    ref, ours, prefetch = make_pair(d, tables, users, args.tasks, precision)
    ref.run(args.warmup), ours.run(args.warmup)
    ref.cpu = ours.cpu = 0.0
    t_ref = t_ours = 0.0
    for _ in range(args.rounds):  # alternate so both see the same load
        t_ref += ref.run(args.steps)
        t_ours += ours.run(args.steps)
    prefetch.close()
    n = args.tasks * args.steps * args.rounds
    return {"ref_tasks_per_s": n / t_ref, "ours_tasks_per_s": n / t_ours, "speedup": t_ref / t_ours,
            "cpu_speedup": ref.cpu / ours.cpu,
            "ref_params": sum(p.numel() for p in ref.model.parameters()),
            "ours_params": sum(p.numel() for p in ours.model.parameters())}


def bench_latency(d, args):
    torch.manual_seed(0)
    ref, ours = Reference(d).eval(), build_reward_model("np-btl", option_dim=d, **OURS).eval()
    c, r = torch.rand(1, 10, d), torch.rand(1, 10, d)
    mask = torch.ones(1, 10, dtype=torch.bool)
    cands = torch.rand(1000, d)
    calls = {
        "ref": lambda: ref.reward(cands.unsqueeze(0), ref.personalize(c, r, mask)),
        "seen": lambda: ours.score_candidates(prepared, ours.personalize(c, r, mask)),
        "unseen": lambda: ours.score_candidates(ours.prepare_candidates(cands), ours.personalize(c, r, mask)),
    }
    times = {k: [] for k in calls}
    cpu = {k: [] for k in calls}  # this thread's CPU time: the work, without waits for a core
    with torch.inference_mode():
        prepared = ours.prepare_candidates(cands)
        for i in range(args.repeats + 5):
            for name, call in calls.items():  # interleaved
                t0, c0 = time.perf_counter(), time.thread_time()
                out = call()
                if i >= 5:
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.thread_time() - c0)
        assert out.shape == (1, 1000)
    res = {}
    for name, ts in times.items():
        ts.sort()
        res[name] = {"median_ms": 1000 * statistics.median(ts), "p90_ms": 1000 * ts[int(0.9 * len(ts)) - 1],
                     "cpu_median_ms": 1000 * statistics.median(cpu[name])}
    return res


def bench_accuracy(args, precision):
    """Both models trained for the same wall time on Example 4.1 (alternating rounds), then
    accuracy on unseen targets of fixed test tasks per N^C."""
    from pluralign.data.splits import by_split
    from pluralign.data.synthetic import example41
    from pluralign.data.tables import option_vectors, user_ids
    from pluralign.eval.metrics import correctness

    records, _ = example41(n_pairs=20000, seed=0)
    parts = by_split(records)
    train, test = parts["train"], parts["test"]
    tables = option_vectors(train)
    ref, ours, prefetch = make_pair(1, tables, user_ids(train), args.tasks, precision)
    spent = {"ref": 0.0, "ours": 0.0}
    while min(spent.values()) < args.accuracy_seconds:
        if spent["ref"] < args.accuracy_seconds:
            spent["ref"] += ref.run(10)
        if spent["ours"] < args.accuracy_seconds:
            spent["ours"] += ours.run(10)
    prefetch.close()
    tc, tr = option_vectors(test)
    sampler = TaskSampler(user_ids(test), context_range=(0, 10), n_target=20, context_in_target=False, seed=99)
    out = {"seconds": args.accuracy_seconds, "ref_steps": ref.step, "ours_steps": ours.step}
    for name, tr_ in (("ref", ref), ("ours", ours)):
        m = tr_.model.eval()
        acc = {}
        with torch.no_grad():
            for n in (0, 1, 3, 5, 10):
                b = collate(sampler.sample(500, n_context=n), tc, tr)
                z = m.personalize(b.context_chosen, b.context_rejected, b.context_mask)
                r = m.reward(torch.cat([b.target_chosen, b.target_rejected], 1), z)
                rc, rr = r.chunk(2, dim=1)
                ok = correctness(torch.sigmoid(rc - rr)) * b.target_unseen
                acc[str(n)] = round(100 * float((ok.sum(1) / b.target_unseen.sum(1)).mean()), 1)
        out[f"{name}_accuracy"] = acc
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--option-dims", type=int, nargs="+", default=[1, 384])
    ap.add_argument("--tasks", type=int, default=64, help="tasks per training batch")
    ap.add_argument("--steps", type=int, default=10, help="training steps per model and round")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=100, help="latency calls per model")
    ap.add_argument("--accuracy-seconds", type=float, default=0.0,
                    help="also train both on Example 4.1 for this many seconds each and compare accuracy")
    ap.add_argument("--hidden-layers", type=int, default=None,
                    help="our model's n_hidden_layers (default: the library default)")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args()
    if args.hidden_layers is not None:
        OURS["n_hidden_layers"] = args.hidden_layers
    precision = resolve_precision("auto", cpu=True)
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for d in args.option_dims:
            rng = np.random.default_rng(d)
            tables = (torch.from_numpy(rng.random((20000, d), dtype=np.float32)),
                      torch.from_numpy(rng.random((20000, d), dtype=np.float32)))
            users = [f"z{i % 2}" for i in range(20000)]  # Example 4.1: two types label every pair
            rows.append({"threads": threads, "option_dim": d, "train": bench_training(d, tables, users, args, precision),
                         "latency": bench_latency(d, args)})
    acc = bench_accuracy(args, precision) if args.accuracy_seconds > 0 else None
    key = next((r for r in rows if r["threads"] == 2 and r["option_dim"] == 1), rows[-1])
    summary = {"train_speedup": round(key["train"]["speedup"], 2),
               "train_cpu_speedup": round(key["train"]["cpu_speedup"], 2),
               "latency_ms_median": round(key["latency"]["seen"]["median_ms"], 3),
               "latency_ms_p90": round(key["latency"]["seen"]["p90_ms"], 3),
               "ref_latency_ms_median": round(key["latency"]["ref"]["median_ms"], 3),
               "latency_cpu_ms_median": round(key["latency"]["seen"]["cpu_median_ms"], 3),
               "key": {"threads": key["threads"], "option_dim": key["option_dim"]},
               "precision": precision, "ours_config": build_reward_model("np-btl", **OURS).config.to_dict(),
               "rows": rows, "accuracy": acc}
    if args.json:
        print(json.dumps(summary, default=lambda v: round(v, 3)))
        return
    layers = build_reward_model("np-btl", **OURS).config.n_hidden_layers
    print(f"NP-BTL side by side (ours: {layers} hidden layer(s), autocast {precision}; "
          f"reference: authors' form, 1 hidden layer, fp32)")
    print("threads  dim | train tasks/s ref -> ours (x wall, x cpu) | latency ms median/p90 (cpu median): "
          "ref | ours seen | ours unseen")
    for r in rows:
        t, lat = r["train"], r["latency"]
        cells = " | ".join(f"{lat[k]['median_ms']:.2f}/{lat[k]['p90_ms']:.2f} ({lat[k]['cpu_median_ms']:.2f})"
                           for k in ("ref", "seen", "unseen"))
        print(f"{r['threads']:>7} {r['option_dim']:>4} | {t['ref_tasks_per_s']:7.0f} -> {t['ours_tasks_per_s']:7.0f} "
              f"({t['speedup']:.2f}x, {t['cpu_speedup']:.2f}x) | {cells}")
    if acc:
        print(f"Example 4.1 accuracy (%) on unseen targets by N^C after {acc['seconds']:.0f} s of training each "
              f"(ref {acc['ref_steps']} steps, ours {acc['ours_steps']} steps):")
        for name in ("ref", "ours"):
            print(f"  {name:>4}: " + "  ".join(f"N^C={k}: {v}" for k, v in acc[f"{name}_accuracy"].items()))


if __name__ == "__main__":
    main()
