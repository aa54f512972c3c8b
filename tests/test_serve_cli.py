"""``pluralign serve`` commands: migrate, keys create/revoke, and clear errors for bad runs and URLs."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")
from sqlalchemy.orm import Session  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from pluralign.cli import app  # noqa: E402
from pluralign.serve import auth  # noqa: E402
from pluralign.serve.db import make_engine  # noqa: E402
from pluralign.serve.migrate import head  # noqa: E402

runner = CliRunner()


def test_migrate_then_keys_create_and_revoke(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    r = runner.invoke(app, ["serve", "migrate", "--db", db])
    assert r.exit_code == 0 and f"revision {head()}" in r.output and "was empty" in r.output
    r = runner.invoke(app, ["serve", "keys", "create", "--db", db, "--tenant", "acme"])
    key = r.output.strip()
    assert r.exit_code == 0 and key.startswith("pa_") and len(key) > 40
    engine = make_engine(db)
    with Session(engine) as s:
        assert auth.tenant_for_key(s, key).name == "acme"
        assert auth.tenant_for_key(s, key + "x") is None
    assert runner.invoke(app, ["serve", "keys", "revoke", "--db", db, "--key", key]).exit_code == 0
    with Session(engine) as s:
        assert auth.tenant_for_key(s, key) is None
    r = runner.invoke(app, ["serve", "keys", "revoke", "--db", db, "--key", key])
    assert r.exit_code == 1 and "no such live key" in r.output


def test_serve_refuses_a_folder_that_is_not_a_run(tmp_path):
    r = runner.invoke(app, ["serve", str(tmp_path), "--db", f"sqlite:///{tmp_path / 'x.sqlite'}"])
    assert r.exit_code == 1 and "no run.json" in r.output


def test_unreachable_database_is_named(tmp_path):
    r = runner.invoke(app, ["serve", "migrate", "--db", "postgresql://nobody@127.0.0.1:1/none"])
    assert r.exit_code == 1 and "cannot migrate postgresql://nobody@127.0.0.1:1/none" in r.output
