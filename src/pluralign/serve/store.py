"""Users, choices and question pools of one tenant: every function takes the caller's tenant id
and never reads a row of another tenant.

Writes run in one transaction each and lock the user row first (``SELECT ... FOR UPDATE`` on
PostgreSQL; ``BEGIN IMMEDIATE`` already serialises writers on SQLite), so a user's sequence
numbers, counts and idempotency keys stay consistent under concurrent requests. A choice
posted twice with one idempotency key is stored once: the second post finds the first (or, when
both raced past the lookup, loses on the unique index, rolls back and finds it then).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, TypeVar

import threading
import weakref

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .db import Choice, Pool, User, is_sqlite, reader, utcnow

T = TypeVar("T")


class Conflict(ValueError):
    """The request contradicts stored data (an idempotency key reused with another body)."""


@dataclass(frozen=True)
class StoredChoice:
    seq: int
    prompt: str
    chosen: str
    rejected: str
    created_at: datetime
    idempotency_key: str | None = None
    undone: bool = False

    @classmethod
    def of(cls, row: Choice) -> "StoredChoice":
        return cls(row.seq, row.prompt, row.chosen, row.rejected, row.created_at, row.idempotency_key,
                   row.undone_at is not None)


@dataclass(frozen=True)
class UserInfo:
    pk: int
    external_id: str
    revision: int
    n_choices: int


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.external_id, user.revision, user.n_choices)


def _write(engine: Engine, body: Callable[[Session], T], attempts: int = 8) -> T:
    """Run ``body`` in a write transaction, retrying on a lost unique-index race or a
    serialisation failure (the losing transaction is rolled back whole, so a retry is safe)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with Session(engine.execution_options(write=True), expire_on_commit=False) as session:
                with session.begin():
                    return body(session)
        except (IntegrityError, OperationalError) as err:
            last = err
    raise RuntimeError(f"write failed after {attempts} attempts: {last}") from last


def _locked_user(session: Session, tenant_id: int, external_id: str, create: bool) -> User | None:
    query = select(User).where(User.tenant_id == tenant_id, User.external_id == external_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    user = session.scalar(query)
    if user is None and create:
        user = User(tenant_id=tenant_id, external_id=external_id, revision=0, n_choices=0, next_seq=0)
        session.add(user)
        session.flush()  # a concurrent creator makes this raise IntegrityError -> retried
    return user


_USER_SQL = "SELECT id, revision, n_choices FROM users WHERE tenant_id = ? AND external_id = ?"
_TEXTS_SQL = "SELECT prompt, chosen, rejected FROM choices WHERE user_id = ? AND undone_at IS NULL ORDER BY seq"


def get_user(engine: Engine, tenant_id: int, external_id: str) -> UserInfo | None:
    """The user's row, or None (one indexed read on a plain cursor: every rank starts here)."""
    r = reader(engine)
    rows = r.rows(r.sql(_USER_SQL), (tenant_id, external_id))
    return UserInfo(rows[0][0], external_id, rows[0][1], rows[0][2]) if rows else None


def choice_texts(engine: Engine, user: UserInfo) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of the user's live choices in order: what z is computed from."""
    r = reader(engine)
    return [tuple(row) for row in r.rows(r.sql(_TEXTS_SQL), (user.pk,))]


def ensure_user(engine: Engine, tenant_id: int, external_id: str) -> tuple[UserInfo, bool]:
    """The user, created when new; returns (user, created)."""
    def body(session: Session) -> tuple[UserInfo, bool]:
        existing = _locked_user(session, tenant_id, external_id, create=False)
        if existing is not None:
            return _info(existing), False
        return _info(_locked_user(session, tenant_id, external_id, create=True)), True

    return _write(engine, body)


_choices, _users = Choice.__table__, User.__table__
_BUMP = (update(_users).where(_users.c.tenant_id == bindparam("t"), _users.c.external_id == bindparam("u"))
         .values(next_seq=_users.c.next_seq + 1, n_choices=_users.c.n_choices + 1, revision=_users.c.revision + 1)
         .returning(_users.c.id, _users.c.next_seq, _users.c.n_choices, _users.c.revision))
_writers: "weakref.WeakKeyDictionary[Engine, _ChoiceWriter]" = weakref.WeakKeyDictionary()


class _ChoiceWriter:
    """The statements of :func:`add_choice` for one engine, compiled once (SQLAlchemy caches
    them), and, on SQLite, one lock per process so this process's writers queue on it rather
    than in SQLite's busy handler, which sleeps 1 ms and more between tries."""

    def __init__(self, engine: Engine) -> None:
        dialect = sqlite if is_sqlite(engine) else postgresql
        self.engine = engine.execution_options(write=True)
        self.new_user = (dialect.insert(_users).values(tenant_id=bindparam("t"), external_id=bindparam("u"),
                                                       revision=0, n_choices=0, next_seq=0, created_at=bindparam("now"))
                         .on_conflict_do_nothing(index_elements=["tenant_id", "external_id"]))
        self.insert = (dialect.insert(_choices).on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
                       .returning(_choices.c.id))
        self.lock = threading.Lock() if is_sqlite(engine) else None


def _writer(engine: Engine) -> _ChoiceWriter:
    found = _writers.get(engine)
    if found is None:
        found = _writers[engine] = _ChoiceWriter(engine)
    return found


def add_choice(engine: Engine, tenant_id: int, external_id: str, prompt: str, chosen: str, rejected: str,
               idempotency_key: str | None = None) -> tuple[StoredChoice, UserInfo, bool]:
    """Append a choice (creating the user when new). Returns (choice, user after it, replayed):
    ``replayed`` is True when ``idempotency_key`` was seen before and nothing was added.

    One transaction of two statements: bump the user's counters (which locks the user's row,
    so a user's writers take turns) returning the new sequence number, then insert the choice
    ``ON CONFLICT (user, idempotency key) DO NOTHING``. Nothing inserted means the key was
    used before (by a committed choice: a racing insert of the same key waits for the other
    transaction, and the row lock orders them anyway): roll back, so the bump is undone too,
    and answer with the stored choice, or 409 when its body differs."""
    w = _writer(engine)
    for _attempt in range(8):
        now = utcnow()
        try:
            with w.lock or _NO_LOCK, w.engine.connect() as conn:  # the first statement begins
                row = conn.execute(_BUMP, {"t": tenant_id, "u": external_id}).first()
                if row is None:  # a new user (a concurrent creator makes ours do nothing)
                    conn.execute(w.new_user, {"t": tenant_id, "u": external_id, "now": now})
                    row = conn.execute(_BUMP, {"t": tenant_id, "u": external_id}).first()
                pk, next_seq, n_choices, revision = row
                inserted = conn.execute(w.insert, {"user_id": pk, "seq": next_seq - 1, "prompt": prompt,
                                                   "chosen": chosen, "rejected": rejected,
                                                   "idempotency_key": idempotency_key, "created_at": now}).first()
                if inserted is not None:
                    conn.commit()
                    return (StoredChoice(next_seq - 1, prompt, chosen, rejected, now, idempotency_key),
                            UserInfo(pk, external_id, revision, n_choices), False)
                conn.rollback()  # the key was used: undo the bump
        except (IntegrityError, OperationalError):
            continue  # a lost race or a serialisation failure: the transaction rolled back whole
        replay = _replay(engine, tenant_id, external_id, idempotency_key)
        if replay is None:  # the user was deleted meanwhile: start again
            continue
        seen, user = replay
        if (seen.prompt, seen.chosen, seen.rejected) != (prompt, chosen, rejected):
            raise Conflict(f"Idempotency-Key {idempotency_key!r} was already used for a different "
                           f"choice (seq {seen.seq}); use a new key for a new choice")
        return seen, user, True
    raise RuntimeError("add_choice failed after 8 attempts")


def _replay(engine: Engine, tenant_id: int, external_id: str,
            key: str | None) -> tuple[StoredChoice, UserInfo] | None:
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.tenant_id == tenant_id, User.external_id == external_id))
        seen = None if user is None else session.scalar(
            select(Choice).where(Choice.user_id == user.id, Choice.idempotency_key == key))
        return None if seen is None else (StoredChoice.of(seen), _info(user))


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def list_choices(engine: Engine, user: UserInfo, include_undone: bool = False) -> list[StoredChoice]:
    """The user's choices in the order they were made (undone ones only when asked)."""
    with Session(engine) as session:
        query = select(Choice).where(Choice.user_id == user.pk).order_by(Choice.seq)
        if not include_undone:
            query = query.where(Choice.undone_at.is_(None))
        return [StoredChoice.of(c) for c in session.scalars(query)]


