"""What stands between a request and the routes: the body-size limit, metrics per request, and
error handlers that turn every bad input into a 4xx with a message naming the field at fault
(and any bug into a bare 500 that leaks nothing)."""

from __future__ import annotations

import logging
import time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .metrics import LATENCY, REQUESTS

log = logging.getLogger("pluralign.serve")
MAX_BODY = 1 << 20  # 1 MiB: a rank of 4096 candidates of ~200 characters fits


class BodyLimit:
    """ASGI middleware: 413 for bodies over ``max_body`` bytes, by Content-Length or, for a
    chunked upload, as soon as the bytes read pass the limit."""

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _too_large(self.max_body, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.max_body, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    response = JSONResponse({"detail": f"request body too large: at most {limit} bytes"}, status_code=413)
    await response({"type": "http"}, None, send)  # type: ignore[arg-type]


M = TypeVar("M", bound=BaseModel)


async def read_json(request: Request, model: type[M]) -> M:
    """The request's body as ``model``, answered as FastAPI answers a ``body: model`` parameter
    (malformed JSON: 400; a body that is not JSON, missing or wrong: 422 naming the field) but
    parsed and validated in one pass by pydantic's own JSON parser. On the rank route FastAPI's
    generic body handling (``json.loads``, then validation of the Python objects) cost about
    0.1 ms a request, as much as a third of the model's time for 10 cached candidates
    (docs/serve.md, "Performance"). The route documents the body with :func:`body_schema`."""
    raw = await request.body()
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        if not raw:
            errors: list[dict[str, Any]] = [{"type": "missing", "loc": (), "msg": "Field required", "input": None}]
        elif media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
            return model.model_validate_json(raw)
        else:  # FastAPI validates a non-JSON body as the bytes it is: "a valid dictionary" is expected
            return model.model_validate(raw)
    except ValidationError as err:
        errors = err.errors(include_url=False)
    raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors])


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as a route's required JSON body (for :func:`read_json`)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if p != "body"] or ["body"]
    return ".".join(parts)


def install(app: FastAPI) -> None:
    """Add the handlers and the metrics middleware to ``app`` (the body limit wraps the app)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            e = next(e for e in errors if e.get("type") == "json_invalid")
            return JSONResponse({"detail": f"malformed JSON body: {e.get('ctx', {}).get('error', e['msg'])}"},
                                status_code=400)
        message = "; ".join(f"{_where(tuple(e['loc']))}: {e['msg']}" for e in errors)
        plain = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
        return JSONResponse({"detail": message, "errors": plain}, status_code=422)

    @app.exception_handler(ValueError)
    async def _refused(request: Request, exc: ValueError) -> JSONResponse:
        # the Personalizer raises ValueError for input it cannot use (after our own checks,
        # e.g. a text its embedder refuses): the caller's input, so a 422 with its message
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(Measure)


class Measure:
    """ASGI middleware counting requests and timing them by route template (bounded labels).
    Plain ASGI rather than ``@app.middleware``: that wrapper costs a task and a stream per call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # the labelled children, found once: ``labels()`` costs ~5 us a call, 2 a request
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            key = (scope["method"], getattr(scope.get("route"), "path", "unmatched"), status)
            children = self._children.get(key)
            if children is None:  # bounded: methods x route templates x status codes
                children = self._children[key] = (REQUESTS.labels(key[0], key[1], str(status)), LATENCY.labels(key[1]))
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
