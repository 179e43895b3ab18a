"""Dead letters once per input: a hash of the raw bytes, a repeat count, the last time seen.

A batch committed but not yet acknowledged when a hub dies or the broker restarts is
delivered again, and its malformed messages were dead-lettered a second time. The
same source, origin and bytes within the window now count as a repeat of one row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.add_column(sa.Column("raw_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("last_received_at", UTCDateTime(), nullable=True))
    bind = op.get_bind()
    letters = sa.table(
        "dead_letters",
        sa.column("id", sa.BigInteger()),
        sa.column("raw", sa.LargeBinary()),
        sa.column("received_at", UTCDateTime()),
        sa.column("raw_sha256", sa.String(64)),
        sa.column("last_received_at", UTCDateTime()),
    )
    for ident, raw, received_at in bind.execute(sa.select(letters.c.id, letters.c.raw, letters.c.received_at)):
        bind.execute(
            letters.update()
            .where(letters.c.id == ident)
            .values(raw_sha256=hashlib.sha256(raw).hexdigest(), last_received_at=received_at)
        )
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("raw_sha256", existing_type=sa.String(64), nullable=False)
        batch.alter_column("last_received_at", existing_type=UTCDateTime(), nullable=False)
        batch.alter_column("repeats", existing_type=sa.Integer(), server_default=None)
        batch.create_index("ix_dead_letters_source_origin_raw_sha256", ["source", "origin", "raw_sha256"])


def downgrade() -> None:
    with op.batch_alter_table("dead_letters") as batch:
        batch.drop_index("ix_dead_letters_source_origin_raw_sha256")
        batch.drop_column("last_received_at")
        batch.drop_column("repeats")
        batch.drop_column("raw_sha256")
