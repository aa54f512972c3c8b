"""Throughput and latency of `pluralign serve` on this machine (loopback only), issue 13's targets:

- rank with 10 and 1,000 candidates, cached and uncached embeddings;
- posting choices (then checking that every acknowledged choice is stored exactly once);
- SQLite and, with --pg URL, PostgreSQL; --workers server processes (default 2);
- a sequential rank (one client) beside the model's own time for the same ranking, in process:
  how much of a ranking is the model and how much the framework.

    python benchmarks/serve_load.py --run runs/serve-demo [--pg postgresql://...] [--repeats 2]

Every scenario is repeated --repeats times on a fresh tenant; the table shows each repeat, so the
noise of a shared machine is visible. Results go to --out (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from pluralign.serve import auth
from pluralign.serve.db import make_engine
from pluralign.serve.loadgen import LoadConfig, run_load, spawn_server, stop_server, verify_choices
from pluralign.serve.migrate import upgrade

MIXED = {"choice": 0.4, "rank": 0.4, "next": 0.2}
# name: (mix, n_candidates, fresh candidate texts, clients, requests per client, open-loop rate or None)
SCENARIOS = {
    "rank-10-cached": ({"rank": 1.0}, 10, False, 32, 100, None),
    "rank-10-cached-at-300": ({"rank": 1.0}, 10, False, 32, 63, 300.0),  # ~2,000 requests due in 6.7 s
    "rank-10-uncached": ({"rank": 1.0}, 10, True, 4, 3, None),
    "rank-1000-cached": ({"rank": 1.0}, 1000, False, 8, 5, None),
    "rank-1000-uncached": ({"rank": 1.0}, 1000, True, 1, 1, None),  # ~1,000 MiniLM passes: minutes here
    "choices": ({"choice": 1.0}, 10, False, 64, 50, None),
    "choices-at-500": ({"choice": 1.0}, 10, False, 64, 47, 500.0),  # ~3,000 requests due in 6 s
    "mixed-200x50": (MIXED, 10, False, 200, 50, None),  # issue 13's load shape (run once: 10,000 requests)
}


def server_cpu_s(proc) -> float:  # noqa: ANN001
    """CPU seconds (user + system) used so far by the server and its worker processes."""
    import psutil

    total = 0.0
    root = psutil.Process(proc.pid)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def corpus_texts(run: Path) -> tuple[list[dict], list[str], str]:
    """Questions and candidate answers: the run's page pool plus the built-in corpus answers."""
    from pluralign.data.builtin import load_corpus

    pool = json.loads((run / "pool.json").read_text())
    answers = sorted({item["response"] for item in load_corpus()})  # 1,280 SmolLM2 answers
    return pool["questions"], answers, pool["candidates"]["prompt"]


