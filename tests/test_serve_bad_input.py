"""Bad input gets a 4xx with a message that says what is wrong, never a 500, never another
tenant's data (issue 13, "Reliability and security")."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from pluralign.serve import auth  # noqa: E402
from pluralign.serve.app import create_app  # noqa: E402
from pluralign.serve.guards import MAX_BODY  # noqa: E402
from pluralign.serve.model import ServedModel  # noqa: E402
from serve_support import LONG, PROMPTS, SHORT, shared_text_run  # noqa: E402

GOOD = {"prompt": PROMPTS[0], "chosen": SHORT[0], "rejected": LONG[0]}
SECRET = "only-acme-knows-this-answer"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    served = ServedModel.load(str(shared_text_run(tmp_path_factory)))
    app = create_app(served, f"sqlite:///{tmp_path_factory.mktemp('bad') / 's.sqlite'}")
    keys = {t: auth.create_key(app.state.engine, t) for t in ("acme", "globex")}
    with TestClient(app, raise_server_exceptions=False) as client:
        client.h = {t: {"Authorization": f"Bearer {k}"} for t, k in keys.items()}
        r = client.post("/v1/users/alice/choices", json={**GOOD, "chosen": SECRET}, headers=client.h["acme"])
        assert r.status_code == 201
        yield client


# (name, method, path, body: dict | bytes | None, extra headers, tenant or None, status, words in detail)
CASES = [
    ("malformed JSON", "POST", "/v1/users/alice/choices", b'{"prompt": "x", ', {}, "acme", 400, "malformed JSON"),
    ("not an object", "POST", "/v1/users/alice/choices", b"[1, 2]", {}, "acme", 422, "valid dictionary"),
    ("wrong type", "POST", "/v1/users/alice/choices", {**GOOD, "chosen": 3}, {}, "acme", 422, "chosen"),
    ("missing field", "POST", "/v1/users/alice/choices", {"prompt": "x", "chosen": "a"}, {}, "acme", 422,
     "rejected: Field required"),
    ("unknown field", "POST", "/v1/users/alice/choices", {**GOOD, "score": 1}, {}, "acme", 422, "score"),
    ("same answers", "POST", "/v1/users/alice/choices", {**GOOD, "rejected": GOOD["chosen"]}, {}, "acme", 422,
     "same text"),
    ("empty answer", "POST", "/v1/users/alice/choices", {**GOOD, "chosen": ""}, {}, "acme", 422, "chosen"),
    ("long idempotency key", "POST", "/v1/users/alice/choices", GOOD, {"Idempotency-Key": "k" * 300}, "acme",
     422, "idempotency-key"),
    ("bad user id", "POST", "/v1/users/a%20b/choices", GOOD, {}, "acme", 422, "user_id"),
    ("oversize body", "POST", "/v1/users/alice/choices", {**GOOD, "prompt": "x" * (MAX_BODY + 10)}, {}, "acme",
     413, "too large"),
    ("oversize text", "POST", "/v1/users/alice/choices", {**GOOD, "prompt": "x" * 20_001}, {}, "acme", 422,
     "prompt"),
    ("blank candidate", "POST", "/v1/users/alice/rank", {"candidates": ["a", "  \n"]}, {}, "acme", 422,
     "candidates.1: value error, must not be empty"),
    ("NUL in prompt", "POST", "/v1/users/alice/choices", {**GOOD, "prompt": "a\u0000b"}, {}, "acme", 422, "NUL"),
    ("blank answer", "POST", "/v1/users/alice/choices", {**GOOD, "chosen": " "}, {}, "acme", 422, "chosen"),
    ("no candidates", "POST", "/v1/users/alice/rank", {"candidates": []}, {}, "acme", 422, "candidates"),
    ("candidate not text", "POST", "/v1/users/alice/rank", {"candidates": ["a", None]}, {}, "acme", 422,
     "candidates.1"),
    ("too many candidates", "POST", "/v1/users/alice/rank", {"candidates": ["a"] * 5000}, {}, "acme", 422,
     "candidates"),
    ("pool and pool_id", "POST", "/v1/users/alice/next-question",
     {"pool": [{"prompt": "p", "a": "x", "b": "y"}], "pool_id": "p"}, {}, "acme", 422, "exactly one"),
    ("neither pool", "POST", "/v1/users/alice/next-question", {}, {}, "acme", 422, "exactly one"),
    ("unknown pool", "POST", "/v1/users/alice/next-question", {"pool_id": "nope"}, {}, "acme", 404, "pool"),
    ("unknown user rank", "POST", "/v1/users/nobody/rank", {"candidates": ["a", "b"]}, {}, "acme", 404,
     "not found"),
    ("unknown user choices", "GET", "/v1/users/nobody/choices", None, {}, "acme", 404, "not found"),
    ("unknown user undo", "POST", "/v1/users/nobody/choices/undo", None, {}, "acme", 404, "not found"),
    ("other tenant's user", "GET", "/v1/users/alice/choices", None, {}, "globex", 404, "not found"),
    ("other tenant's rank", "POST", "/v1/users/alice/rank", {"candidates": ["a", "b"]}, {}, "globex", 404,
     "not found"),
    ("other tenant's delete", "DELETE", "/v1/users/alice", None, {}, "globex", 404, "not found"),
    ("missing key", "GET", "/v1/users/alice/choices", None, {}, None, 401, "missing API key"),
    ("wrong key", "GET", "/v1/users/alice/choices", None, {"Authorization": "Bearer pa_wrong"}, None, 401,
     "invalid API key"),
    ("not bearer", "GET", "/v1/users/alice/choices", None, {"Authorization": "Basic abc"}, None, 401, "API key"),
    ("bad include_undone", "GET", "/v1/users/alice/choices?include_undone=maybe", None, {}, "acme", 422,
     "include_undone"),
    ("bad pool", "PUT", "/v1/pools/p1", {"questions": [{"prompt": "p", "a": "x"}]}, {}, "acme", 422,
     "questions.0.b"),
    ("bad content type", "POST", "/v1/users/alice/rank", b"candidates=a", {"Content-Type": "text/plain"}, "acme",
     422, "dictionary"),
    # rank reads its body in one pydantic pass (guards.read_json): the same answers as FastAPI's
    ("malformed JSON rank", "POST", "/v1/users/alice/rank", b'{"candidates": ["a", ', {}, "acme", 400,
     "malformed JSON"),
    ("no body rank", "POST", "/v1/users/alice/rank", b"", {}, "acme", 422, "body: Field required"),
    ("unknown field rank", "POST", "/v1/users/alice/rank", {"candidates": ["a"], "top": 1}, {}, "acme", 422, "top"),
    ("prompt not text rank", "POST", "/v1/users/alice/rank", {"prompt": 3, "candidates": ["a"]}, {}, "acme", 422,
     "prompt"),
    ("rank without key", "POST", "/v1/users/alice/rank", {"candidates": []}, {}, None, 401, "missing API key"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_4xx(api, case):
    _name, method, path, body, headers, tenant, status, words = case
    h = {**(api.h[tenant] if tenant else {}), **headers}
    if isinstance(body, bytes):
        h.setdefault("Content-Type", "application/json")
        r = api.request(method, path, content=body, headers=h)
    else:
        r = api.request(method, path, json=body, headers=h)
    assert r.status_code == status, r.text
    assert words.lower() in r.json()["detail"].lower()
    assert SECRET not in r.text


def test_the_rank_body_and_the_key_are_documented(api):
    """rank's body is read by hand (guards.read_json), the key by one dependency (BearerTenant):
    the OpenAPI schema must still say both, for clients and the fuzz tests."""
    doc = api.get("/openapi.json").json()
    op = doc["paths"]["/v1/users/{user_id}/rank"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert op["requestBody"]["required"] and body["required"] == ["candidates"]
    assert body["properties"]["candidates"]["maxItems"] > 1 and body["additionalProperties"] is False
    assert op["security"] == [{"HTTPBearer": []}]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_a_chunked_oversize_body_is_refused(api):
    def chunks():
        for _ in range(40):
            yield b"x" * (64 << 10)
    r = api.post("/v1/users/alice/choices", content=chunks(),
                 headers={**api.h["acme"], "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert api.get("/v1/users/alice", headers=api.h["acme"]).json()["n_choices"] == 1
