"""The rank route's common case without FastAPI's routing and dependency resolution (issue 13:
a ranking's server time should be the model's, not the framework's).

:class:`FastRank` is ASGI middleware in front of the app's router. For ``POST
/v1/users/{user_id}/rank`` it reads the body and asks a ``handle`` function for the answer;
``handle`` answers only the plain case (a JSON body that is a valid ``RankIn``, a key already
resolved, a known user, a reward-model run) and returns None for anything else. Then, or when
``handle`` raises (scoring included: an error costs a second try), the request goes on to the
FastAPI route with the body replayed, and that route gives every error its usual status and
message. So the checks and their messages live once, in the route; the fast path can only
decline. Measured with ``benchmarks/serve_profile.py`` (docs/serve.md, "Performance").
"""

from __future__ import annotations

import logging
import re
from typing import Any, Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .schemas import USER_ID

log = logging.getLogger("pluralign.serve")
RANK_PATH = re.compile("/v1/users/(" + USER_ID.strip("^$") + ")/rank")
# handle(user_id, authorization header, content-type header, body) -> the JSON answer, or None
Handle = Callable[[str, bytes | None, bytes | None, bytes], Awaitable[bytes | None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


class FastRank:
    """ASGI middleware: answer a plain rank request with ``handle``, pass anything else on.
    ``route`` (the rank route) is set in the scope so per-route metrics label both paths alike."""

    def __init__(self, app: ASGIApp, handle: Handle, route: Any = None) -> None:
        self.app, self.handle, self.route = app, handle, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path")
                or (match := RANK_PATH.fullmatch(scope["path"])) is None):
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: no one to answer
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw = b"".join(chunks)
        headers = dict(scope["headers"])
        try:
            answer = await self.handle(match.group(1), headers.get(b"authorization"), headers.get(b"content-type"), raw)
        except Exception:  # noqa: BLE001 - the route below raises it again and answers it properly
            log.debug("fast rank declined after an error; the route answers", exc_info=True)
            answer = None
        if answer is None:
            return await self.app(scope, _replay(raw, receive), send)
        if self.route is not None:
            scope["route"] = self.route
        await send({"type": "http.response.start", "status": 200,
                    "headers": [*JSON_HEADERS, (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then whatever the real one gives."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
