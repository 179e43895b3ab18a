"""Readings keep the address and model they were read with (the device row holds only the latest).

Rows stored before take the device's current address and model: the best there is for them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.add_column(sa.Column("address", sa.String(256), nullable=True))
        batch.add_column(sa.Column("model", sa.String(256), nullable=True))
    readings = sa.table("readings", sa.column("device_id"), sa.column("address"), sa.column("model"))
    devices = sa.table("devices", sa.column("id"), sa.column("address"), sa.column("model"))
    of_device = devices.c.id == readings.c.device_id
    op.execute(
        readings.update().values(
            address=sa.select(devices.c.address).where(of_device).scalar_subquery(),
            model=sa.select(devices.c.model).where(of_device).scalar_subquery(),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("model")
        batch.drop_column("address")
