"""Schema migrations with Alembic; the scripts ship inside the package (``serve/migrations``).

:func:`upgrade` brings a database to the newest revision; the server calls it at start-up and
``pluralign serve migrate`` runs it alone (e.g. once before starting many workers or machines).
Alembic takes a lock-free path here, so on PostgreSQL a transaction-level advisory lock makes
concurrent starters run the migration one at a time.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK = 72_317_013  # advisory lock id for "pluralign serve migrate"


def _config(connection):  # noqa: ANN001, ANN202 - alembic types
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (default: the newest)."""
    from alembic import command

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
        command.upgrade(_config(conn), revision)


def current(engine: Engine) -> str | None:
    """The database's revision (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None)).get_current_head()
