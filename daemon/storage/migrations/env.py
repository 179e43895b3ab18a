"""Alembic environment: migrations run on a connection meterd hands over (see daemon.storage.migrate)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from daemon.storage.models import Base
from daemon.storage.partitions import not_a_partition


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        include_name=not_a_partition,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    msg = "run migrations through `meterd db upgrade`, which supplies the connection"
    raise TypeError(msg)
_run(_connection)
