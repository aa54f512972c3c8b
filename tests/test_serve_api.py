"""The service's HTTP contract (issue 13) against SQLite and, when a cluster is given
(``PLURALIGN_TEST_PG_URL``, which ``.ci/run`` always sets), PostgreSQL."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from pluralign.serve import auth  # noqa: E402
from pluralign.serve.app import create_app  # noqa: E402
from pluralign.serve.db import Choice, make_engine  # noqa: E402
from pluralign.serve.migrate import current, head, upgrade  # noqa: E402
from pluralign.serve.model import ServedModel  # noqa: E402
from serve_support import CANDIDATES, LONG, PROMPTS, SHORT, fresh_pg_database, require, shared_text_run  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> ServedModel:
    return ServedModel.load(str(shared_text_run(tmp_path_factory)))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serve.sqlite'}"
    return fresh_pg_database(require("PLURALIGN_TEST_PG_URL"))


@pytest.fixture
def api(served, db_url):
    app = create_app(served, db_url)
    engine = app.state.engine
    keys = {t: auth.create_key(engine, t) for t in ("acme", "globex")}
    with TestClient(app) as client:
        client.engine = engine
        client.keys = keys
        client.h = {t: {"Authorization": f"Bearer {k}"} for t, k in keys.items()}
        yield client
    engine.dispose()


def choice(i: int, short_wins: bool = True) -> dict:
    a, b = (SHORT[i], LONG[i]) if short_wins else (LONG[i], SHORT[i])
    return {"prompt": PROMPTS[i], "chosen": a, "rejected": b}


def stored_choices(engine, **where) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(Choice).filter_by(**where))


def test_choices_are_appended_in_order_and_counted(api):
    h = api.h["acme"]
    r = api.post("/v1/users/alice/choices", json=choice(0), headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["n_choices"] == 1 and r.json()["choice"]["seq"] == 0 and not r.json()["replayed"]
    r = api.post("/v1/users/alice/choices", json=choice(1, short_wins=False), headers=h)
    assert r.json()["n_choices"] == 2 and r.json()["choice"]["seq"] == 1
    listed = api.get("/v1/users/alice/choices", headers=h).json()
    assert [c["chosen"] for c in listed["choices"]] == [SHORT[0], LONG[1]]
    assert api.get("/v1/users/alice", headers=h).json()["n_choices"] == 2


def test_idempotency_key_counts_a_retried_post_once_even_concurrently(api):
    h = {**api.h["acme"], "Idempotency-Key": "retry-1"}
    results: list = []

    def post() -> None:
        results.append(api.post("/v1/users/bob/choices", json=choice(2), headers=h))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {r.status_code for r in results} == {201}
    assert {r.json()["choice"]["seq"] for r in results} == {0}
    assert sum(not r.json()["replayed"] for r in results) == 1
    assert stored_choices(api.engine) == 1
    again = api.post("/v1/users/bob/choices", json=choice(3), headers=h)
    assert again.status_code == 409 and "Idempotency-Key" in again.json()["detail"]


def test_undo_tombstones_the_last_choice(api):
    h = api.h["acme"]
    for i in range(3):
        api.post("/v1/users/carol/choices", json=choice(i), headers=h)
    r = api.post("/v1/users/carol/choices/undo", headers=h)
    assert r.status_code == 200 and r.json()["undone"]["seq"] == 2 and r.json()["n_choices"] == 2
    assert [c["seq"] for c in api.get("/v1/users/carol/choices", headers=h).json()["choices"]] == [0, 1]
    every = api.get("/v1/users/carol/choices?include_undone=true", headers=h).json()["choices"]
    assert [c["undone"] for c in every] == [False, False, True]
    assert stored_choices(api.engine) == 3  # append-only: the undone row stays, marked
    api.post("/v1/users/carol/choices/undo", headers=h)
    api.post("/v1/users/carol/choices/undo", headers=h)
    r = api.post("/v1/users/carol/choices/undo", headers=h)
    assert r.status_code == 409 and "no choice" in r.json()["detail"]


def test_delete_forgets_the_user_and_every_choice(api):
    h = api.h["acme"]
    for i in range(2):
        api.post("/v1/users/dave/choices", json=choice(i), headers=h)
    api.post("/v1/users/erin/choices", json=choice(0), headers=h)
    r = api.delete("/v1/users/dave", headers=h)
    assert r.status_code == 200 and r.json()["deleted_choices"] == 2
    assert api.get("/v1/users/dave/choices", headers=h).status_code == 404
    assert stored_choices(api.engine) == 1  # erin's
    assert api.delete("/v1/users/dave", headers=h).status_code == 404


def test_rank_is_the_personalizers_ranking_for_the_users_choices(api, served):
    h = api.h["acme"]
    api.put("/v1/users/fay", headers=h)
    cold = api.post("/v1/users/fay/rank", json={"prompt": PROMPTS[0], "candidates": CANDIDATES}, headers=h)
    assert cold.status_code == 200, cold.text
    for i in range(3):
        api.post("/v1/users/fay/choices", json=choice(i, short_wins=False), headers=h)
    r = api.post("/v1/users/fay/rank", json={"prompt": PROMPTS[0], "candidates": CANDIDATES}, headers=h).json()
    assert r["n_choices"] == 3 and r["model"] == "np-btl"
    state = served.personalizer.user([choice(i, short_wins=False) for i in range(3)])
    expected = served.personalizer.rank(PROMPTS[0], CANDIDATES, state)
    assert [x["index"] for x in r["ranking"]] == [x.index for x in expected]
    assert [x["score"] for x in r["ranking"]] == pytest.approx([x.score for x in expected], abs=1e-5)
    assert sorted(x["candidate"] for x in r["ranking"]) == sorted(CANDIDATES)


def test_z_is_cached_per_user_and_a_new_choice_invalidates_it(api, served):
    h = api.h["acme"]
    api.post("/v1/users/gus/choices", json=choice(0), headers=h)
    first = api.post("/v1/users/gus/personalize", headers=h).json()
    hits = served.z_cache.hits
    assert api.post("/v1/users/gus/personalize", headers=h).json()["z"] == first["z"]
    assert served.z_cache.hits > hits
    api.post("/v1/users/gus/choices", json=choice(1, short_wins=False), headers=h)
    second = api.post("/v1/users/gus/personalize", headers=h).json()
    assert second["revision"] == first["revision"] + 1 and second["n_choices"] == 2
    recomputed = served.personalizer.user([choice(0), choice(1, short_wins=False)]).z.reshape(-1).tolist()
    assert second["z"] == pytest.approx(recomputed, abs=1e-5) and second["z"] != first["z"]


def test_next_question_from_an_inline_or_registered_pool_skips_answered_pairs(api):
    h = api.h["acme"]
    pool = [{"prompt": PROMPTS[i], "a": SHORT[i], "b": LONG[i]} for i in range(3)]
    api.put("/v1/users/hal", headers=h)
    r = api.post("/v1/users/hal/next-question", json={"pool": pool}, headers=h)
    assert r.status_code == 200 and not r.json()["done"] and r.json()["method"] in ("random", "active")
    assert api.put("/v1/pools/starter", json={"questions": pool}, headers=h).status_code == 201
    seen = set()
    for _ in range(3):
        q = api.post("/v1/users/hal/next-question", json={"pool_id": "starter"}, headers=h).json()
        assert not q["done"] and q["index"] not in seen
        seen.add(q["index"])
        api.post("/v1/users/hal/choices", json={"prompt": q["prompt"], "chosen": q["b"], "rejected": q["a"]},
                 headers=h)
    assert api.post("/v1/users/hal/next-question", json={"pool_id": "starter"}, headers=h).json()["done"]
    assert api.post("/v1/users/hal/next-question", json={"pool_id": "nope"}, headers=h).status_code == 404


def test_a_key_sees_only_its_own_tenant(api):
    a, b = api.h["acme"], api.h["globex"]
    api.post("/v1/users/ivy/choices", json=choice(0), headers=a)
    api.put("/v1/pools/secret", json={"questions": [{"prompt": "p", "a": "x", "b": "y"}]}, headers=a)
    for method, path, body in [("get", "/v1/users/ivy", None), ("get", "/v1/users/ivy/choices", None),
                               ("post", "/v1/users/ivy/rank", {"candidates": ["x", "y"]}),
                               ("post", "/v1/users/ivy/personalize", None),
                               ("post", "/v1/users/ivy/choices/undo", None),
                               ("delete", "/v1/users/ivy", None), ("get", "/v1/pools/secret", None)]:
        r = api.request(method.upper(), path, json=body, headers=b)
        assert r.status_code == 404, (path, r.text)
        assert SHORT[0] not in r.text
    mine = api.post("/v1/users/ivy/choices", json=choice(1), headers=b).json()  # globex's own "ivy"
    assert mine["n_choices"] == 1
    theirs = api.get("/v1/users/ivy/choices", headers=a).json()
    assert [c["chosen"] for c in theirs["choices"]] == [SHORT[0]]


def test_health_metrics_and_docs(api):
    h = api.h["acme"]
    assert api.get("/healthz").json()["status"] == "ok"
    api.post("/v1/users/jo/choices", json=choice(0), headers=h)
    text = api.get("/metrics").text
    assert "pluralign_http_requests_total" in text and 'route="/v1/users/{user_id}/choices"' in text
    assert api.get("/docs").status_code == 200
    assert "/v1/users/{user_id}/rank" in api.get("/openapi.json").json()["paths"]


def test_migrations_reach_head_and_are_idempotent(api):
    assert current(api.engine) == head()
    upgrade(api.engine)
    assert current(api.engine) == head()


def test_revoked_key_is_refused(served, tmp_path):
    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    key = auth.create_key(engine, "acme")
    import pluralign.serve.app as app_module
    old, app_module.KEY_TTL = app_module.KEY_TTL, 0.0
    try:
        with TestClient(create_app(served, url, engine=engine)) as client:
            h = {"Authorization": f"Bearer {key}"}
            assert client.put("/v1/users/a", headers=h).status_code == 201
            assert auth.revoke_key(engine, key)
            assert client.put("/v1/users/a", headers=h).status_code == 401
    finally:
        app_module.KEY_TTL = old
        engine.dispose()


def counted(api, name: str, **labels: str) -> float:
    """The value of the Prometheus sample ``name`` with these labels (0 when absent)."""
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def rank_answers(api) -> dict[str, float]:
    return {p: counted(api, "pluralign_rank_answers_total", path=p) for p in ("fast", "route")} | {
        "requests": counted(api, "pluralign_http_requests_total", route="/v1/users/{user_id}/rank", status="200")}


def test_a_warm_rank_skips_the_router_and_answers_as_the_route_does(api):
    # fastpath.py: once the key is resolved and z cached, rank is answered before routing; the
    # answer must be the route's, byte for byte, and every error still the route's
    a, b = api.h["acme"], api.h["globex"]
    body = {"prompt": PROMPTS[1], "candidates": CANDIDATES}
    for i in range(2):
        api.post("/v1/users/kim/choices", json=choice(i, short_wins=False), headers=a)
    api.put("/v1/users/other", headers=b)  # globex's key resolved and cached too
    before = rank_answers(api)
    cold = api.post("/v1/users/kim/rank", json=body, headers={"Authorization": a["Authorization"].replace("Bearer", "bearer")})
    warm = api.post("/v1/users/kim/rank", json=body, headers=a)  # "bearer" (above) is left to the route
    after = rank_answers(api)
    assert cold.status_code == warm.status_code == 200
    assert warm.content == cold.content and warm.headers["content-type"] == "application/json"
    assert after["route"] - before["route"] == 1 and after["fast"] - before["fast"] == 1
    assert after["requests"] - before["requests"] == 2  # the fast answer is counted under the route's template

    # a chunked upload is read whole before the answer
    chunks = iter([b'{"prompt": ' + f'"{PROMPTS[1]}"'.encode() + b', "candidates": ',
                   str(CANDIDATES).replace("'", '"').encode() + b"}"])
    assert api.post("/v1/users/kim/rank", content=chunks, headers={**a, "Content-Type": "application/json"}).content \
        == cold.content

    # with the key and z warm, bad input still gets the route's errors, never another tenant's data
    for r, status, says in [
        (api.post("/v1/users/kim/rank", content=b"{nope", headers={**a, "Content-Type": "application/json"}),
         400, "malformed JSON"),
        (api.post("/v1/users/kim/rank", json={"prompt": "x", "candidates": []}, headers=a), 422, "candidates"),
        (api.post("/v1/users/kim/rank", json={"candidates": 3}, headers=a), 422, "candidates"),
        (api.post("/v1/users/kim/rank", content=b"candidates=x", headers={**a, "Content-Type": "text/plain"}),
         422, "body"),
        (api.post("/v1/users/kim/rank", json=body, headers=b), 404, "not found"),
        (api.post("/v1/users/nobody/rank", json=body, headers=a), 404, "not found"),
        (api.post("/v1/users/kim/rank", json=body, headers={"Authorization": "Bearer pa_wrong"}), 401, "invalid"),
        (api.post("/v1/users/kim/rank", json=body), 401, "missing API key"),
        (api.post("/v1/users/b%20d/rank", json=body, headers=a), 422, "user_id"),
    ]:
        assert r.status_code == status and says in r.json()["detail"], (status, r.text)
        assert LONG[1] not in r.text or status == 200
    assert rank_answers(api)["fast"] - before["fast"] == 2  # none of the errors came from the fast path


def test_a_deleted_users_z_is_never_served_to_a_later_user(api, served):
    # SQLite reuses the largest row id after a delete, and a new user's revision starts at 0 again:
    # the z cache must not hand the new user the z of the forgotten one
    h, other = api.h["acme"], api.h["globex"]
    api.post("/v1/users/gone/choices", json=choice(0, short_wins=False), headers=h)
    forgotten = api.post("/v1/users/gone/personalize", headers=h).json()["z"]
    assert api.delete("/v1/users/gone", headers=h).status_code == 200
    for headers, user in ((other, "newcomer"), (h, "gone")):  # another tenant's user; the same id again
        api.post(f"/v1/users/{user}/choices", json=choice(2), headers=headers)
        z = api.post(f"/v1/users/{user}/personalize", headers=headers).json()["z"]
        assert z == pytest.approx(served.personalizer.user([choice(2)]).z.reshape(-1).tolist(), abs=1e-5)
        assert z != pytest.approx(forgotten, abs=1e-5)
        api.delete(f"/v1/users/{user}", headers=headers)
