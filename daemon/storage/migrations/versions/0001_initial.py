"""Core tables: devices, readings, supplies, dead_letters.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("vendor", sa.String(128), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("address", sa.String(256), nullable=True),
        sa.Column("site", sa.String(128), nullable=False),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("key", name="uq_devices_key"),
    )
    op.create_table(
        "readings",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("reading_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("derived", sa.Boolean(), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_readings_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_readings"),
        sa.UniqueConstraint("device_id", "meter", "taken_at", name="uq_readings_device_id_meter_taken_at"),
        sa.UniqueConstraint("reading_id", "meter", name="uq_readings_reading_id_meter"),
    )
    op.create_index("ix_readings_taken_at", "readings", ["taken_at"])
    op.create_table(
        "supplies",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("reading_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("taken_at", UTCDateTime(), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("color", sa.String(64), nullable=True),
        sa.Column("level_percent", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_supplies_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_supplies"),
        sa.UniqueConstraint("device_id", "name", "taken_at", name="uq_supplies_device_id_name_taken_at"),
    )
    op.create_index("ix_supplies_reading_id", "supplies", ["reading_id"])
    op.create_table(
        "dead_letters",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("origin", sa.String(512), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
    )
    op.create_index("ix_dead_letters_received_at", "dead_letters", ["received_at"])


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_table("supplies")
    op.drop_table("readings")
    op.drop_table("devices")
