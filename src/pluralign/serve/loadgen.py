"""Load against a running service (loopback only) and the checks that follow it: used by the
load and kill -9 tests and by ``benchmarks/serve_load.py``.

Each simulated client is one user: it creates itself, then sends ``n_requests`` requests drawn
from a mix of posting choices, ranking and asking for the next question. Every choice carries a
unique ``Idempotency-Key``; the report keeps the choices the server acknowledged (a 201) and the
ones whose outcome is unknown (a connection error), which a client would retry with the same key.
:func:`verify_choices` then checks the database: every acknowledged choice is there exactly once.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .db import Choice, Tenant, User
from .loadclient import Connection


@dataclass
class LoadConfig:
    """n_clients concurrent users x n_requests each; ``mix`` weights request kinds;
    ``fresh_candidates``: every rank request gets new candidate texts (uncached embeddings).

    ``rate`` None: closed loop, each client sends its next request when the last is answered
    (throughput is what the server sustains, latency grows with n_clients). ``rate`` R: open
    loop, the requests of all clients are due at R per second in total, and a latency counts
    from when the request was due, so a request that waited for its client's previous one
    (the server fell behind) counts that wait too."""

    questions: Sequence[dict[str, str]]
    candidates: Sequence[str]
    prompt: str = ""
    n_clients: int = 200
    n_requests: int = 50
    mix: dict[str, float] = field(default_factory=lambda: {"choice": 0.4, "rank": 0.4, "next": 0.2})
    fresh_candidates: bool = False
    rate: float | None = None
    seed: int = 0
    timeout: float = 60.0
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


@dataclass
class LoadReport:
    seconds: float = 0.0
    outcomes: list[tuple[str, int, float]] = field(default_factory=list)  # kind, status (-1: error), s
    acked: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (user, key) -> body
    unknown: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # no answer received
    errors: Counter = field(default_factory=Counter)  # connection errors by type

    def summary(self) -> dict[str, dict[str, float]]:
        """Per request kind (and ``all``, every kind but the clients' creation of their user):
        count, requests/s over the run, p50/p99 latency (ms) of answered requests, 5xx and
        connection-error counts."""
        out = {}
        kinds = sorted({k for k, _, _ in self.outcomes})
        for kind in kinds + ["all"]:
            rows = [o for o in self.outcomes if o[0] == kind or (kind == "all" and o[0] != "user")]
            lat = sorted(s for _, st, s in rows if st > 0)
            out[kind] = {"n": len(rows), "rps": len(rows) / self.seconds if self.seconds else 0.0,
                         "p50_ms": 1000 * _quantile(lat, 0.5), "p99_ms": 1000 * _quantile(lat, 0.99),
                         "n_5xx": sum(st >= 500 for _, st, _ in rows),
                         "n_errors": sum(st < 0 for _, st, _ in rows)}
        return out

    def statuses(self) -> Counter:
        return Counter(st for _, st, _ in self.outcomes)


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


async def _client(http: Connection, i: int, cfg: LoadConfig, report: LoadReport, stop: asyncio.Event | None,
                  go: "_Start") -> None:
    rng = random.Random(cfg.seed * 1_000_003 + i)
    user = f"load-{cfg.run_id}-{i}"
    kinds, weights = zip(*cfg.mix.items())
    due: float | None = None

    async def call(kind: str, method: str, path: str, body: Any = None,
                   headers: dict | None = None) -> Any:
        start = time.perf_counter() if due is None else due
        try:
            r = await http.request(method, path, body, headers)
        except Exception as err:  # noqa: BLE001 - connection refused/reset: the server is down
            report.errors[f"{type(err).__name__}: {err}"[:200]] += 1
            report.outcomes.append((kind, -1, time.perf_counter() - start))
            return None
        report.outcomes.append((kind, r.status_code, time.perf_counter() - start))
        return r

    await call("user", "PUT", f"/v1/users/{user}")
    t0 = await go.wait()
    for j in range(cfg.n_requests):
        if stop is not None and stop.is_set():
            return
        if cfg.rate:  # open loop: request j of client i is due at its slot in the schedule
            due = t0 + (j * cfg.n_clients + i) / cfg.rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        kind = rng.choices(kinds, weights)[0]
        if kind == "choice":
            q = cfg.questions[rng.randrange(len(cfg.questions))]
            a, b = (q["a"], q["b"]) if rng.random() < 0.5 else (q["b"], q["a"])
            body, key = {"prompt": q["prompt"], "chosen": a, "rejected": b}, f"{cfg.run_id}-{i}-{j}"
            r = await call(kind, "POST", f"/v1/users/{user}/choices", body, {"Idempotency-Key": key})
            if r is not None and r.status_code == 201:
                report.acked[(user, key)] = body
            elif r is None or r.status_code >= 500:
                report.unknown[(user, key)] = body
        elif kind == "rank":
            cands = list(cfg.candidates)
            if cfg.fresh_candidates:
                cands = [f"{c} ({cfg.run_id}-{i}-{j})" for c in cands]
            await call(kind, "POST", f"/v1/users/{user}/rank", {"prompt": cfg.prompt, "candidates": cands})
        else:
            await call(kind, "POST", f"/v1/users/{user}/next-question", {"pool": list(cfg.questions)})


class _Start:
    """The clients' common start: each creates its user, then all start together (the
    open-loop schedule counts from here)."""

    def __init__(self, n: int) -> None:
        self.left, self.event, self.t0 = n, asyncio.Event(), 0.0

    async def wait(self) -> float:
        self.left -= 1
        if self.left == 0:
            self.t0 = time.perf_counter()
            self.event.set()
        await self.event.wait()
        return self.t0


async def run_load(url: str, key: str, cfg: LoadConfig, stop: asyncio.Event | None = None) -> LoadReport:
    """Run the load against ``url`` (must be loopback) and return what happened; ``seconds``
    counts from the common start (after every client created its user) to the last answer."""
    if not url.startswith(("http://127.0.0.1", "http://localhost", "http://[::1]")):
        raise ValueError(f"load runs against loopback only, got {url}")
    report = LoadReport()
    conns = [Connection(url, {"Authorization": f"Bearer {key}"}, timeout=cfg.timeout) for _ in range(cfg.n_clients)]
    go = _Start(cfg.n_clients)
    try:
        await asyncio.gather(*(_client(conns[i], i, cfg, report, stop, go) for i in range(cfg.n_clients)))
        report.seconds = time.perf_counter() - go.t0
    finally:
        for c in conns:
            c.close()
    return report


async def retry_unknown(url: str, key: str, report: LoadReport) -> None:
    """Re-send the choices that got no answer, with their original idempotency keys (what a
    client does after an outage); the acknowledged ones move to ``report.acked``."""
    import httpx

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
        for (user, idem), body in list(report.unknown.items()):
            r = await http.post(f"/v1/users/{user}/choices", json=body, headers={"Idempotency-Key": idem})
            if r.status_code == 201:
                report.acked[(user, idem)] = body
                del report.unknown[(user, idem)]


def verify_choices(engine: Engine, tenant: str, report: LoadReport) -> list[str]:
    """Problems found in the database after a load (empty when all is well): every acknowledged
    choice stored exactly once with the body that was sent, no key stored twice, each user's
    sequence numbers 0..n-1 without gaps and their counts matching."""
    problems: list[str] = []
    users = {u for u, _ in report.acked} | {u for u, _ in report.unknown}
    with Session(engine) as s:
        tenant_id = s.scalar(select(Tenant.id).where(Tenant.name == tenant))
        rows = s.execute(select(User.external_id, Choice.idempotency_key, Choice.seq, Choice.prompt, Choice.chosen,
                                Choice.rejected).join(Choice, Choice.user_id == User.id)
                         .where(User.tenant_id == tenant_id, User.external_id.in_(users))).all()
        counts = dict(s.execute(select(User.external_id, User.n_choices)
                                .where(User.tenant_id == tenant_id, User.external_id.in_(users))).all())
        stored_n = dict(s.execute(select(User.external_id, func.count(Choice.id)).join(Choice)
                                  .where(User.tenant_id == tenant_id, User.external_id.in_(users))
                                  .group_by(User.external_id)).all())
    by_key = Counter((u, k) for u, k, *_ in rows)
    body_of = {(u, k): {"prompt": p, "chosen": c, "rejected": r} for u, k, _, p, c, r in rows}
    for key, n in by_key.items():
        if n != 1:
            problems.append(f"choice {key} stored {n} times")
    for key, body in report.acked.items():
        if by_key.get(key, 0) != 1:
            problems.append(f"acknowledged choice {key} stored {by_key.get(key, 0)} times")
        elif body_of[key] != body:
            problems.append(f"acknowledged choice {key} stored as {body_of[key]}, sent {body}")
    seqs: dict[str, list[int]] = {}
    for u, _, seq, *_ in rows:
        seqs.setdefault(u, []).append(seq)
    for u, got in seqs.items():
        if sorted(got) != list(range(len(got))):
            problems.append(f"user {u}: sequence numbers {sorted(got)[:10]}... have gaps or repeats")
        if counts.get(u) != stored_n.get(u):
            problems.append(f"user {u}: n_choices {counts.get(u)} but {stored_n.get(u)} rows")
    return problems


def spawn_server(run: str | os.PathLike, db: str, *, port: int, workers: int = 1, pythonpath: str | None = None,
                 wait_s: float = 600.0) -> tuple[subprocess.Popen, str]:
    """Start ``pluralign serve RUN --db DB`` on 127.0.0.1:``port`` in its own process group (so
    a test can kill -9 the server and all its workers at once); returns (process, url) once
    /healthz answers. Its output goes to ``process.log_path``."""
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + os.environ.get("PYTHONPATH", "")
    log = tempfile.NamedTemporaryFile(prefix="pluralign-serve-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "pluralign.cli", "serve", str(run), "--db", db,
                             "--port", str(port), "--workers", str(workers)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log_path = log.name  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise RuntimeError(f"server did not answer /healthz within {wait_s:.0f} s")


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (SIGKILL after 20 s)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
