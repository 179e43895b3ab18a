"""Supply history compacted to its changes plus a daily heartbeat per cartridge; replenishment alerts (issue 23).

A row is dropped only when its cartridge's kept row before it has the same kind, colour and
level and is less than a day older: the rule daemon/storage/supplies.py applies to new readings
(restated here, as a migration must not change when that module does). Every change stays.
The downgrade cannot bring back the dropped copies; read back, readings show the same levels.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_HEARTBEAT = timedelta(days=1)
_DELETE_CHUNK = 1000

supplies = sa.table(
    "supplies",
    sa.column("id", sa.BigInteger),
    sa.column("device_id", sa.Integer),
    sa.column("name", sa.String),
    sa.column("taken_at", UTCDateTime),
    sa.column("kind", sa.String),
    sa.column("color", sa.String),
    sa.column("level_percent", sa.SmallInteger),
)


def upgrade() -> None:
    op.create_table(
        "supply_alerts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("cartridge_since", UTCDateTime(), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("level_percent", sa.SmallInteger(), nullable=True),
        sa.Column("empty_on", sa.Date(), nullable=True),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_supply_alerts_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_supply_alerts"),
        sa.UniqueConstraint(
            "device_id", "name", "cartridge_since", name="uq_supply_alerts_device_id_name_cartridge_since"
        ),
    )
    op.create_index("ix_supply_alerts_closed_at", "supply_alerts", ["closed_at"])
    _compact()


def _compact() -> None:
    bind = op.get_bind()
    c = supplies.c
    rows = bind.execute(
        sa.select(c.id, c.device_id, c.name, c.taken_at, c.kind, c.color, c.level_percent).order_by(
            c.device_id, c.name, c.taken_at, c.id
        )
    )
    redundant: list[int] = []
    kept: tuple[object, ...] | None = None  # (device, name, taken_at, kind, color, level) of the last row kept
    for ident, device_id, name, taken_at, kind, color, level in rows:
        same_cartridge = kept is not None and kept[:2] == (device_id, name)
        if same_cartridge and kept[3:] == (kind, color, level) and taken_at - kept[2] < _HEARTBEAT:  # type: ignore[index]
            redundant.append(ident)
        else:
            kept = (device_id, name, taken_at, kind, color, level)
    for start in range(0, len(redundant), _DELETE_CHUNK):
        bind.execute(supplies.delete().where(c.id.in_(redundant[start : start + _DELETE_CHUNK])))


def downgrade() -> None:
    """The alerts go; the dropped supply rows were copies of the row before them and stay gone."""
    op.drop_index("ix_supply_alerts_closed_at", table_name="supply_alerts")
    op.drop_table("supply_alerts")
