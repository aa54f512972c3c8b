"""Tables and engines of the service's store (SQLAlchemy 2; SQLite by default, PostgreSQL by URL).

Every row belongs to a tenant: users are keyed by (tenant, the client's user id), so a query
that starts from the caller's tenant can never reach another tenant's rows. Choices are
append-only; an undo sets ``undone_at`` (a tombstone) instead of deleting, and ``DELETE user``
removes the user and every choice (the one hard delete, because people ask to be forgotten).

SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, and write
transactions start with ``BEGIN IMMEDIATE`` so two writers queue for the lock instead of one
failing half-way with "database is locked" when it upgrades a read lock.
"""

from __future__ import annotations

import threading
import weakref
from datetime import datetime, timezone
from typing import Any, Callable, Sequence, TypeVar

from sqlalchemy import (JSON, BigInteger, DateTime, ForeignKey, Integer, MetaData, String, Text,
                        UniqueConstraint, create_engine, event)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

T = TypeVar("T")

NAMING = {"ix": "ix_%(column_0_label)s", "uq": "uq_%(table_name)s_%(column_0_name)s",
          "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s", "pk": "pk_%(table_name)s"}
#: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements there).
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    """An API key, stored as the SHA-256 of the key: keys are 256-bit random tokens, so a fast
    hash is enough (no password stretching needed) and lookup is one indexed equality."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, never enough to use
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class User(Base):
    """A person of one tenant. ``revision`` grows on every new or undone choice: it versions
    the user's z (the cache key), so a new choice invalidates z in every worker at once."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "external_id", name="uq_users_tenant_external"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer, default=0)
    n_choices: Mapped[int] = mapped_column(Integer, default=0)  # live (not undone) choices
    next_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Choice(Base):
    """One answered pairwise question; ``seq`` orders a user's choices (0, 1, ...)."""

    __tablename__ = "choices"
    __table_args__ = (UniqueConstraint("user_id", "seq", name="uq_choices_user_seq"),
                      UniqueConstraint("user_id", "idempotency_key", name="uq_choices_user_idem"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Pool(Base):
    """A tenant's registered question pool (and, for the web page, candidates to re-rank)."""

    __tablename__ = "pools"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_pools_tenant_name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    questions: Mapped[list] = mapped_column(JSON)
    candidates: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def normalize_url(url: str) -> str:
    """``sqlite:///path`` stays; ``postgresql://`` uses psycopg 3; a bare path means SQLite."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a 30 s busy timeout, foreign keys and explicit
    transactions (``BEGIN``, or ``BEGIN IMMEDIATE`` under ``execution_options(write=True)``)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API objects
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn) -> None:  # noqa: ANN001
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=2 * pool_size, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Reader:
    """Single-statement reads on plain DB-API cursors, each its own transaction (autocommit):
    the hot path (a user's row on every rank, their choices on a z-cache miss). Through an ORM
    session the same indexed lookup cost 1.3 ms of CPU on SQLite and 2.1 ms on PostgreSQL,
    through a Core connection 0.3 / 0.9 ms, on a cursor 0.04 / 0.17 ms (docs/serve.md,
    "Performance"). One statement needs no transaction around it: it reads one snapshot.

    SQLite's connections are in autocommit already (``make_engine``). PostgreSQL reads go
    through a second, small engine in AUTOCOMMIT, so returning a connection to the pool costs
    no ROLLBACK round trip; it skips the pre-ping round trip too, and instead retries a read
    once on a fresh connection when the pooled one turns out dead (a restarted database)."""

    def __init__(self, engine: Engine) -> None:
        self.sqlite = is_sqlite(engine)
        self.engine = engine if self.sqlite else create_engine(
            engine.url, isolation_level="AUTOCOMMIT", pool_size=5, max_overflow=10)
        self._dead = engine.dialect.loaded_dbapi.OperationalError
        if not self.sqlite:  # its connections close with the engine's
            event.listen(engine, "engine_disposed", lambda _engine: self.dispose())

    def sql(self, statement: str) -> str:
        """``statement`` with ``?`` placeholders in the driver's style."""
        return statement if self.sqlite else statement.replace("?", "%s")

    def rows(self, statement: str, params: Sequence[Any]) -> list[tuple]:
        for attempt in (0, 1):
            conn = self.engine.raw_connection()
            try:
                cur = conn.cursor()
                cur.execute(statement, params)
                rows = cur.fetchall()
                cur.close()
                return rows
            except self._dead:
                if attempt or self.sqlite:
                    raise
                conn.invalidate()  # a dead pooled connection: drop it and retry on a new one
            finally:
                conn.close()
        raise AssertionError("unreachable")

    def dispose(self) -> None:
        if not self.sqlite:
            self.engine.dispose()


_readers: "weakref.WeakKeyDictionary[Engine, Reader]" = weakref.WeakKeyDictionary()
_per_engine_lock = threading.Lock()


def per_engine(cache: "weakref.WeakKeyDictionary[Engine, T]", engine: Engine, make: Callable[[Engine], T]) -> T:
    """``cache[engine]``, made by ``make(engine)`` on first use, once even when threads race
    (what a service keeps per engine: its :class:`Reader`, the store's compiled writes and lock)."""
    found = cache.get(engine)
    if found is None:
        with _per_engine_lock:
            found = cache.get(engine)
            if found is None:
                found = cache[engine] = make(engine)
    return found


def reader(engine: Engine) -> Reader:
    """The :class:`Reader` of ``engine`` (made on first use)."""
    return per_engine(_readers, engine, Reader)
