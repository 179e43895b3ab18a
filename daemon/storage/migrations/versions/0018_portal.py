"""The customer portal: users who belong to a customer, single-use links, change requests, reading photos.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("customer_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_users_customer_id_customers", "customers", ["customer_id"], ["id"])
    op.create_table(
        "portal_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_portal_links_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_portal_links"),
        sa.UniqueConstraint("token_hash", name="uq_portal_links_token_hash"),
    )
    op.create_table(
        "change_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("before", sa.Text(), nullable=False),
        sa.Column("after", sa.Text(), nullable=False),
        sa.Column("proof_name", sa.String(256), nullable=True),
        sa.Column("proof_type", sa.String(128), nullable=True),
        sa.Column("proof", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name="fk_change_requests_customer_id_customers"),
        sa.PrimaryKeyConstraint("id", name="pk_change_requests"),
    )
    op.create_index("ix_change_requests_status", "change_requests", ["status"])
    op.create_table(
        "reading_photos",
        sa.Column("reading_id", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("photo", sa.LargeBinary(), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("reading_id", name="pk_reading_photos"),
    )


def downgrade() -> None:
    op.drop_table("reading_photos")
    op.drop_index("ix_change_requests_status", table_name="change_requests")
    op.drop_table("change_requests")
    op.drop_table("portal_links")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("fk_users_customer_id_customers", type_="foreignkey")
        batch.drop_column("customer_id")
