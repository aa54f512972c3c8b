"""Alembic environment: always given a live connection by :mod:`pluralign.serve.migrate`."""

from alembic import context

from pluralign.serve.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
