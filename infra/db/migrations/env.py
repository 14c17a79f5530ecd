"""Alembic environment: migrations run on the connection infra.db.migrate hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through `depthcharge db migrate` (infra.db.migrate), not the alembic CLI"
    )

context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()
