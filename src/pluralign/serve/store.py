"""Users, choices and question pools of one tenant: every function takes the caller's tenant id
and never reads a row of another tenant.

Writes run in one transaction each and lock the user row first (the counter bump of
:func:`add_choices`, ``SELECT ... FOR UPDATE`` elsewhere on PostgreSQL; on SQLite one writer at
a time holds the database, see :class:`_SqliteWriteLock`), so a user's sequence numbers, counts
and idempotency keys stay consistent under concurrent requests. A choice posted twice with one
idempotency key is stored once: the unique index on (user, key) makes the second insert do
nothing, and the second post answers with the first choice. Reads on the hot path (the user's
row, their choices' texts) are single statements on plain cursors (:class:`.db.Reader`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Sequence, TypeVar

import contextlib
import os
import threading
import weakref

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .db import Choice, Pool, User, is_sqlite, per_engine, reader, utcnow

try:
    import fcntl
except ImportError:  # Windows: the thread lock alone, and SQLite's busy handler between processes
    fcntl = None  # type: ignore[assignment]

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
    created: Any = None  # the row's creation time, as the reading path gives it (only compared)

    @property
    def version(self) -> tuple[int, Any, int]:
        """What the user's z depends on, the service's z-cache key. ``revision`` grows with every
        change to the choices, but a new row starts again at 0 and SQLite gives a new row the
        largest id again after a delete: the creation time tells two lives of one id apart, so a
        deleted user's z is never served to whoever gets the id next (in every worker: no eviction
        has to reach them)."""
        return self.pk, self.created, self.revision


def _info(user: User) -> UserInfo:
    return UserInfo(user.id, user.external_id, user.revision, user.n_choices, user.created_at)


def _write(engine: Engine, body: Callable[[Session], T], attempts: int = 8) -> T:
    """Run ``body`` in a write transaction, retrying on a lost unique-index race or a
    serialisation failure (the losing transaction is rolled back whole, so a retry is safe)."""
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with _writes(engine).lock, Session(engine.execution_options(write=True),
                                                expire_on_commit=False) as session:
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


_USER_SQL = "SELECT id, revision, n_choices, created_at FROM users WHERE tenant_id = ? AND external_id = ?"
_TEXTS_SQL = "SELECT prompt, chosen, rejected FROM choices WHERE user_id = ? AND undone_at IS NULL ORDER BY seq"


def get_user(engine: Engine, tenant_id: int, external_id: str) -> UserInfo | None:
    """The user's row, or None (one indexed read on a plain cursor: every rank starts here)."""
    r = reader(engine)
    rows = r.rows(r.sql(_USER_SQL), (tenant_id, external_id))
    return UserInfo(rows[0][0], external_id, rows[0][1], rows[0][2], rows[0][3]) if rows else None


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
_BY_USER = (_users.c.tenant_id == bindparam("t"), _users.c.external_id == bindparam("u"))
_BUMP = (update(_users).where(*_BY_USER)
         .values(next_seq=_users.c.next_seq + 1, n_choices=_users.c.n_choices + 1, revision=_users.c.revision + 1)
         .returning(_users.c.id, _users.c.next_seq, _users.c.n_choices, _users.c.revision))
_UNBUMP = (update(_users).where(_users.c.id == bindparam("pk"))
           .values(next_seq=_users.c.next_seq - 1, n_choices=_users.c.n_choices - 1, revision=_users.c.revision - 1))
_SEEN = select(_choices.c.seq, _choices.c.prompt, _choices.c.chosen, _choices.c.rejected, _choices.c.created_at,
               _choices.c.undone_at).where(_choices.c.user_id == bindparam("pk"),
                                           _choices.c.idempotency_key == bindparam("k"))
_writers: "weakref.WeakKeyDictionary[Engine, _Writes]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class NewChoice:
    """A choice to append for (tenant, user), with its optional idempotency key."""

    tenant_id: int
    external_id: str
    prompt: str
    chosen: str
    rejected: str
    idempotency_key: str | None = None


