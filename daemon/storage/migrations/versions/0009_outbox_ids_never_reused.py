"""Outbox ids never reused on SQLite (AUTOINCREMENT).

The forwarder reads the outbox in id order after the last id it sent. SQLite's plain
rowid starts again after the largest id left, so once the outbox had drained, the next
reading got an id the forwarder had already passed and waited until its next reconnect.
PostgreSQL's identity sequence never goes back: nothing to do there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite cannot alter a key: the table is rebuilt, rows kept, under the new definition.
        with op.batch_alter_table("outbox", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("outbox", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
            pass
