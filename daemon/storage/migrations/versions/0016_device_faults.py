"""Device status and faults as episodes with a start and an end, and their service alerts (issue 23).

A poll reads hrDeviceStatus, the hrPrinterDetectedErrorState bits and the Printer-MIB alert table;
a row is written when one of them changes, not on every poll, and a service fault open longer than
``service.alert_after_minutes`` marks its one alert on the row.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_faults",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(512), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("alert_raised_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_device_faults_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_device_faults"),
    )
    op.create_index("ix_device_faults_device_id_ended_at", "device_faults", ["device_id", "ended_at"])
    op.create_index("ix_device_faults_ended_at", "device_faults", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_device_faults_ended_at", table_name="device_faults")
    op.drop_index("ix_device_faults_device_id_ended_at", table_name="device_faults")
    op.drop_table("device_faults")
