"""``pluralign serve``: run the personalization service, migrate its database, manage API keys.

``pluralign serve RUN --db URL`` starts the server (the group's default command, so the issue's
spelling works); ``pluralign serve migrate --db URL`` and ``pluralign serve keys create --db URL
--tenant NAME`` are its subcommands. See docs/serve.md.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer
from typer.core import TyperGroup


class _DefaultRun(TyperGroup):
    """A group whose first argument, when it is not a subcommand, is the RUN of ``serve run``."""

    def resolve_command(self, ctx, args):  # noqa: ANN001, ANN201 - click's signature
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(cls=_DefaultRun, no_args_is_help=True)
keys = typer.Typer(no_args_is_help=True)
app.add_typer(keys, name="keys", help="Create or revoke API keys (one tenant per name).")

DB_HELP = "Database URL: sqlite:///PATH (a file; WAL) or postgresql://USER@HOST:PORT/DB (psycopg 3)."
WORKER_HEALTHCHECK_S = 60  # seconds; see run()


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _engine(db: str):  # noqa: ANN202
    try:
        from ..serve.db import make_engine
    except ImportError as err:
        _fail(f"{err.name} is missing: install the serve extra (pip install 'pluralign[serve]')")
    try:
        return make_engine(db)
    except Exception as err:  # noqa: BLE001 - a bad URL: say which
        _fail(f"--db {db!r}: {err}")


def _migrate(engine, db: str) -> None:  # noqa: ANN001
    from sqlalchemy.exc import SQLAlchemyError

    from ..serve.migrate import upgrade
    try:
        upgrade(engine)
    except SQLAlchemyError as err:
        _fail(f"cannot migrate {db}: {err.__class__.__name__}: {str(err).splitlines()[0]}")


@app.command("run")
def run(
    run_dir: Path = typer.Argument(..., help="A run folder: a reward model (`pluralign train`, the demo), an "
                                             "NP-DPO policy (`pluralign policy train`) or CMPO (`pluralign cmpo train`)."),
    db: str = typer.Option(..., "--db", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (one per core)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    max_generations: int = typer.Option(8, "--max-generations", min=1,
                                        help="Policy runs: generations (and policy rankings) admitted at once per "
                                             "worker, running or queued; more get 503 + Retry-After."),
) -> None:
    """Serve RUN over HTTP: users, choices, rank, next-question, generate (policy runs), a web page
    at /, docs at /docs. The kind of run is read from the folder."""
    import uvicorn

    from ..policies.runs import PolicyRunError, find_run
    from ..serve.model import ServedModel

    try:
        kind, _ = find_run(run_dir)
    except PolicyRunError as err:
        _fail(str(err))
    engine = _engine(db)
    _migrate(engine, db)
    typer.echo(f"serving {run_dir} ({kind}) on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''}, "
               f"{engine.dialect.name}); the page at /, docs at /docs")
    if workers == 1:
        from ..serve.app import create_app
        from ..serve.generation import PolicyPool
        try:
            model = ServedModel.load(str(run_dir))
        except Exception as err:  # noqa: BLE001 - any load failure: name the folder
            _fail(f"cannot load {run_dir}: {err}")
        uvicorn.run(create_app(model, db, migrate=False, engine=engine,
                               policy_pool=PolicyPool(max_pending=max_generations)),
                    host=host, port=port, log_level=log_level)
        return
    engine.dispose()  # each worker loads the run and opens its own connections
    os.environ["PLURALIGN_SERVE_RUN"], os.environ["PLURALIGN_SERVE_DB"] = str(run_dir), db
    os.environ["PLURALIGN_SERVE_MAX_GENERATIONS"] = str(max_generations)
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pluralign-metrics-"))
    # uvicorn kills a worker that does not answer its health ping within this time; its answering
    # thread needs the GIL, which importing torch holds for seconds on a busy machine (the 5 s
    # default killed and restarted starting workers over and over at load average 10-16)
    uvicorn.run("pluralign.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level, timeout_worker_healthcheck=WORKER_HEALTHCHECK_S)


@app.command("migrate")
def migrate(db: str = typer.Option(..., "--db", help=DB_HELP)) -> None:
    """Create or upgrade the database schema (the server also does this at start-up)."""
    from ..serve.migrate import current, head

    from sqlalchemy.exc import SQLAlchemyError

    engine = _engine(db)
    try:
        before = current(engine)
    except SQLAlchemyError as err:
        _fail(f"cannot migrate {db}: {err.__class__.__name__}: {str(err).splitlines()[0]}")
    _migrate(engine, db)
    typer.echo(f"{db}: schema at revision {head()} (was {before or 'empty'})")


@keys.command("create")
def create_key(db: str = typer.Option(..., "--db", help=DB_HELP),
               tenant: str = typer.Option(..., "--tenant", help="Tenant name (created when new).")) -> None:
    """Print a new API key for TENANT. Only its hash is stored: this is the one time it is shown."""
    from ..serve.auth import create_key as create

    engine = _engine(db)
    _migrate(engine, db)
    try:
        typer.echo(create(engine, tenant))
    except ValueError as err:
        _fail(str(err))


@keys.command("revoke")
def revoke_key(db: str = typer.Option(..., "--db", help=DB_HELP),
               key: str = typer.Option(..., "--key", help="The key to revoke.")) -> None:
    """Revoke an API key (servers stop accepting it within 5 seconds)."""
    from ..serve.auth import revoke_key as revoke

    if not revoke(_engine(db), key):
        _fail("no such live key")
    typer.echo("revoked")
