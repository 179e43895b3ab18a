"""Anomalies and the readings they hold, the audit log, job state.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "anomalies",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("holds", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name="fk_anomalies_device_id_devices"),
        sa.PrimaryKeyConstraint("id", name="pk_anomalies"),
        sa.UniqueConstraint(
            "kind", "device_id", "meter", "window_start", name="uq_anomalies_kind_device_id_meter_window_start"
        ),
    )
    op.create_index("ix_anomalies_status", "anomalies", ["status"])
    op.create_table(
        "anomaly_readings",
        sa.Column("anomaly_id", _big_id, nullable=False),
        sa.Column("reading_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(["anomaly_id"], ["anomalies.id"], name="fk_anomaly_readings_anomaly_id_anomalies"),
        sa.PrimaryKeyConstraint("anomaly_id", "reading_id", name="pk_anomaly_readings"),
    )
    op.create_index("ix_anomaly_readings_reading_id", "anomaly_readings", ["reading_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_state"),
    )


def downgrade() -> None:
    for table in ("state", "audit_log", "anomaly_readings", "anomalies"):
        op.drop_table(table)
