"""PostgreSQL: `readings` partitioned by calendar month (UTC), partitions made before rows need them.

A month's partition is `readings_yYYYYmMM`, holding taken_at in [first of the month, first of
the next) in UTC. The store makes the current month and the next two when it opens, and any
month a batch brings that it has not seen (a backfill of last year's export); two hubs doing so
at once take turns on a transaction-level advisory lock. An old month can be detached and
archived without touching the others: `ALTER TABLE readings DETACH PARTITION readings_y2025m01`.
SQLite has no partitions: these functions are PostgreSQL's only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MONTHS_AHEAD: Final = 2
# pg_advisory_xact_lock's key for partition DDL: any constant, the same in every meterd process.
_LOCK_KEY: Final = 0x6D65_7465_7264_0020
_KIND: Final = text("SELECT relkind FROM pg_class WHERE relname = 'readings' AND relnamespace = 'public'::regnamespace")
_EXISTING: Final = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings'"
)

Month = tuple[int, int]
_PARTITION_NAME: Final = re.compile(r"readings_y\d{4}m\d{2}")


def not_a_partition(name: str | None, kind: str, _parents: object = None) -> bool:
    """Alembic's include_name: a month's partition (and its indexes) is the store's, not the models'."""
    return kind not in {"table", "index"} or name is None or _PARTITION_NAME.match(name) is None


def month_of(moment: datetime) -> Month:
    utc = moment.astimezone(UTC)
    return utc.year, utc.month


def months_from(start: Month, count: int) -> list[Month]:
    year, month = start
    months = []
    for _ in range(count):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)  # noqa: PLR2004 - December
    return months


def partition_name(month: Month) -> str:
    return f"readings_y{month[0]:04d}m{month[1]:02d}"


def create_statement(month: Month) -> str:
    """The DDL of one month's partition (idempotent); the bounds are UTC instants."""
    [start, end] = months_from(month, 2)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF readings "
        f"FOR VALUES FROM ('{start[0]:04d}-{start[1]:02d}-01 00:00:00+00') "
        f"TO ('{end[0]:04d}-{end[1]:02d}-01 00:00:00+00')"
    )


def create_months(connection: Connection, months: Iterable[Month]) -> None:
    """Synchronous form, for the migration."""
    for month in sorted(set(months)):
        connection.execute(text(create_statement(month)))


class MonthlyPartitions:
    """The months this process knows have a partition; makes the missing ones in their own transaction."""

    def __init__(self) -> None:
        self._known: set[Month] = set()

    async def ensure(self, engine: AsyncEngine, moments: Iterable[datetime]) -> None:
        missing = {month_of(moment) for moment in moments} - self._known
        if not missing:
            return
        async with engine.begin() as conn:
            if (await conn.execute(_KIND)).scalar_one_or_none() != "p":
                return  # a schema before migration 0021 (a store opened without upgrading): nothing to make
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            existing = set((await conn.execute(_EXISTING)).scalars())
            for month in sorted(missing):
                if partition_name(month) not in existing:
                    await conn.execute(text(create_statement(month)))
        # Committed: only now may later batches skip the check.
        self._known |= missing

    def forget(self) -> None:
        """After a failed write: a partition may have been detached or dropped by hand since."""
        self._known.clear()
