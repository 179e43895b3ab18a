"""Sessions keep their last use, so the console's idle timeout survives a restart of the daemon.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for sessions begun before: their idle time counts from when they were created.
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_used_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("last_used_at")
