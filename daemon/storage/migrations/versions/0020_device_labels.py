"""Devices get a name, a location and a cost centre the office gives them, printed on the customer's invoice.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Optional and NULL for every device known before: nothing to fill in until the office does.
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("name", sa.String(128), nullable=True))
        batch.add_column(sa.Column("location", sa.String(256), nullable=True))
        batch.add_column(sa.Column("cost_centre", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("cost_centre")
        batch.drop_column("location")
        batch.drop_column("name")
