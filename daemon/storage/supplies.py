"""Supply levels stored when they change, plus a daily heartbeat per cartridge, not on every poll.

A level moves a percent every few days while a device is polled every 15 minutes: storing every
poll's levels writes ~1.4 billion rows a year at 10,000 printers for nothing new. A reading's
supplies are kept when a level, kind or colour differs from the cartridge's row at or before the
reading, or that row is a day old or more (the heartbeat). Read back, a reading shows, per
supply, the latest row at or before it; a supply with no row in the day up to the reading was
not reported then (every reported supply has one, by the heartbeat).

A reading that arrives late (older than rows already stored) is compared with the row before it
the same way; a change it brings is kept, and readings stored between it and the next row then
show its level: the one case where read-back levels are those of a later poll of that day.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from collectors.base import Reading, Supply
from daemon.storage.models import SupplyLevel

HEARTBEAT: Final = timedelta(days=1)
_CHUNK: Final = 1000  # devices per IN (...): far below SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class _Row:
    taken_at: datetime
    kind: str
    color: str | None
    level: int | None

    def same_as(self, supply: Supply) -> bool:
        return (self.kind, self.color, self.level) == (supply.kind, supply.color, supply.level_percent)


class _History:
    """Stored rows per (device id, supply name), oldest first, as fetched from the store."""

    def __init__(self, rows: Iterable[tuple[int, str, datetime, str, str | None, int | None]]) -> None:
        self.rows: dict[tuple[int, str], list[_Row]] = {}
        for device_id, name, taken_at, kind, color, level in rows:
            self.rows.setdefault((device_id, name), []).append(_Row(taken_at, kind, color, level))

    def at_or_before(self, device_id: int, name: str, moment: datetime) -> _Row | None:
        rows = self.rows.get((device_id, name), [])
        index = bisect_right([r.taken_at for r in rows], moment)
        return rows[index - 1] if index else None

    def add(self, device_id: int, name: str, row: _Row) -> None:
        rows = self.rows.setdefault((device_id, name), [])
        rows.insert(bisect_right([r.taken_at for r in rows], row.taken_at), row)


async def _fetch(conn: AsyncConnection, device_ids: Iterable[int], since: datetime, until: datetime) -> _History:
    ids = sorted(set(device_ids))
    found: list[tuple[int, str, datetime, str, str | None, int | None]] = []
    for start in range(0, len(ids), _CHUNK):
        stmt = (
            select(SupplyLevel.device_id, SupplyLevel.name, SupplyLevel.taken_at, SupplyLevel.kind,
                   SupplyLevel.color, SupplyLevel.level_percent)
            .where(SupplyLevel.device_id.in_(ids[start : start + _CHUNK]), SupplyLevel.taken_at > since,
                   SupplyLevel.taken_at <= until)
            .order_by(SupplyLevel.taken_at, SupplyLevel.id)
        )  # fmt: skip
        found += [tuple(row) for row in await conn.execute(stmt)]  # type: ignore[misc]
    return _History(found)


async def supplies_worth_storing(
    conn: AsyncConnection, readings: Sequence[Reading], device_ids: dict[str, int]
) -> set[tuple[str, str]]:
    """(reading id, supply name) of the supplies in ``readings`` that are news: changed, new, or due a heartbeat.

    A supply at the very instant of a stored row is kept too: the insert then finds its copy
    and the reading is judged new or duplicate by its rows, as before.
    """
    with_supplies = [r for r in readings if r.supplies]
    if not with_supplies:
        return set()
    times = [r.taken_at_utc for r in with_supplies]
    history = await _fetch(conn, (device_ids[r.device.key] for r in with_supplies), min(times) - HEARTBEAT, max(times))
    keep: set[tuple[str, str]] = set()
    for reading in sorted(with_supplies, key=lambda r: r.taken_at_utc):
        device_id, moment = device_ids[reading.device.key], reading.taken_at_utc
        for supply in reading.supplies:
            before = history.at_or_before(device_id, supply.name, moment)
            if (
                before is None
                or before.taken_at == moment
                or moment - before.taken_at >= HEARTBEAT
                or not (before.same_as(supply))
            ):
                keep.add((reading.id, supply.name))
                if before is None or before.taken_at != moment:
                    history.add(device_id, supply.name, _Row(moment, supply.kind, supply.color, supply.level_percent))
    return keep


async def supplies_as_of(
    conn: AsyncConnection, readings: Sequence[tuple[str, int, datetime]]
) -> dict[str, tuple[Supply, ...]]:
    """Each reading's supplies (reading id, device id, taken at -> levels as of then), in the device's order."""
    if not readings:
        return {}
    device_ids = {device_id for _, device_id, _ in readings}
    times = [moment for _, _, moment in readings]
    history = await _fetch(conn, device_ids, min(times) - HEARTBEAT, max(times))
    order = await _first_seen(conn, device_ids)
    names: dict[int, list[str]] = {}
    for owner, name in history.rows:
        names.setdefault(owner, []).append(name)
    out: dict[str, tuple[Supply, ...]] = {}
    for reading_id, device_id, moment in readings:
        found = []
        for name in names.get(device_id, []):
            row = history.at_or_before(device_id, name, moment)
            if row is not None and moment - row.taken_at < HEARTBEAT:
                found.append((order.get((device_id, name), 0), Supply(name, row.kind, row.color, row.level)))
        if found:
            out[reading_id] = tuple(supply for _, supply in sorted(found, key=lambda pair: pair[0]))
    return out


async def _first_seen(conn: AsyncConnection, device_ids: set[int]) -> dict[tuple[int, str], int]:
    """The id of each supply's first row: the order the device lists its supplies in."""
    ids = sorted(device_ids)
    order: dict[tuple[int, str], int] = {}
    for start in range(0, len(ids), _CHUNK):
        stmt = (
            select(SupplyLevel.device_id, SupplyLevel.name, func.min(SupplyLevel.id))
            .where(SupplyLevel.device_id.in_(ids[start : start + _CHUNK]))
            .group_by(SupplyLevel.device_id, SupplyLevel.name)
        )
        order.update({(device_id, name): first for device_id, name, first in await conn.execute(stmt)})
    return order
