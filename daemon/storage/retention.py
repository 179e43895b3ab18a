"""Raw readings older than `storage.raw_retention_months` thinned to what billing needs for ever.

Kept for ever, whatever their age: the first and the last value of each device's meter on each
UTC day (the boundary reads every billing period, estimate and re-bill starts from), every
reading an anomaly involves (its evidence, a confirmed reset's restart), readings a person
entered (any source but `snmp` and `mqtt`: manual entries, portal readings, imports), and those
with a photo. An invoice keeps the reads it was computed from in its own lines, so it never
depends on raw rows. Pruning goes a day at a time up to the cutoff, one transaction a day,
and remembers how far it got, so a daemon that was off catches up and none is visited twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, delete, exists, func, or_, select

from daemon.storage.models import AnomalyReading, ReadingPhotoRow, ReadingRow
from daemon.storage.repository import Store

PRUNED_THROUGH: Final = "retention.readings_pruned_before"
PRUNED_SOURCES: Final = ("snmp", "mqtt")  # what machines sent; people's entries stay


@dataclass(frozen=True, slots=True)
class Pruned:
    days: int
    rows: int


def cutoff(now: datetime, months: int) -> datetime:
    """Midnight UTC of the same day ``months`` calendar months before ``now`` (the 31st falls back)."""
    utc = now.astimezone(UTC)
    year, month = divmod(utc.year * 12 + utc.month - 1 - months, 12)
    day = utc.day
    while True:
        try:
            return datetime(year, month + 1, day, tzinfo=UTC)
        except ValueError:
            day -= 1


async def prune_readings(store: Store, before: datetime) -> Pruned:
    """Thin raw readings taken before ``before`` (a UTC midnight), from where the last run stopped."""
    done = await store.get_state(PRUNED_THROUGH)
    start = datetime.fromisoformat(done) if done else await _oldest_prunable(store)
    if start is None or start >= before:
        return Pruned(0, 0)
    day = datetime.combine(start.astimezone(UTC).date(), time(), tzinfo=UTC)
    days = rows = 0
    while day < before:
        rows += await store.guard(_prune_day(store, day), "prune old readings")
        day += timedelta(days=1)
        days += 1
        await store.set_state(PRUNED_THROUGH, day.isoformat())
    return Pruned(days, rows)


async def _oldest_prunable(store: Store) -> datetime | None:
    async def _query() -> datetime | None:
        stmt = select(func.min(ReadingRow.taken_at)).where(ReadingRow.source.in_(PRUNED_SOURCES))
        async with store.engine.connect() as conn:
            oldest: datetime | None = (await conn.execute(stmt)).scalar_one()
        return oldest

    return await store.guard(_query(), "read the oldest reading")


async def _prune_day(store: Store, day: datetime) -> int:
    on_the_day = (ReadingRow.taken_at >= day) & (ReadingRow.taken_at < day + timedelta(days=1))
    ends = (
        select(
            ReadingRow.device_id,
            ReadingRow.meter,
            func.min(ReadingRow.taken_at).label("first"),
            func.max(ReadingRow.taken_at).label("last"),
        )
        .where(on_the_day)
        .group_by(ReadingRow.device_id, ReadingRow.meter)
        .subquery()
    )
    boundary = exists().where(
        ends.c.device_id == ReadingRow.device_id,
        ends.c.meter == ReadingRow.meter,
        or_(ReadingRow.taken_at == ends.c.first, ReadingRow.taken_at == ends.c.last),
    )
    stmt = delete(ReadingRow).where(
        on_the_day,
        ReadingRow.source.in_(PRUNED_SOURCES),
        ~boundary,
        ~_referenced(AnomalyReading.reading_id),
        ~_referenced(ReadingPhotoRow.reading_id),
    )
    async with store.engine.begin() as conn:
        return (await conn.execute(stmt)).rowcount


def _referenced(column: Any) -> ColumnElement[bool]:  # noqa: ANN401 - a mapped column
    return exists().where(column == ReadingRow.reading_id)
