"""Where a served ranking's time goes: the model (``Personalizer.score`` through the service's
lock, embedding-cache lookups included), the database (user lookup, z cache), and the rest
(routing, auth, validation, JSON); the in-process HTTP client's time is shown apart.

    python benchmarks/serve_profile.py --run runs/serve-demo [--n 300] [--candidates 10]

One client, one request at a time, in process (httpx's ASGI transport: no sockets), 10 cached
candidates (``--candidates``; past the built-in corpus's answers, numbered variants of them);
timers wrap the service's own functions and count CPU time (thread / process), not wall time,
so a shared machine's preemption does not inflate them. A cached rank runs entirely on
the event loop's thread, so the parts add up to the whole.
"""

from __future__ import annotations

import argparse
import os
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from pluralign.data.builtin import load_corpus
from pluralign.serve import auth, store
from pluralign.serve import app as serve_app
from pluralign.serve.app import create_app
from pluralign.serve.fastpath import FastRank
from pluralign.serve.model import ServedModel
from pluralign.serve.schemas import RankIn


def timed(fn, bucket: list[float]):  # noqa: ANN001, ANN201
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        t = time.thread_time()  # CPU time of this thread: what the machine's sharing does not inflate
        try:
            return fn(*args, **kwargs)
        finally:
            bucket.append(time.thread_time() - t)
    return wrapper


def timed_async(fn, bucket: list[float]):  # noqa: ANN001, ANN201
    async def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        t = time.thread_time()  # one client at a time: the awaited model runs on this thread too
        try:
            return await fn(*args, **kwargs)
        finally:
            bucket.append(time.thread_time() - t)
    return wrapper


def _profiled(go):  # noqa: ANN001, ANN202 - PROFILE=1: where the event-loop thread spends its time
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    out = asyncio.run(go())
    prof.disable()
    pstats.Stats(prof).sort_stats(os.environ.get("PROFILE_SORT", "tottime")).print_stats(int(os.environ.get("PROFILE_N", "15")))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/serve-demo"))
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--candidates", type=int, default=10, help="candidates a ranking (embedded once, then cached)")
    args = ap.parse_args()
    served = ServedModel.load(str(args.run))
    model_t: list[float] = []
    db_t: list[float] = []
    served.score = timed(served.score, model_t)  # the batcher calls this
    store.get_user = timed(store.get_user, db_t)
    store.choice_texts = timed(store.choice_texts, db_t)
    body_t: list[float] = []
    answer_t: list[float] = []
    RankIn.model_validate_json = timed(RankIn.model_validate_json, body_t)  # the fast path's body
    serve_app.json_bytes = timed(serve_app.json_bytes, answer_t)  # the answer's JSON encoding
    app = create_app(served, f"sqlite:///{tempfile.mkdtemp()}/profile.sqlite")
    key = auth.create_key(app.state.engine, "profile")
    handle_t: list[float] = []  # the fast path's handler: everything but the ASGI layers around it
    fast = next(m for m in app.user_middleware if m.cls is FastRank)
    fast.kwargs["handle"] = timed_async(fast.kwargs["handle"], handle_t)
    prompt = json.loads((args.run / "pool.json").read_text())["candidates"]["prompt"]
    answers = sorted({i["response"] for i in load_corpus()})
    candidates = [answers[i % len(answers)] + ("" if i < len(answers) else f" ({i // len(answers)})")
                  for i in range(args.candidates)]
    body = {"prompt": prompt, "candidates": candidates}

    server_t: list[float] = []

    async def served_app(scope, receive, send):  # noqa: ANN001, ANN202 - the server's own CPU time
        t = time.thread_time()
        try:
            await app(scope, receive, send)
        finally:
            server_t.append(time.thread_time() - t)

    async def go() -> list[float]:
        transport = httpx.ASGITransport(app=served_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve",
                                     headers={"Authorization": f"Bearer {key}"}) as client:
            await client.post("/v1/users/u/choices", json={"prompt": prompt, "chosen": body["candidates"][0],
                                                           "rejected": body["candidates"][1]})
            for _ in range(20):  # warm: embeddings, z cache, code paths
                await client.post("/v1/users/u/rank", json=body)
            for bucket in (model_t, db_t, server_t, body_t, answer_t, handle_t):
                bucket.clear()
            out = []
            for _ in range(args.n):
                t = time.process_time()
                r = await client.post("/v1/users/u/rank", json=body)
                out.append(time.process_time() - t)
                assert r.status_code == 200
            return out

    total = asyncio.run(go()) if not os.environ.get("PROFILE") else _profiled(go)
    med = lambda xs: 1000 * statistics.median(xs)  # noqa: E731
    db_per_req = 1000 * sum(db_t) / args.n
    server, model = med(server_t), med(model_t)
    print(f"{args.n} sequential ranks of {args.candidates} cached candidates, in process (median CPU ms per request):")
    print(f"  request and client {med(total):6.2f}   (the in-process httpx client included)")
    print(f"  server             {server:6.2f}   (the app: everything from the ASGI call to the answer)")
    print(f"  model              {model:6.2f}   (Personalizer.score: embedding-cache lookups + forward pass)"
          f"  {100 * model / server:.0f} % of the server")
    print(f"  database           {db_per_req:6.2f}   (user lookup; z comes from the cache)"
          f"  {100 * db_per_req / server:.0f} %")
    rest = server - model - db_per_req
    print(f"  request handling   {rest:6.2f}   (the rest: ASGI, auth, validation, JSON)  {100 * rest / server:.0f} %")
    # per request (one fast-path call each once warm), then the median, as for the server
    outside = med([a - b for a, b in zip(server_t, handle_t)]) if len(handle_t) == len(server_t) else float("nan")
    for name, part in (("reading the body", 1000 * sum(body_t) / args.n),
                       ("encoding the answer", 1000 * sum(answer_t) / args.n),
                       ("the ASGI stack", outside)):  # middleware, body receive and send: FastAPI's part
        print(f"    of which {name:<20} {part:5.2f}  {100 * part / server:.0f} %")


if __name__ == "__main__":
    main()
