"""The FastAPI application: the routes of issue 13's HTTP shape over the store and the model.

Every ``/v1`` route needs ``Authorization: Bearer KEY``; the key's tenant scopes every lookup,
so another tenant's user id is simply "not found". Most routes are plain ``def`` functions
that Starlette runs in its thread pool; the two hot ones are ``async``: rank (a cached one never
leaves the event loop: a one-row read, then the micro-batcher; the common case is answered
before routing, by :mod:`pluralign.serve.fastpath`) and posting a choice (handed to the
group-commit writer). Both write their answers directly, in their response model's shape.
"""


import hashlib
import os
import threading
import time
from importlib import resources
from typing import Annotated, Any, Awaitable, Callable

from fastapi import Depends, FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from pydantic_core import to_json
from starlette.concurrency import run_in_threadpool
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from . import auth, metrics, store
from .batching import RankBatcher
from .db import make_engine
from .fastpath import FastRank
from .generation import Busy, PolicyPool
from .groupcommit import GroupCommit
from .guards import BodyLimit, body_schema, install, read_json
from .model import ServedModel
from .schemas import (USER_ID, ChoiceCreated, ChoiceIn, ChoiceList, ChoiceOut, Deleted, GenerateIn, GenerateOut,
                      NextQuestionIn, POOL_ID, Personalized, PoolIn, PoolOut, QuestionOut, RankIn,
                      RankOut, Undone, UserOut)

UserId = Annotated[str, PathParam(pattern=USER_ID, description="The client's id for the person.")]
PoolId = Annotated[str, PathParam(pattern=POOL_ID)]
KEY_TTL = 5.0  # seconds a resolved API key is trusted without asking the database (revocation delay)
MAX_POLICY_CANDIDATES = 64  # a policy scores each candidate with two LM passes: rank fewer at once


class Tenant:
    def __init__(self, id: int, name: str) -> None:  # noqa: A002
        self.id, self.name = id, name


class BearerTenant(HTTPBearer):
    """The caller's tenant from ``Authorization: Bearer KEY``, as one dependency that the OpenAPI
    schema still shows as the HTTP bearer scheme. A ``tenant`` dependency on top of an
    ``HTTPBearer`` dependency cost FastAPI a second dependency resolution on every request."""

    def __init__(self, resolve: Callable[[HTTPAuthorizationCredentials | None], Awaitable[Tenant]]) -> None:
        super().__init__(auto_error=False, scheme_name="HTTPBearer",
                         description="An API key from `pluralign serve keys create`.")
        self.resolve = resolve

    async def __call__(self, request: Request) -> Tenant:  # type: ignore[override]
        return await self.resolve(await super().__call__(request))


