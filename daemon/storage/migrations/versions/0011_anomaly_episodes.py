"""Anomalies are episodes: how many findings joined one, and when its condition ended.

One item per device x kind x contiguous run of suspect readings (issue 19): a finding that
continues a running episode updates it (last seen, count, current evidence) instead of
opening an item of its own; ``ended_at`` is set once a reading shows the condition over.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.add_column(sa.Column("occurrences", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("ended_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("anomalies") as batch:
        batch.drop_column("ended_at")
        batch.drop_column("occurrences")
