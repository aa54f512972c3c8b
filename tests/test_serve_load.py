"""Load and faults against a real server process on loopback (issue 13): concurrent clients mixing
choices, rank and next-question give no 5xx and every acknowledged choice is stored exactly once;
kill -9 in the middle of the load, restart, and nothing acknowledged is lost or duplicated and
each user's z equals a recomputation from the stored choices. Sizes are the CI ones (bounded);
``benchmarks/serve_load.py`` runs the full 200 x 50."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

pytest.importorskip("fastapi")
import httpx  # noqa: E402

from pluralign.serve import auth  # noqa: E402
from pluralign.serve.db import make_engine  # noqa: E402
from pluralign.serve.loadgen import LoadConfig, retry_unknown, run_load, stop_server, verify_choices  # noqa: E402
from pluralign.serve.migrate import upgrade  # noqa: E402
from pluralign.serve.model import ServedModel  # noqa: E402
from serve_support import (CANDIDATES, LONG, PROMPTS, SHORT, fresh_pg_database, process_server, require,  # noqa: E402
                           shared_text_run)

pytestmark = pytest.mark.slow
QUESTIONS = [{"prompt": p, "a": s, "b": lg} for p, s, lg in zip(PROMPTS, SHORT, LONG)]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'load.sqlite'}"
    return fresh_pg_database(require("PLURALIGN_TEST_PG_URL"))


def tenant_key(db: str) -> tuple:
    engine = make_engine(db)
    upgrade(engine)
    return engine, auth.create_key(engine, "load")


def test_mixed_load_has_no_5xx_and_stores_every_acknowledged_choice_once(tmp_path_factory, db_url):
    run = shared_text_run(tmp_path_factory)
    engine, key = tenant_key(db_url)
    proc, url = process_server(run, db_url, workers=2)
    try:
        cfg = LoadConfig(questions=QUESTIONS, candidates=CANDIDATES, prompt=PROMPTS[0], n_clients=40,
                         n_requests=10)
        report = asyncio.run(run_load(url, key, cfg))
    finally:
        stop_server(proc)
    summary = report.summary()
    print(f"\n{db_url.split(':')[0]}: {summary['all']['n']} requests in {report.seconds:.1f} s: "
          + "; ".join(f"{k} {v['rps']:.0f}/s p50 {v['p50_ms']:.0f} ms p99 {v['p99_ms']:.0f} ms"
                      for k, v in summary.items()))
    assert set(report.statuses()) <= {200, 201}, report.statuses()
    assert len(report.acked) > 50 and not report.unknown
    assert verify_choices(engine, "load", report) == []
    engine.dispose()


def test_kill_9_mid_load_loses_and_duplicates_nothing(tmp_path_factory, db_url):
    run = shared_text_run(tmp_path_factory)
    engine, key = tenant_key(db_url)
    proc, url = process_server(run, db_url)
    cfg = LoadConfig(questions=QUESTIONS, candidates=CANDIDATES, prompt=PROMPTS[0], n_clients=30,
                     n_requests=30, mix={"choice": 0.7, "rank": 0.2, "next": 0.1}, timeout=10)
    result = {}
    loader = threading.Thread(target=lambda: result.setdefault("report", asyncio.run(run_load(url, key, cfg))))
    try:
        loader.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill once the load is well under way
            time.sleep(0.1)
            with engine.connect() as conn:
                if conn.exec_driver_sql("SELECT count(*) FROM choices").scalar() >= 40:
                    break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        loader.join(timeout=120)
        report = result["report"]
        assert report.unknown or any(st < 0 for _, st, _ in report.outcomes), "the kill hit no request"
        proc, url = process_server(run, db_url)
        asyncio.run(retry_unknown(url, key, report))
        assert not report.unknown
        assert verify_choices(engine, "load", report) == []
        served = ServedModel.load(str(run))
        h = {"Authorization": f"Bearer {key}"}
        users = sorted({u for u, _ in report.acked})[:8]
        with httpx.Client(base_url=url, headers=h, timeout=60) as client:
            for user in users:
                stored = client.get(f"/v1/users/{user}/choices").json()["choices"]
                z = client.post(f"/v1/users/{user}/personalize").json()["z"]
                again = served.personalizer.user([{k: c[k] for k in ("prompt", "chosen", "rejected")}
                                                  for c in stored])
                assert z == pytest.approx(again.z.reshape(-1).tolist(), abs=1e-5), user
    finally:
        stop_server(proc)
        engine.dispose()
