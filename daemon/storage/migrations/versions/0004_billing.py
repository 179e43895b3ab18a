"""Billing: customers, sites, device assignments, contracts, invoices and their lines, numbering series.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daemon.storage.types import DecimalText, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("legal_name", sa.String(length=256), nullable=False),
        sa.Column("trade_name", sa.String(length=256), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("tax_id", sa.String(length=64), nullable=True),
        sa.Column("tax_scheme", sa.String(length=32), nullable=True),
        sa.Column("electronic_address", sa.String(length=256), nullable=True),
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("contacts", sa.Text(), nullable=False),
        sa.Column("payment_method", sa.String(length=64), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["customers.id"], name=op.f("fk_customers_parent_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("code", name=op.f("uq_customers_code")),
    )
    op.create_table(
        "invoice_series",
        sa.Column("series", sa.String(length=32), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("series", name=op.f("pk_invoice_series")),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_contracts_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
        sa.UniqueConstraint("code", name=op.f("uq_contracts_code")),
    )
    op.create_index(op.f("ix_contracts_customer_id"), "contracts", ["customer_id"], unique=False)
    op.create_table(
        "device_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_device_assignments_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_device_assignments_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_assignments")),
    )
    op.create_index(op.f("ix_device_assignments_customer_id"), "device_assignments", ["customer_id"], unique=False)
    op.create_index(
        op.f("ix_device_assignments_device_id_valid_from"),
        "device_assignments",
        ["device_id", "valid_from"],
        unique=False,
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("live_key", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("net", DecimalText(), nullable=False),
        sa.Column("tax", DecimalText(), nullable=False),
        sa.Column("total", DecimalText(), nullable=False),
        sa.Column("series", sa.String(length=32), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("number_text", sa.String(length=64), nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("snapshot", sa.Text(), nullable=True),
        sa.Column("credited_invoice_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("finalized_at", UTCDateTime(), nullable=True),
        sa.Column("finalized_by", sa.String(length=128), nullable=True),
        sa.Column("hold_override", sa.Text(), nullable=True),
        sa.Column("voided_at", UTCDateTime(), nullable=True),
        sa.Column("voided_by", sa.String(length=128), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["credited_invoice_id"], ["invoices.id"], name=op.f("fk_invoices_credited_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_invoices_customer_id_customers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("live_key", name=op.f("uq_invoices_live_key")),
        sa.UniqueConstraint("series", "number", name=op.f("uq_invoices_series_number")),
    )
    op.create_index(op.f("ix_invoices_customer_id"), "invoices", ["customer_id"], unique=False)
    op.create_index(op.f("ix_invoices_status"), "invoices", ["status"], unique=False)
    op.create_table(
        "sites",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_sites_customer_id_customers")),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sites")),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", _big_id, nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("adjustment", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=512), nullable=False),
        sa.Column("customer_code", sa.String(length=64), nullable=False),
        sa.Column("contract_code", sa.String(length=64), nullable=False),
        sa.Column("device_key", sa.String(length=128), nullable=True),
        sa.Column("meter", sa.String(length=32), nullable=True),
        sa.Column("pool", sa.String(length=64), nullable=True),
        sa.Column("service_start", sa.Date(), nullable=False),
        sa.Column("service_end", sa.Date(), nullable=False),
        sa.Column("quantity", DecimalText(), nullable=False),
        sa.Column("amount", DecimalText(), nullable=False),
        sa.Column("tax_rate", DecimalText(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("held", sa.Boolean(), nullable=False),
        sa.Column("provenance", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_lines_invoice_id_invoices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
    )
    op.create_index(op.f("ix_invoice_lines_invoice_id"), "invoice_lines", ["invoice_id"], unique=False)


def downgrade() -> None:
    for table in (
        "invoice_lines",
        "sites",
        "invoices",
        "device_assignments",
        "contracts",
        "invoice_series",
        "customers",
    ):
        op.drop_table(table)