def model_time_ms(run: Path, prompt: str, candidates: list[str], n: int = 200) -> float:
    """Median time of Personalizer.score for one user and ``candidates`` (cached), in process."""
    from pluralign.serve.model import ServedModel

    served = ServedModel.load(str(run))
    state = served.personalizer.user([])
    served.score(prompt, candidates, [state])  # warm the cache
    times = []
    for _ in range(n):
        t = time.perf_counter()
        served.score(prompt, candidates, [state])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def run_backend(run: Path, db: str, workers: int, repeats: int, questions, answers, prompt) -> list[dict]:
    engine = make_engine(db)
    upgrade(engine)
    proc, url = spawn_server(run, db, port=free_port(), workers=workers, wait_s=600)
    rows = []
    try:
        for name, (mix, n_cand, fresh, clients, requests, rate) in SCENARIOS.items():
            if name == "rank-1000-uncached" and engine.dialect.name != "sqlite":
                continue  # the encoder's time, not the database's: measured once (on SQLite)
            for rep in range(repeats if name not in ("rank-1000-uncached", "mixed-200x50") else 1):
                tenant = f"bench-{name}-{rep}-{os.getpid()}"
                key = auth.create_key(engine, tenant)
                cands = answers[:n_cand]
                cfg = LoadConfig(questions=questions, candidates=cands, prompt=prompt, n_clients=clients,
                                 n_requests=requests, mix=mix, fresh_candidates=fresh, rate=rate, timeout=600)
                if not fresh:  # warm: embeddings cached before timing
                    asyncio.run(run_load(url, key, LoadConfig(questions=questions, candidates=cands, prompt=prompt,
                                                              n_clients=1, n_requests=1, mix={"rank": 1.0})))
                cpu0, client0 = server_cpu_s(proc), time.process_time()
                report = asyncio.run(run_load(url, key, cfg))
                cpu1, client1 = server_cpu_s(proc), time.process_time()
                s = report.summary()
                n_req = sum(s[k]["n"] for k in mix if k in s)  # the users' creation not counted
                cpu_ms = 1000 * (cpu1 - cpu0) / max(1, n_req)
                problems = verify_choices(engine, tenant, report) if "choice" in mix else None
                for kind in [k for k in ("rank", "choice", "next") if k in mix] + (["all"] if len(mix) > 1 else []):
                    row = {"backend": engine.dialect.name, "scenario": name, "kind": kind, "repeat": rep,
                           "clients": clients, "rate": rate, "requests": s[kind]["n"], "seconds": report.seconds,
                           **{k: s[kind][k] for k in ("rps", "p50_ms", "p99_ms", "n_5xx", "n_errors")},
                           # CPU per request (all kinds of the scenario together): what the
                           # machine's load changes least
                           "server_cpu_ms_per_req": cpu_ms,
                           "client_cpu_ms_per_req": 1000 * (client1 - client0) / max(1, n_req),
                           "loadavg_1min": os.getloadavg()[0]}
                    if problems is not None and kind in ("choice", "all"):
                        row["lost_or_duplicated"] = len(problems)
                        row["acknowledged"] = len(report.acked)
                    rows.append(row)
                    print(f"{row['backend']:10s} {name:22s} {kind:6s} #{rep} {row['requests']:5d} req  "
                          f"{row['rps']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms  p99 {row['p99_ms']:8.1f} ms  "
                          f"5xx {row['n_5xx']} err {row['n_errors']}  server CPU {cpu_ms:.2f} ms/req  "
                          f"client CPU {row['client_cpu_ms_per_req']:.2f}  load {row['loadavg_1min']:.1f}"
                          + (f"  lost/dup {row['lost_or_duplicated']}" if "lost_or_duplicated" in row else ""),
                          flush=True)
        # one client, one request at a time: the latency floor of a ranking through HTTP
        key = auth.create_key(engine, f"bench-seq-{os.getpid()}")
        cands = answers[:10]
        seq = asyncio.run(run_load(url, key, LoadConfig(questions=questions, candidates=cands, prompt=prompt,
                                                        n_clients=1, n_requests=200, mix={"rank": 1.0})))
        rows.append({"backend": engine.dialect.name, "scenario": "rank-10-sequential", "repeat": 0, "clients": 1,
                     **{k: seq.summary()["rank"][k] for k in ("rps", "p50_ms", "p99_ms", "n_5xx")}})
        print(f"{engine.dialect.name:10s} rank-10-sequential     p50 {rows[-1]['p50_ms']:.1f} ms", flush=True)
    finally:
        stop_server(proc)
        engine.dispose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/serve-demo"))
    ap.add_argument("--pg", default=os.environ.get("PLURALIGN_TEST_PG_URL"), help="PostgreSQL URL (optional)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="scenario names to run (default: all)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/serve_load.json"))
    args = ap.parse_args()
    # a SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the servers started are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.only:
        for name in list(SCENARIOS):
            if name not in args.only:
                del SCENARIOS[name]
    questions, answers, prompt = corpus_texts(args.run)
    model_ms = model_time_ms(args.run, prompt, answers[:10])
    print(f"model alone (Personalizer.score, 10 cached candidates, 1 user): {model_ms:.2f} ms", flush=True)
    rows: list[dict] = []

    def save() -> None:  # after each backend, so a stopped run keeps what it measured
        load = os.getloadavg()
        doc = {"workers": args.workers, "cpu_count": os.cpu_count(), "loadavg_after": load,
               "model_score_ms": model_ms, "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"load average: {load[0]:.1f} (1 min) on {os.cpu_count()} cores; wrote {args.out}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        rows += run_backend(args.run, f"sqlite:///{tmp}/bench.sqlite", args.workers, args.repeats,
                            questions, answers, prompt)
    save()
    if args.pg:
        rows += run_backend(args.run, args.pg, args.workers, args.repeats, questions, answers, prompt)
        save()


if __name__ == "__main__":
    main()
