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

from sqlalchemy import delete, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .db import Choice, Pool, User, utcnow

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


def get_user(engine: Engine, tenant_id: int, external_id: str) -> UserInfo | None:
    with Session(engine) as session:
        user = session.scalar(select(User).where(User.tenant_id == tenant_id, User.external_id == external_id))
        return _info(user) if user is not None else None


def ensure_user(engine: Engine, tenant_id: int, external_id: str) -> tuple[UserInfo, bool]:
    """The user, created when new; returns (user, created)."""
    def body(session: Session) -> tuple[UserInfo, bool]:
        existing = _locked_user(session, tenant_id, external_id, create=False)
        if existing is not None:
            return _info(existing), False
        return _info(_locked_user(session, tenant_id, external_id, create=True)), True

    return _write(engine, body)


def add_choice(engine: Engine, tenant_id: int, external_id: str, prompt: str, chosen: str, rejected: str,
               idempotency_key: str | None = None) -> tuple[StoredChoice, UserInfo, bool]:
    """Append a choice (creating the user when new). Returns (choice, user after it, replayed):
    ``replayed`` is True when ``idempotency_key`` was seen before and nothing was added."""
    def body(session: Session) -> tuple[StoredChoice, UserInfo, bool]:
        user = _locked_user(session, tenant_id, external_id, create=True)
        if idempotency_key is not None:
            seen = session.scalar(select(Choice).where(Choice.user_id == user.id,
                                                       Choice.idempotency_key == idempotency_key))
            if seen is not None:
                if (seen.prompt, seen.chosen, seen.rejected) != (prompt, chosen, rejected):
                    raise Conflict(f"Idempotency-Key {idempotency_key!r} was already used for a different "
                                   f"choice (seq {seen.seq}); use a new key for a new choice")
                return StoredChoice.of(seen), _info(user), True
        row = Choice(user_id=user.id, seq=user.next_seq, prompt=prompt, chosen=chosen, rejected=rejected,
                     idempotency_key=idempotency_key, created_at=utcnow())
        session.add(row)
        user.next_seq += 1
        user.n_choices += 1
        user.revision += 1
        session.flush()
        return StoredChoice.of(row), _info(user), False

    return _write(engine, body)


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