class _SqliteWriteLock:
    """SQLite's writers, threads and worker processes, take turns on this lock before they
    begin: a thread lock, then an exclusive ``flock`` on ``DB-writelock`` beside the database.
    Without it they queue in SQLite's busy handler, which sleeps 1, 2, 5, 10, ... 100 ms between
    tries however soon the lock is free; with two worker processes writing, those sleeps were
    most of a posted choice's time. The kernel wakes a ``flock`` waiter at once. Writers that do
    not take it (the CLI's ``keys create``) still queue in the busy handler, as before."""

    def __init__(self, database: str | None) -> None:
        self._thread_lock = threading.Lock()
        self._fd: int | None = None
        if database and database != ":memory:" and fcntl is not None:
            self._fd = os.open(f"{database}-writelock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    def __del__(self) -> None:
        if self._fd is not None:
            os.close(self._fd)


class _Writes:
    """An engine's write statements (compiled once; SQLAlchemy caches them) and, on SQLite,
    the writers' lock (:class:`_SqliteWriteLock`)."""

    def __init__(self, engine: Engine) -> None:
        dialect = sqlite if is_sqlite(engine) else postgresql
        self.engine = engine.execution_options(write=True)
        self.new_user = (dialect.insert(_users).values(tenant_id=bindparam("t"), external_id=bindparam("u"),
                                                       revision=0, n_choices=0, next_seq=0, created_at=bindparam("now"))
                         .on_conflict_do_nothing(index_elements=["tenant_id", "external_id"]))
        self.insert = (dialect.insert(_choices).on_conflict_do_nothing(index_elements=["user_id", "idempotency_key"])
                       .returning(_choices.c.id))
        self.lock: Any = _SqliteWriteLock(engine.url.database) if is_sqlite(engine) else contextlib.nullcontext()


def _writes(engine: Engine) -> _Writes:
    return per_engine(_writers, engine, _Writes)


Added = tuple[StoredChoice, UserInfo, bool]


def add_choice(engine: Engine, tenant_id: int, external_id: str, prompt: str, chosen: str, rejected: str,
               idempotency_key: str | None = None) -> Added:
    """Append a choice (creating the user when new). Returns (choice, user after it, replayed):
    ``replayed`` is True when ``idempotency_key`` was seen before and nothing was added.
    Raises :class:`Conflict` when the key was used for a different choice."""
    (result,) = add_choices(engine, [NewChoice(tenant_id, external_id, prompt, chosen, rejected, idempotency_key)])
    if isinstance(result, Conflict):
        raise result
    return result


def add_choices(engine: Engine, items: Sequence[NewChoice]) -> list[Added | Conflict]:
    """Append several choices in one transaction (one commit: the group commit of
    :mod:`.groupcommit`); each item's result as :func:`add_choice` returns it, or its Conflict.

    Per item two statements: bump the user's counters, which locks the user's row (so one
    user's writers take turns) and returns the new sequence number, then insert the choice
    ``ON CONFLICT (user, idempotency key) DO NOTHING``. Nothing inserted means the key was
    used before, by a committed choice or an earlier item of this group (a concurrent insert of
    the same key waits for the other transaction, and the row lock orders them anyway): the
    bump is undone and the stored choice is the answer (or a Conflict when its body differs).
    Items are visited in (tenant, user) order, so two groups lock users in the same order and
    cannot deadlock; one user's items keep their order. A lost race or a serialisation failure
    rolls the whole group back and it is tried again."""
    w = _writes(engine)
    order = sorted(range(len(items)), key=lambda i: (items[i].tenant_id, items[i].external_id))
    last: Exception | None = None
    for _attempt in range(8):
        out: list[Any] = [None] * len(items)
        try:
            with w.lock, w.engine.connect() as conn:  # the first statement begins the transaction
                for i in order:
                    out[i] = _add_one(conn, w, items[i])
                conn.commit()
            return out
        except (IntegrityError, OperationalError) as err:
            last = err
    raise RuntimeError(f"storing {len(items)} choice(s) failed after 8 attempts: {last}") from last


def _add_one(conn: Any, w: _Writes, item: NewChoice) -> Added | Conflict:
    now, who = utcnow(), {"t": item.tenant_id, "u": item.external_id}
    row = conn.execute(_BUMP, who).first()
    if row is None:  # a new user (a concurrent creator makes this insert do nothing)
        conn.execute(w.new_user, {**who, "now": now})
        row = conn.execute(_BUMP, who).first()
    pk, next_seq, n_choices, revision = row
    inserted = conn.execute(w.insert, {"user_id": pk, "seq": next_seq - 1, "prompt": item.prompt,
                                       "chosen": item.chosen, "rejected": item.rejected,
                                       "idempotency_key": item.idempotency_key, "created_at": now}).first()
    if inserted is not None:
        return (StoredChoice(next_seq - 1, item.prompt, item.chosen, item.rejected, now, item.idempotency_key),
                UserInfo(pk, item.external_id, revision, n_choices), False)
    conn.execute(_UNBUMP, {"pk": pk})  # the key was used before: nothing added
    seen = conn.execute(_SEEN, {"pk": pk, "k": item.idempotency_key}).first()
    if (seen.prompt, seen.chosen, seen.rejected) != (item.prompt, item.chosen, item.rejected):
        return Conflict(f"Idempotency-Key {item.idempotency_key!r} was already used for a different "
                        f"choice (seq {seen.seq}); use a new key for a new choice")
    return (StoredChoice(seen.seq, seen.prompt, seen.chosen, seen.rejected, seen.created_at, item.idempotency_key,
                         seen.undone_at is not None),
            UserInfo(pk, item.external_id, revision - 1, n_choices - 1), True)


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
