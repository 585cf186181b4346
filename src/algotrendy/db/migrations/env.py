"""Alembic environment. Migrations always run on a connection handed in by ``db.migrate``
(so SQLite and PostgreSQL, sync or async, take the same path)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
target_metadata = context.config.attributes.get("target_metadata")
if connection is None:
    raise RuntimeError("run migrations through `algotrendy db upgrade` (algotrendy.db.migrate)")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
