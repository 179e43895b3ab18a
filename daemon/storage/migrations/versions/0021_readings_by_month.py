"""PostgreSQL: `readings` partitioned by month of taken_at (issue 24); the copy key gains taken_at.

A partitioned table's unique keys must hold the partition column, so "one row per reading id
and meter" becomes (reading_id, meter, taken_at) on both stores: the same guarantee, since a
reading id comes with its one taken_at (a copy is the same payload). PostgreSQL's primary key
becomes (id, taken_at) for the same reason; ids still come from the one sequence.

On PostgreSQL the table is rebuilt: the old one is renamed, the partitioned one created with a
partition per month the rows span (and the months ahead), the rows copied over, the old one
dropped — one transaction, as long as a copy of the table takes. SQLite's table is rebuilt by
Alembic's batch mode to change its unique key.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from daemon.storage.partitions import MONTHS_AHEAD, create_months, month_of, months_from

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_COLUMNS = "id, reading_id, device_id, meter, value, unit, derived, taken_at, received_at, source, address, model"
_COLUMN_DDL = """
    id bigint NOT NULL DEFAULT nextval('readings_id_seq'::regclass),
    reading_id varchar(64) NOT NULL,
    device_id integer NOT NULL,
    meter varchar(32) NOT NULL,
    value bigint NOT NULL,
    unit varchar(16) NOT NULL,
    derived boolean NOT NULL,
    taken_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    source varchar(32) NOT NULL,
    address varchar(256),
    model varchar(256),
    CONSTRAINT fk_readings_device_id_devices FOREIGN KEY (device_id) REFERENCES devices (id)"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _partition()
    else:
        with op.batch_alter_table("readings", recreate="always") as batch:
            batch.drop_constraint("uq_readings_reading_id_meter", type_="unique")
            batch.create_unique_constraint("uq_readings_reading_id_meter_taken_at", ["reading_id", "meter", "taken_at"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _unpartition()
    else:
        with op.batch_alter_table("readings", recreate="always") as batch:
            batch.drop_constraint("uq_readings_reading_id_meter_taken_at", type_="unique")
            batch.create_unique_constraint("uq_readings_reading_id_meter", ["reading_id", "meter"])


def _partition() -> None:
    _rebuild(
        """CONSTRAINT pk_readings PRIMARY KEY (id, taken_at),
    CONSTRAINT uq_readings_device_id_meter_taken_at UNIQUE (device_id, meter, taken_at),
    CONSTRAINT uq_readings_reading_id_meter_taken_at UNIQUE (reading_id, meter, taken_at)""",
        partitioned=True,
    )


def _unpartition() -> None:
    _rebuild(
        """CONSTRAINT pk_readings PRIMARY KEY (id),
    CONSTRAINT uq_readings_device_id_meter_taken_at UNIQUE (device_id, meter, taken_at),
    CONSTRAINT uq_readings_reading_id_meter UNIQUE (reading_id, meter)""",
        partitioned=False,
    )


def _rebuild(keys: str, *, partitioned: bool) -> None:
    """The table set aside, made anew with ``keys`` (and its months' partitions), its rows copied back."""
    bind = op.get_bind()
    _set_aside()
    partition_by = " PARTITION BY RANGE (taken_at)" if partitioned else ""
    op.execute(f"CREATE TABLE readings ({_COLUMN_DDL},\n    {keys}){partition_by}")
    op.execute("CREATE INDEX ix_readings_taken_at ON readings (taken_at)")
    if partitioned:
        oldest, newest = bind.execute(sa.text("SELECT min(taken_at), max(taken_at) FROM readings_before_0021")).one()
        now = datetime.now(UTC)
        first = month_of(min(oldest, now) if oldest is not None else now)
        last = month_of(max(newest, now) if newest is not None else now)
        spanned = 12 * (last[0] - first[0]) + last[1] - first[1] + 1
        create_months(bind, months_from(first, spanned + MONTHS_AHEAD))
    op.execute(f"INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM readings_before_0021")  # noqa: S608
    op.execute("DROP TABLE readings_before_0021")
    op.execute("ALTER SEQUENCE readings_id_seq OWNED BY readings.id")


def _set_aside() -> None:
    """The current table renamed, with its constraint and index names freed for the new one."""
    bind = op.get_bind()
    op.execute("ALTER SEQUENCE readings_id_seq OWNED BY NONE")  # kept when the old table goes
    op.execute("ALTER TABLE readings RENAME TO readings_before_0021")
    names = bind.execute(
        sa.text("SELECT conname FROM pg_constraint WHERE conrelid = 'readings_before_0021'::regclass")
    ).scalars()
    for name in list(names):
        op.execute(f'ALTER TABLE readings_before_0021 RENAME CONSTRAINT "{name}" TO "{name}_before_0021"')
    op.execute("ALTER INDEX ix_readings_taken_at RENAME TO ix_readings_taken_at_before_0021")
