"""Customer cards: tags, the deployment's own fields, a comment timeline.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("tags", sa.Text(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("custom", sa.Text(), nullable=False, server_default="{}"))
    with op.batch_alter_table("customers") as batch:
        batch.alter_column("tags", server_default=None)
        batch.alter_column("custom", server_default=None)
    op.create_table(
        "customer_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_customer_comments_customer_id_customers"),
        sa.PrimaryKeyConstraint("id", name="pk_customer_comments"),
    )
    op.create_index("ix_customer_comments_customer_id", "customer_comments", ["customer_id"])


def downgrade() -> None:
    op.drop_index("ix_customer_comments_customer_id", table_name="customer_comments")
    op.drop_table("customer_comments")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("custom")
        batch.drop_column("tags")