def undo_last(engine: Engine, tenant_id: int, external_id: str) -> tuple[StoredChoice | None, UserInfo | None]:
    """Tombstone the user's newest live choice. Returns (that choice or None, user or None)."""
    def body(session: Session) -> tuple[StoredChoice | None, UserInfo | None]:
        user = _locked_user(session, tenant_id, external_id, create=False)
        if user is None:
            return None, None
        last = session.scalar(select(Choice).where(Choice.user_id == user.id, Choice.undone_at.is_(None))
                              .order_by(Choice.seq.desc()).limit(1))
        if last is None:
            return None, _info(user)
        last.undone_at = utcnow()
        user.n_choices -= 1
        user.revision += 1
        session.flush()
        return StoredChoice.of(last), _info(user)

    return _write(engine, body)


def delete_user(engine: Engine, tenant_id: int, external_id: str) -> int | None:
    """Forget the user and all their choices; returns how many choices went (None: no user)."""
    def body(session: Session) -> int | None:
        user = _locked_user(session, tenant_id, external_id, create=False)
        if user is None:
            return None
        n = session.scalar(select(func.count()).select_from(Choice).where(Choice.user_id == user.id))
        session.execute(delete(Choice).where(Choice.user_id == user.id))
        session.execute(delete(User).where(User.id == user.id))
        return int(n or 0)

    return _write(engine, body)


def put_pool(engine: Engine, tenant_id: int, name: str, questions: list[dict[str, Any]],
             candidates: dict[str, Any] | None) -> bool:
    """Register (or replace) a question pool; returns True when it is new."""
    def body(session: Session) -> bool:
        pool = session.scalar(select(Pool).where(Pool.tenant_id == tenant_id, Pool.name == name))
        if pool is None:
            session.add(Pool(tenant_id=tenant_id, name=name, questions=questions, candidates=candidates))
            session.flush()
            return True
        pool.questions, pool.candidates = questions, candidates
        return False

    return _write(engine, body)


def get_pool(engine: Engine, tenant_id: int, name: str) -> tuple[list[dict[str, Any]], dict | None] | None:
    """(questions, candidates) of a registered pool, or None."""
    with Session(engine) as session:
        pool = session.scalar(select(Pool).where(Pool.tenant_id == tenant_id, Pool.name == name))
        return (list(pool.questions), pool.candidates) if pool is not None else None
