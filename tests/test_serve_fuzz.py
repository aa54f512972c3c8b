"""Fuzz every endpoint from the service's own OpenAPI schema (schemathesis): no input, valid or
not, may give a 5xx, and valid responses must match the schema. Bounded: a few examples per
operation, so it fits the suite's budget."""

from __future__ import annotations

import pytest

pytest.importorskip("schemathesis")
import schemathesis  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from pluralign.serve import auth  # noqa: E402
from pluralign.serve.app import create_app  # noqa: E402
from pluralign.serve.model import ServedModel  # noqa: E402
from serve_support import LONG, PROMPTS, SHORT, make_cmpo_run, shared_text_run  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    served = ServedModel.load(str(shared_text_run(tmp_path_factory)))
    app = create_app(served, f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'f.sqlite'}")
    key = auth.create_key(app.state.engine, "acme")
    from fastapi.testclient import TestClient

    with TestClient(app) as client:  # a known user and pool, so some cases reach the model
        h = {"Authorization": f"Bearer {key}"}
        client.post("/v1/users/alice/choices", json={"prompt": PROMPTS[0], "chosen": SHORT[0],
                                                     "rejected": LONG[0]}, headers=h)
        client.put("/v1/pools/p", json={"questions": [{"prompt": PROMPTS[1], "a": SHORT[1], "b": LONG[1]}]},
                   headers=h)
        yield schemathesis.openapi.from_asgi("/openapi.json", app), h


@pytest.fixture(scope="module")
def policy_service(tmp_path_factory):
    """A CMPO policy run (generate with weights, inferred weights, ranking by implicit reward)."""
    served = ServedModel.load(str(make_cmpo_run(tmp_path_factory.mktemp("fuzz-cmpo"))))
    app = create_app(served, f"sqlite:///{tmp_path_factory.mktemp('fuzz-p') / 'f.sqlite'}")
    key = auth.create_key(app.state.engine, "acme")
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {key}"}
        client.post("/v1/users/alice/choices", json={"prompt": PROMPTS[0], "chosen": SHORT[0],
                                                     "rejected": LONG[0]}, headers=h)
        yield schemathesis.openapi.from_asgi("/openapi.json", app), h


def test_every_operation_with_valid_and_invalid_input_gives_no_server_error(service):
    schema, auth_header = service
    operations = [op.ok() for op in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /v1/users/{user_id}/choices", "POST /v1/users/{user_id}/rank",
            "POST /v1/users/{user_id}/next-question", "DELETE /v1/users/{user_id}",
            "POST /v1/users/{user_id}/generate"} <= labels
    fuzz(operations, auth_header)


def test_policy_operations_give_no_server_error(policy_service):
    schema, auth_header = policy_service
    wanted = {"POST /v1/users/{user_id}/generate", "POST /v1/users/{user_id}/rank",
              "POST /v1/users/{user_id}/personalize"}
    operations = [op.ok() for op in schema.get_all_operations() if op.ok().label in wanted]
    assert {op.label for op in operations} == wanted

    def generated() -> float:
        from prometheus_client import REGISTRY

        return sum(REGISTRY.get_sample_value("pluralign_generations_total", {"steered_by": s}) or 0.0
                   for s in ("choices", "weights", "none"))

    before = generated()
    fuzz(operations, auth_header, known_user="alice")  # also as a user with choices: reach the model
    assert generated() > before  # valid requests did generate


def fuzz(operations, auth_header, known_user: str | None = None) -> None:
    calls: dict[str, int] = {}
    for op in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(op.as_strategy(generation_mode=mode))
            @settings(max_examples=5, deadline=None, derandomize=True, database=None,
                      suppress_health_check=list(HealthCheck))
            def run(case):
                for headers in (auth_header, {}):
                    response = case.call(headers=headers)
                    assert response.status_code < 500, (op.label, mode, case.path_parameters, case.query,
                                                        case.body, response.status_code, response.text[:300])
                if known_user is not None and "user_id" in (case.path_parameters or {}):
                    case.path_parameters = {**case.path_parameters, "user_id": known_user}
                    response = case.call(headers=auth_header)
                    assert response.status_code < 500, (op.label, mode, case.body, response.status_code,
                                                        response.text[:300])

            try:
                run()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, op.label  # nothing to break (no inputs)
                continue
            calls[op.label] = calls.get(op.label, 0) + 1
    assert len(calls) == len(operations)
