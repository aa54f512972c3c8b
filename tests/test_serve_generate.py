"""Generation in the service (issue 13): NP-DPO steered by the person's stored choices, CMPO by
given or inferred attribute weights, policies ranking by implicit reward, a reward-model run
refusing generate, bad input, and generation kept off the event loop with a bounded queue.
Tiny random LMs and a tiny random BERT built from configs; nothing is downloaded."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

pytest.importorskip("fastapi")
import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from pluralign.policies.runs import PolicyRunError, find_run  # noqa: E402
from pluralign.serve import auth  # noqa: E402
from pluralign.serve.app import create_app  # noqa: E402
from pluralign.serve.generation import Busy, PolicyPool  # noqa: E402
from pluralign.serve.model import LRU, ServedModel  # noqa: E402
from serve_support import (LONG, PROMPTS, SHORT, ThreadServer, make_cmpo_run, make_np_dpo_run,  # noqa: E402
                           shared_text_run)

QUESTION = "What should I cook tonight?"


def short_wins(i: int) -> dict:
    return {"prompt": PROMPTS[i], "chosen": SHORT[i], "rejected": LONG[i]}


def long_wins(i: int) -> dict:
    return {"prompt": PROMPTS[i], "chosen": LONG[i], "rejected": SHORT[i]}


def client_for(served: ServedModel, tmp_path, **kw) -> TestClient:
    # a fresh database per test restarts user ids, and z is cached by (user id, revision)
    served.z_cache = LRU(1000)
    app = create_app(served, f"sqlite:///{tmp_path / 'g.sqlite'}", **kw)
    client = TestClient(app)
    client.h = {"Authorization": f"Bearer {auth.create_key(app.state.engine, 'acme')}"}
    return client


@pytest.fixture(scope="module")
def np_run(tmp_path_factory):
    return make_np_dpo_run(tmp_path_factory.mktemp("np-dpo"))


@pytest.fixture(scope="module")
def np_served(np_run) -> ServedModel:
    return ServedModel.load(str(np_run))


@pytest.fixture(scope="module")
def cmpo_served(tmp_path_factory) -> ServedModel:
    return ServedModel.load(str(make_cmpo_run(tmp_path_factory.mktemp("cmpo"))))


@pytest.fixture
def np_api(np_served, tmp_path):
    with client_for(np_served, tmp_path) as client:
        yield client


@pytest.fixture
def cmpo_api(cmpo_served, tmp_path):
    with client_for(cmpo_served, tmp_path) as client:
        yield client


def gen(api, user: str, **body):
    return api.post(f"/v1/users/{user}/generate", json={"prompt": QUESTION, "max_new_tokens": 12, **body},
                    headers=api.h)


# -- run folders -------------------------------------------------------------------------------------
def test_run_kind_is_read_from_the_folder(np_run, tmp_path, tmp_path_factory):
    assert find_run(np_run) == ("np-dpo", np_run / "best")
    assert find_run(np_run / "best") == ("np-dpo", np_run / "best")
    assert find_run(shared_text_run(tmp_path_factory))[0] == "reward-model"
    (tmp_path / "empty").mkdir()
    with pytest.raises(PolicyRunError, match="no run.json.*np-dpo/best.*cmpo/model"):
        find_run(tmp_path / "empty")


# -- NP-DPO --------------------------------------------------------------------------------------------
def test_np_dpo_users_with_different_choices_get_different_z_and_answers(np_api, np_served):
    for i in range(3):
        assert np_api.post("/v1/users/alice/choices", json=short_wins(i), headers=np_api.h).status_code == 201
        assert np_api.post("/v1/users/bob/choices", json=long_wins(i), headers=np_api.h).status_code == 201
    z_a = np_api.post("/v1/users/alice/personalize", headers=np_api.h).json()["z"]
    z_b = np_api.post("/v1/users/bob/personalize", headers=np_api.h).json()["z"]
    # the run's encoder is odd (encoder_odd): opposite choices give opposite z
    assert max(abs(a - b) for a, b in zip(z_a, z_b)) > 0.5
    torch.testing.assert_close(torch.tensor(z_a), -torch.tensor(z_b), atol=1e-5, rtol=0)

    a1, a2, b = gen(np_api, "alice"), gen(np_api, "alice"), gen(np_api, "bob")
    assert a1.status_code == 200, a1.text
    out = a1.json()
    assert out["steered_by"] == "choices" and out["n_choices"] == 3 and out["weights"] is None
    assert out["model"] == "np-dpo" and out["tokens"] == 12 and out["finish_reason"] == "length"
    assert a2.json()["text"] == out["text"]  # greedy: deterministic
    assert b.json()["text"] != out["text"]  # steered by other choices

    # the same answer as the policy gives directly for z of alice's choices
    policy = np_served.personalizer
    z = policy.user([short_wins(i) for i in range(3)]).z
    assert policy.generate(QUESTION, z, max_new_tokens=12).text == out["text"]


def test_np_dpo_new_choice_invalidates_z_and_no_choices_is_none(np_api, np_served):
    np_api.post("/v1/users/carol/choices", json=short_wins(0), headers=np_api.h)
    gen(np_api, "carol")
    misses = np_served.z_cache.misses
    z1 = np_api.post("/v1/users/carol/personalize", headers=np_api.h).json()["z"]
    assert gen(np_api, "carol").status_code == 200 and np_served.z_cache.misses == misses  # cached
    np_api.post("/v1/users/carol/choices", json=long_wins(1), headers=np_api.h)
    after = gen(np_api, "carol").json()
    assert after["n_choices"] == 2 and np_served.z_cache.misses == misses + 1  # recomputed
    z2 = np_api.post("/v1/users/carol/personalize", headers=np_api.h).json()["z"]
    assert z2 != z1
    policy = np_served.personalizer
    assert after["text"] == policy.generate(QUESTION, torch.tensor([z2]), max_new_tokens=12).text
    np_api.put("/v1/users/dave", headers=np_api.h)
    none = gen(np_api, "dave").json()
    assert none["steered_by"] == "none" and none["n_choices"] == 0


def test_np_dpo_sampling_is_seeded(np_api):
    np_api.put("/v1/users/erin", headers=np_api.h)
    s1 = gen(np_api, "erin", do_sample=True, seed=3, temperature=1.5).json()["text"]
    s2 = gen(np_api, "erin", do_sample=True, seed=3, temperature=1.5).json()["text"]
    s3 = gen(np_api, "erin", do_sample=True, seed=4, temperature=1.5).json()["text"]
    assert s1 == s2 and s3 != s1


def test_policy_ranks_by_implicit_reward(np_api, np_served):
    for i in range(2):
        np_api.post("/v1/users/frank/choices", json=long_wins(i), headers=np_api.h)
    cands = ["Yes.", "A much longer answer with many words.", "Maybe later."]
    r = np_api.post("/v1/users/frank/rank", json={"prompt": QUESTION, "candidates": cands}, headers=np_api.h)
    assert r.status_code == 200, r.text
    ranking = r.json()["ranking"]
    policy = np_served.personalizer
    want = policy.score(QUESTION, cands, [policy.user([long_wins(i) for i in range(2)])])[0]
    assert [x["index"] for x in ranking] == sorted(range(3), key=lambda i: -float(want[i]))
    for x in ranking:
        assert x["score"] == pytest.approx(float(want[x["index"]]), abs=1e-5)
    many = np_api.post("/v1/users/frank/rank", json={"prompt": "", "candidates": [f"c{i}" for i in range(65)]},
                       headers=np_api.h)
    assert many.status_code == 422 and "at most 64" in many.json()["detail"]


# -- CMPO -----------------------------------------------------------------------------------------------
def test_cmpo_weights_given_or_inferred_or_default(cmpo_api, cmpo_served):
    cmpo_api.put("/v1/users/gina", headers=cmpo_api.h)
    concise = gen(cmpo_api, "gina", weights={"concise": 1.0})
    assert concise.status_code == 200, concise.text
    out = concise.json()
    assert out["steered_by"] == "weights" and out["weights"] == {"concise": 1.0, "detailed": 0.0}
    detailed = gen(cmpo_api, "gina", weights={"detailed": 1.0}).json()
    assert detailed["text"] != out["text"]
    model = cmpo_served.personalizer
    assert model.generate(QUESTION, model.weights({"concise": 1.0}), max_new_tokens=12).text == out["text"]

    none = gen(cmpo_api, "gina").json()  # no choices, no weights: the uniform default
    assert none["steered_by"] == "none" and none["weights"] == {"concise": 0.5, "detailed": 0.5}

    for i in range(3):
        cmpo_api.post("/v1/users/gina/choices", json=short_wins(i), headers=cmpo_api.h)
    inferred = gen(cmpo_api, "gina").json()
    lam = model.user([short_wins(i) for i in range(3)]).z.reshape(-1).tolist()
    assert inferred["steered_by"] == "choices" and inferred["n_choices"] == 3
    assert list(inferred["weights"].values()) == pytest.approx(lam, abs=1e-5)
    assert sum(lam) == pytest.approx(1.0) and lam != pytest.approx([0.5, 0.5], abs=1e-3)
    assert inferred["text"] == model.generate(QUESTION, torch.tensor([lam]), max_new_tokens=12).text
    # weights given win over the choices
    assert gen(cmpo_api, "gina", weights={"concise": 1.0}).json()["text"] == out["text"]


@pytest.mark.parametrize("weights, message", [
    ({"funny": 1.0}, "unknown attribute(s) ['funny']"),
    ({"concise": 0.0}, "all zero"),
    ({}, "weights"),
    ({"concise": 1e9}, "less than or equal to 100"),
])
def test_cmpo_bad_weights(cmpo_api, weights, message):
    cmpo_api.put("/v1/users/hank", headers=cmpo_api.h)
    r = gen(cmpo_api, "hank", weights=weights)
    assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_cmpo_nan_weights_are_refused(cmpo_api):
    cmpo_api.put("/v1/users/hank", headers=cmpo_api.h)
    body = '{"prompt": "hi", "weights": {"concise": NaN}}'  # Python's JSON reader accepts NaN
    r = cmpo_api.post("/v1/users/hank/generate", content=body,
                      headers={**cmpo_api.h, "Content-Type": "application/json"})
    assert r.status_code == 422 and "weights.concise" in r.json()["detail"], r.text


# -- refusals and bad input ---------------------------------------------------------------------------
def test_reward_model_run_refuses_generate(tmp_path, tmp_path_factory):
    with client_for(ServedModel.load(str(shared_text_run(tmp_path_factory))), tmp_path) as api:
        api.put("/v1/users/ivy", headers=api.h)
        r = gen(api, "ivy")
        assert r.status_code == 400
        assert "reward model; generate needs an NP-DPO or CMPO policy run" in r.json()["detail"]
        assert api.get("/healthz").json()["generate"] is False


@pytest.mark.parametrize("body, status, message", [
    ({"prompt": ""}, 422, "prompt"),
    ({"prompt": "   "}, 422, "must not be empty"),
    ({"prompt": "hi", "max_new_tokens": 0}, 422, "max_new_tokens"),
    ({"prompt": "hi", "max_new_tokens": 257}, 422, "max_new_tokens"),
    ({"prompt": "hi", "max_new_tokens": "5"}, 422, "max_new_tokens"),
    ({"prompt": "hi", "temperature": 0.5}, 422, "set do_sample to true"),
    ({"prompt": "hi", "do_sample": True, "temperature": 0}, 422, "temperature"),
    ({"prompt": "hi", "weights": {"concise": 1.0}}, 422, "steer CMPO runs only"),
    ({"prompt": "x" * 3000, "max_new_tokens": 8}, 422, "exceed the model's 512 positions"),
    ({"prompt": "hi", "colour": "red"}, 422, "colour"),
])
def test_bad_generate_input_is_a_clear_4xx(np_api, body, status, message):
    np_api.put("/v1/users/jack", headers=np_api.h)
    r = np_api.post("/v1/users/jack/generate", json=body, headers=np_api.h)
    assert r.status_code == status and message in r.json()["detail"], r.text


def test_unknown_user_and_missing_key(np_api):
    assert gen(np_api, "nobody").status_code == 404
    r = np_api.post("/v1/users/x/generate", json={"prompt": "hi"})
    assert r.status_code == 401


# -- concurrency ------------------------------------------------------------------------------------------
def test_pool_admits_a_bounded_number_of_calls():
    pool = PolicyPool(workers=1, max_pending=2)
    release = threading.Event()

    async def main():
        first = asyncio.ensure_future(pool.run(release.wait))
        second = asyncio.ensure_future(pool.run(lambda: 7))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match="at most 2"):
            await pool.run(lambda: 0)
        release.set()
        assert await first is True and await second == 7
        assert await pool.run(lambda: 8) == 8 and pool.pending == 0

    asyncio.run(main())
    pool.shutdown()


def test_generation_does_not_block_other_requests_and_overflow_gets_503(np_served, tmp_path, monkeypatch):
    import httpx

    release, started = threading.Event(), threading.Event()
    real = np_served.personalizer.generate

    def slow_generate(*args, **kwargs):  # the real generation, held until the test lets it go
        started.set()
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(np_served.personalizer, "generate", slow_generate)
    app = create_app(np_served, f"sqlite:///{tmp_path / 'c.sqlite'}", policy_pool=PolicyPool(max_pending=1))
    h = {"Authorization": f"Bearer {auth.create_key(app.state.engine, 'acme')}"}
    with ThreadServer(app) as server, httpx.Client(base_url=server.url, headers=h, timeout=30) as http:
        http.put("/v1/users/kim")
        results = {}
        worker = threading.Thread(target=lambda: results.setdefault(
            "gen", http.post("/v1/users/kim/generate", json={"prompt": "hi", "max_new_tokens": 4})))
        worker.start()
        assert started.wait(10)
        t0 = time.perf_counter()
        assert http.get("/healthz").status_code == 200
        assert http.post("/v1/users/kim/choices", json=short_wins(0)).status_code == 201
        assert time.perf_counter() - t0 < 2.0  # served while the generation is still held
        busy = http.post("/v1/users/kim/generate", json={"prompt": "hi", "max_new_tokens": 4})
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
        release.set()
        worker.join(30)
        assert results["gen"].status_code == 200, results["gen"].text
        page = http.get("/metrics").text
        assert "pluralign_generations_total" in page and "pluralign_generate_rejected_total" in page


# -- the command ----------------------------------------------------------------------------------------
def test_serve_command_detects_a_policy_run(np_run, tmp_path, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from pluralign.cli import app as cli

    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    r = CliRunner().invoke(cli, ["serve", str(np_run), "--db", db, "--max-generations", "3"])
    assert r.exit_code == 0, r.output
    assert f"serving {np_run} (np-dpo)" in r.output
    app = started["app"]
    assert app.state.model.kind == "np-dpo" and app.state.policy_pool.max_pending == 3
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {auth.create_key(app.state.engine, 'acme')}"}
        assert client.get("/healthz").json()["kind"] == "np-dpo"
        client.post("/v1/users/lee/choices", json=short_wins(0), headers=h)
        r = client.post("/v1/users/lee/generate", json={"prompt": "hi", "max_new_tokens": 3}, headers=h)
        assert r.status_code == 200 and r.json()["steered_by"] == "choices", r.text


def test_an_unconditioned_dpo_policy_serves_one_answer_for_everyone(np_run, tmp_path):
    from pluralign.policies.np_dpo.policy import NPDPOConfig, NPDPOPolicy
    from pluralign.policies.tiny import tiny_causal_lm

    cfg = NPDPOConfig(base_model=str(np_run.parent / "base"), option_dim=32, film=False, lora_rank=4)
    NPDPOPolicy(tiny_causal_lm("llama", seed=0), cfg).save_pretrained(tmp_path / "dpo" / "best")
    served = ServedModel.load(str(tmp_path / "dpo"))
    assert served.kind == "np-dpo" and served.model_name == "dpo" and not served.has_latent
    a = served.user_state(("a", 1), lambda: [short_wins(0)])
    b = served.user_state(("b", 1), lambda: [long_wins(0)])
    out_a, by, weights = served.generate(a, QUESTION, max_new_tokens=6)
    assert by == "none" and weights is None and out_a.tokens == 6
    assert served.generate(b, QUESTION, max_new_tokens=6)[0].text == out_a.text