def create_app(model: ServedModel, db_url: str, *, migrate: bool = True, engine: Engine | None = None,
               policy_pool: PolicyPool | None = None) -> FastAPI:
    """The service for ``model`` over the database at ``db_url`` (migrated first unless told not).
    ``policy_pool``: where a policy run generates and ranks (default: one thread, 8 admitted)."""
    engine = engine or make_engine(db_url)
    if migrate:
        from .migrate import upgrade
        upgrade(engine)
    batcher = RankBatcher(model.score, on_batch=metrics.RANK_BATCH.observe)
    pool = policy_pool or PolicyPool()
    writer = GroupCommit(lambda items: store.add_choices(engine, items),
                         lambda item: store.add_choices(engine, [item])[0], on_group=metrics.CHOICE_GROUP.observe)
    keys: dict[str, tuple[float, Tenant]] = {}
    keys_lock = threading.Lock()

    app = FastAPI(title="pluralign serve", version="1",
                  description="Personalized ranking and question selection from a person's few choices.")
    app.state.engine, app.state.model, app.state.batcher, app.state.policy_pool = engine, model, batcher, pool

    def lookup(key: str) -> Tenant:
        with Session(engine) as session:
            row = auth.tenant_for_key(session, key)
            if row is None:
                raise HTTPException(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
            return Tenant(row.id, row.name)

    def cached_tenant(credentials: str) -> Tenant | None:
        with keys_lock:
            hit = keys.get(auth.hash_key(credentials))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def tenant(cred: HTTPAuthorizationCredentials | None) -> Tenant:
        # async with an in-memory cache: a known key costs no thread hop and no query
        if cred is None:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer KEY'",
                                headers={"WWW-Authenticate": "Bearer"})
        found = cached_tenant(cred.credentials)
        if found is not None:
            return found
        found = await run_in_threadpool(lookup, cred.credentials)
        with keys_lock:
            if len(keys) > 10_000:
                keys.clear()
            keys[auth.hash_key(cred.credentials)] = (time.monotonic() + KEY_TTL, found)
        return found

    Caller = Annotated[Tenant, Depends(BearerTenant(tenant))]

    async def on_policy_pool(fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await pool.run(fn, *args, **kwargs)
        except Busy as err:
            metrics.GENERATE_REJECTED.inc()
            raise HTTPException(503, str(err), headers={"Retry-After": "1"}) from None

    def known_user(t: Tenant, user_id: str) -> store.UserInfo:
        user = store.get_user(engine, t.id, user_id)
        if user is None:
            raise HTTPException(404, f"user {user_id!r} not found (create it with PUT /v1/users/{user_id} "
                                     "or by posting a choice)")
        return user

    z_hit, z_miss = metrics.Z_CACHE.labels("hit"), metrics.Z_CACHE.labels("miss")
    by_fast_path, by_route = metrics.RANK_PATH.labels("fast"), metrics.RANK_PATH.labels("route")

    def state_of(user: store.UserInfo) -> Any:
        misses = model.z_cache.misses
        state = model.user_state(user.version, lambda: [
            {"prompt": p, "chosen": c, "rejected": r} for p, c, r in store.choice_texts(engine, user)])
        (z_miss if model.z_cache.misses > misses else z_hit).inc()
        return state

    def out(c: store.StoredChoice) -> ChoiceOut:
        return ChoiceOut(seq=c.seq, prompt=c.prompt, chosen=c.chosen, rejected=c.rejected,
                         created_at=c.created_at, undone=c.undone)

    # -- service routes ----------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return resources.files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "model": model.model_name, "kind": model.kind, "personalized": model.has_latent,
                "generate": model.is_policy, "attributes": model.attributes, "database": engine.dialect.name,
                "pid": os.getpid()}

    @app.get("/metrics", tags=["service"], response_class=Response)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # -- users and choices -------------------------------------------------------------------------
    @app.put("/v1/users/{user_id}", response_model=UserOut, tags=["users"])
    def put_user(user_id: UserId, t: Caller, response: Response) -> UserOut:
        user, created = store.ensure_user(engine, t.id, user_id)
        response.status_code = 201 if created else 200
        return UserOut(user_id=user_id, n_choices=user.n_choices, revision=user.revision)

    @app.get("/v1/users/{user_id}", response_model=UserOut, tags=["users"])
    def get_user(user_id: UserId, t: Caller) -> UserOut:
        user = known_user(t, user_id)
        return UserOut(user_id=user_id, n_choices=user.n_choices, revision=user.revision)

    @app.delete("/v1/users/{user_id}", response_model=Deleted, tags=["users"])
    def delete_user(user_id: UserId, t: Caller) -> Deleted:
        n = store.delete_user(engine, t.id, user_id)
        if n is None:
            raise HTTPException(404, f"user {user_id!r} not found")
        return Deleted(user_id=user_id, deleted_choices=n)

    @app.post("/v1/users/{user_id}/choices", response_model=ChoiceCreated, status_code=201, tags=["choices"])
    async def post_choice(user_id: UserId, body: ChoiceIn, t: Caller,
                          idempotency_key: Annotated[str | None, Header(max_length=255)] = None) -> Response:
        # stored by the group-commit writer (groupcommit.py): answered once committed
        try:
            choice, user, replayed = await writer.submit(store.NewChoice(t.id, user_id, body.prompt, body.chosen,
                                                                         body.rejected, idempotency_key))
        except store.Conflict as err:
            raise HTTPException(409, str(err)) from None
        metrics.CHOICES.labels("replayed" if replayed else "stored").inc()
        created = ChoiceCreated(user_id=user_id, choice=out(choice), n_choices=user.n_choices, replayed=replayed)
        return model_response(created, 201)

    @app.get("/v1/users/{user_id}/choices", response_model=ChoiceList, tags=["choices"])
    def get_choices(user_id: UserId, t: Caller, include_undone: bool = Query(False)) -> ChoiceList:
        user = known_user(t, user_id)
        rows = store.list_choices(engine, user, include_undone=include_undone)
        return ChoiceList(user_id=user_id, n_choices=user.n_choices, choices=[out(c) for c in rows])

    @app.post("/v1/users/{user_id}/choices/undo", response_model=Undone, tags=["choices"])
    def undo(user_id: UserId, t: Caller) -> Undone:
        choice, user = store.undo_last(engine, t.id, user_id)
        if user is None:
            raise HTTPException(404, f"user {user_id!r} not found")
        if choice is None:
            raise HTTPException(409, f"user {user_id!r} has no choice to undo")
        return Undone(user_id=user_id, undone=out(choice), n_choices=user.n_choices)

    # -- personalization ---------------------------------------------------------------------------
    @app.post("/v1/users/{user_id}/personalize", response_model=Personalized, tags=["personalization"])
    def personalize(user_id: UserId, t: Caller) -> Personalized:
        user = known_user(t, user_id)
        z, z_std = model.z_summary(state_of(user))
        return Personalized(user_id=user_id, n_choices=user.n_choices, revision=user.revision,
                            model=model.model_name, z=z, z_std=z_std)

    async def rank_values(user: store.UserInfo, body: RankIn) -> list[float]:
        # on the event loop, no thread hand-offs (see batching.py): only a z-cache miss (embedding
        # the user's choices) goes to the thread pool
        if model.is_policy:
            # implicit reward log pi(y | x, user) - log pi_ref(y | x): LM passes (and, for CMPO, the
            # user's weights from theirs), all in the bounded policy pool, off the event loop
            if len(body.candidates) > MAX_POLICY_CANDIDATES:
                raise HTTPException(422, f"candidates: a {model.kind} policy run ranks at most "
                                         f"{MAX_POLICY_CANDIDATES} candidates a request, got {len(body.candidates)}")
            scores = (await on_policy_pool(lambda: model.score(body.prompt, body.candidates, [state_of(user)])))[0]
        else:
            if model.z_cache.get(user.version) is not None:
                state = state_of(user)
            else:
                state = await run_in_threadpool(state_of, user)
            scores = await batcher.submit(body.prompt, body.candidates, state)
        return scores.tolist()

    def ranking(user_id: str, user: store.UserInfo, body: RankIn, values: list[float]) -> bytes:
        # RankOut's shape, written directly: FastAPI's check and serialisation of the returned
        # model (the echoed candidate texts validated and encoded twice) cost more than the
        # forward pass (docs/serve.md, "Performance")
        order = sorted(range(len(values)), key=values.__getitem__, reverse=True)  # stable: ties keep input order
        return json_bytes({"user_id": user_id, "n_choices": user.n_choices, "model": model.model_name,
                           "ranking": [{"index": i, "candidate": body.candidates[i], "score": values[i],
                                        "spread": None} for i in order]})

    @app.post("/v1/users/{user_id}/rank", response_model=RankOut, tags=["personalization"],
              openapi_extra=body_schema(RankIn))
    async def rank(user_id: UserId, request: Request, t: Caller) -> Response:
        # the common case is answered by fast_rank below, before routing; this route answers the
        # rest (a key not yet resolved, an unknown user, a policy run) and every error. The
        # body is RankIn, read in one pydantic pass (guards.read_json: the hot route's saving)
        body = await read_json(request, RankIn)
        user = known_user(t, user_id)
        answer = ranking(user_id, user, body, await rank_values(user, body))
        by_route.inc()
        return Response(answer, media_type="application/json")

    async def fast_rank(user_id: str, authorization: bytes | None, content_type: bytes | None,
                        raw: bytes) -> bytes | None:
        """The rank route's answer when nothing needs the framework (fastpath.py), else None."""
        if (model.is_policy or authorization is None or not authorization.startswith(b"Bearer ")
                or (content_type is not None and content_type.split(b";")[0].strip().lower() != b"application/json")):
            return None
        t = cached_tenant(authorization[7:].decode("latin-1"))
        if t is None:
            return None
        try:
            body = RankIn.model_validate_json(raw)
        except ValidationError:
            return None
        user = store.get_user(engine, t.id, user_id)
        if user is None:
            return None
        answer = ranking(user_id, user, body, await rank_values(user, body))
        by_fast_path.inc()
        return answer

    @app.post("/v1/users/{user_id}/generate", response_model=GenerateOut, tags=["personalization"],
              responses={400: {"description": "The run is a reward model: it cannot generate."},
                         503: {"description": "Too many generations running or queued; retry."}})
    async def generate(user_id: UserId, body: GenerateIn, t: Caller) -> GenerateOut:
        """An answer to ``prompt`` steered for this person: NP-DPO by z of their choices; CMPO by
        the given ``weights``, else by weights inferred from their choices (else uniform)."""
        if not model.is_policy:
            raise HTTPException(400, "this run is a reward model; generate needs an NP-DPO or CMPO policy "
                                     "run (rank and personalize work here)")
        user = known_user(t, user_id)
        if body.weights is not None:
            model.check_weights(body.weights)  # ValueError -> 422 naming the fault, before any LM work
        start = time.perf_counter()

        def work() -> tuple[Any, str, Any]:
            state = state_of(user)  # z from the choices (cached per revision), as rank uses
            return model.generate(state, body.prompt, weights=body.weights, max_new_tokens=body.max_new_tokens,
                                  do_sample=body.do_sample, temperature=body.temperature, top_p=body.top_p,
                                  seed=body.seed)

        out, steered_by, used = await on_policy_pool(work)
        metrics.GENERATIONS.labels(steered_by).inc()
        metrics.GENERATED_TOKENS.inc(out.tokens)
        metrics.GENERATE_SECONDS.observe(time.perf_counter() - start)
        return GenerateOut(user_id=user_id, model=model.model_name, text=out.text, tokens=out.tokens,
                           finish_reason=out.finish_reason, steered_by=steered_by, n_choices=user.n_choices,
                           weights=used)

    @app.post("/v1/users/{user_id}/next-question", response_model=QuestionOut, tags=["personalization"])
    def next_question(user_id: UserId, body: NextQuestionIn, t: Caller) -> QuestionOut:
        user = known_user(t, user_id)
        if body.pool_id is not None:
            found = store.get_pool(engine, t.id, body.pool_id)
            if found is None:
                raise HTTPException(404, f"pool {body.pool_id!r} not found (register it with PUT /v1/pools/ID)")
            pool = found[0]
        else:
            pool = [q.model_dump() for q in body.pool]
        answered = set(store.choice_texts(engine, user))
        seed = int.from_bytes(hashlib.sha256(f"{user.pk}:{user.revision}".encode()).digest()[:8], "big")
        q = model.next_question(state_of(user), pool, answered, seed)
        if q is None:
            return QuestionOut(user_id=user_id, done=True)
        return QuestionOut(user_id=user_id, done=False, index=q.index, prompt=q.prompt, a=q.a, b=q.b,
                           method=q.method)

    # -- pools -------------------------------------------------------------------------------------
    @app.put("/v1/pools/{pool_id}", response_model=PoolOut, tags=["pools"])
    def put_pool(pool_id: PoolId, body: PoolIn, t: Caller, response: Response) -> PoolOut:
        created = store.put_pool(engine, t.id, pool_id, [q.model_dump() for q in body.questions],
                                 body.candidates.model_dump() if body.candidates else None)
        response.status_code = 201 if created else 200
        return PoolOut(pool_id=pool_id, questions=body.questions, candidates=body.candidates)

    @app.get("/v1/pools/{pool_id}", response_model=PoolOut, tags=["pools"])
    def get_pool(pool_id: PoolId, t: Caller) -> PoolOut:
        found = store.get_pool(engine, t.id, pool_id)
        if found is None:
            raise HTTPException(404, f"pool {pool_id!r} not found")
        return PoolOut(pool_id=pool_id, questions=found[0], candidates=found[1])

    app.add_middleware(FastRank, handle=fast_rank,
                       route=next(r for r in app.routes if getattr(r, "path", None) == "/v1/users/{user_id}/rank"))
    install(app)  # error handlers and the metrics middleware, outside the fast path: it is counted too
    app.add_middleware(BodyLimit)
    return app


def json_bytes(content: Any) -> bytes:
    """``content`` as compact UTF-8 JSON, encoded by pydantic's Rust serialiser: 10 ranked
    candidates took 50 us with ``json.dumps``, 10 us here. NaN and infinities are null."""
    return to_json(content, inf_nan_mode="null")


def model_response(content: Any, status_code: int = 200) -> Response:
    """A pydantic model as the JSON answer, serialised once (FastAPI would validate it again
    against the route's response model first)."""
    return Response(content.model_dump_json(), status_code=status_code, media_type="application/json")


def app_from_env() -> Any:
    """The app for ``uvicorn --factory`` (several workers): run and database from the environment
    variables the ``pluralign serve`` command sets."""
    run, db = os.environ["PLURALIGN_SERVE_RUN"], os.environ["PLURALIGN_SERVE_DB"]
    pool = PolicyPool(max_pending=int(os.environ.get("PLURALIGN_SERVE_MAX_GENERATIONS", "8")))
    # the command has migrated already; workers must not race on it (SQLite has no advisory lock)
    return create_app(ServedModel.load(run), db, migrate=False, policy_pool=pool)
