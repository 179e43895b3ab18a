"""Hub confirmations in the store: hubs of a shared group confirm together what they committed.

Each hub kept its sites' confirmed positions in the ``state`` table (``mqtt.confirmed.*``),
which only a hub seeing a site's whole stream can compute. The positions committed by any
hub now go to ``mqtt_committed`` and the confirmed one per site to ``mqtt_confirmed``;
the old state rows move there.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_OLD_KEY = "mqtt.confirmed."


def upgrade() -> None:
    confirmed = op.create_table(
        "mqtt_confirmed",
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hub", sa.String(64), nullable=False),
        sa.Column("moved_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site"),
    )
    op.create_table(
        "mqtt_committed",
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("epoch", sa.String(64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev", sa.BigInteger(), nullable=False),
        sa.Column("committed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site", "epoch", "seq"),
    )
    state = sa.table("state", sa.column("key", sa.String), sa.column("value", sa.Text))
    old = op.get_bind().execute(sa.select(state.c.value).where(state.c.key.startswith(_OLD_KEY))).scalars().all()
    now = datetime.now(UTC)
    rows = [json.loads(value) for value in old]
    if rows:
        op.bulk_insert(
            confirmed,
            [
                {"site": r["site"], "epoch": r["epoch"], "seq": int(r["seq"]), "hub": uuid.uuid4().hex, "moved_at": now}
                for r in rows
            ],
        )
    op.execute(state.delete().where(state.c.key.startswith(_OLD_KEY)))


def downgrade() -> None:
    op.drop_table("mqtt_committed")
    op.drop_table("mqtt_confirmed")
