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

import dataclasses
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.supplies import (
    Cartridge,
    Forecast,
    Level,
    PageCounter,
    Yield,
    cartridges,
    forecast,
    part_number,
    replenishment_due,
    yields,
)
from daemon.kernel.reading import Meter, Reading, Supply
from daemon.storage.models import Device, ReadingRow, SupplyAlertRow, SupplyLevel
from daemon.storage.owners import owners

if TYPE_CHECKING:
    from daemon.storage.repository import Store

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


# What a level history reads, in this order.
_LEVEL_COLUMNS: Final = (
    SupplyLevel.device_id,
    SupplyLevel.name,
    SupplyLevel.taken_at,
    SupplyLevel.kind,
    SupplyLevel.color,
    SupplyLevel.level_percent,
)


async def _fetch(conn: AsyncConnection, device_ids: Iterable[int], since: datetime, until: datetime) -> _History:
    ids = sorted(set(device_ids))
    found: list[tuple[int, str, datetime, str, str | None, int | None]] = []
    for start in range(0, len(ids), _CHUNK):
        stmt = (
            select(*_LEVEL_COLUMNS)
            .where(
                SupplyLevel.device_id.in_(ids[start : start + _CHUNK]),
                SupplyLevel.taken_at > since,
                SupplyLevel.taken_at <= until,
            )
            .order_by(SupplyLevel.taken_at, SupplyLevel.id)
        )
        found += [tuple(row) for row in await conn.execute(stmt)]  # type: ignore[misc]
    return _History(found)


# A supply the cache says is unchanged, written only if the store disagrees (see LastLevels): reading id,
# device id, taken at, name, kind, colour, level, and the time of the cached row it was compared with.
GuardedRow = tuple[str, int, datetime, str, str, str | None, int | None, datetime]


@dataclass(slots=True)
class SupplySort:
    """What one batch does with its supplies: rows to write, rows to write only if the cache was wrong."""

    keep: set[tuple[str, str]]  # (reading id, supply name): written (ON CONFLICT DO NOTHING)
    guarded: list[GuardedRow]
    learned: dict[tuple[int, str], _Row]  # the cache's entries once the batch is committed
    forget_all: bool = False  # the store lost rows the cache knew (SQLite's tail check)
    seen_id: int | None = None  # SQLite: the highest supply row id once the batch is written


class LastLevels:
    """The last supply row this store wrote or read, per (device id, supply name): a hint, never the truth.

    Without it, every store round fetched each device's rows of the last day to compare with
    (+50 % CPU a round at 10,000 printers, bench/README.md). With it, a supply the cache says
    is unchanged is not skipped on the cache's word: it goes to the store as a *guarded* row,
    inserted by the store itself unless the cached row is still there and no row came after it
    up to the reading (another hub on the same PostgreSQL, a CLI import, a write this process
    did not see commit). So a stale entry costs a redundant row, never a change. A key whose
    guard fired is forgotten, and read from the store again next time (two hubs sharing a
    device's readings settle on the store's row instead of outdating each other's entries
    every round). Entries change only after the batch's transaction has committed.

    A device's first batch (cold start, a new device) or a reading older than its entry (late)
    is compared with the store's rows as before, and those rows seed the cache.

    SQLite (``tail=True``) runs in this process, so a guarded row's two index probes are CPU the
    cache was meant to save. There, writers take turns (the batch holds the one write lock from
    its device upsert on) and a new row's id is max(id) + 1, which the store already relies on
    (repository._insert_counted): the rows with an id above the highest this cache has seen
    are exactly what others wrote since, one indexed query a batch. Their devices are read from
    the store again; the rest is trusted without guards. Should that highest id be gone (rows
    deleted by hand), the whole cache is dropped.
    """

    def __init__(self, *, tail: bool = False) -> None:
        self._rows: dict[tuple[int, str], _Row] = {}
        self._tail = tail
        self._seen_id: int | None = None  # SQLite: the highest supply row id the cache has accounted for

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows.clear()
        self._seen_id = None

    async def _others_since(self, conn: AsyncConnection) -> tuple[set[int], bool]:
        """SQLite: devices with rows this cache has not seen, and whether the rows it saw are still all there."""
        if self._seen_id is None:
            return set(), False
        top = (await conn.execute(select(func.max(SupplyLevel.id)))).scalar()
        if top is None or top < self._seen_id:
            return set(), True
        found = await conn.execute(select(SupplyLevel.device_id).where(SupplyLevel.id > self._seen_id).distinct())
        return set(found.scalars()), False

    async def note_written(self, conn: AsyncConnection, sort: SupplySort) -> None:
        """SQLite, once the batch's rows are in (still under its write lock): the highest id is the cache's now."""
        if self._tail:
            sort.seen_id = (await conn.execute(select(func.max(SupplyLevel.id)))).scalar()

    async def sort(self, conn: AsyncConnection, readings: Sequence[Reading], device_ids: dict[str, int]) -> SupplySort:
        """Which supplies of ``readings`` are news (changed, new, due a heartbeat); which the cache calls unchanged."""
        out = SupplySort(set(), [], {})
        # (moment, device id, reading), oldest first: a reading's UTC time is worked out once.
        timed = sorted(
            ((r.taken_at_utc, device_ids[r.device.key], r) for r in readings if r.supplies), key=lambda t: t[0]
        )
        if not timed:
            return out
        known = self._rows
        cold: set[int] = set()
        if self._tail:
            cold, out.forget_all = await self._others_since(conn)
            if out.forget_all:
                known = {}
        cold |= _cold_devices(timed, known)
        if cold:
            stored = [(moment, device_id, r) for moment, device_id, r in timed if device_id in cold]
            history = await _fetch(conn, cold, stored[0][0] - HEARTBEAT, stored[-1][0])
            _sort_by_history(stored, history, out.keep)
            for key, rows in history.rows.items():
                if (entry := known.get(key)) is None or entry.taken_at <= rows[-1].taken_at:
                    out.learned[key] = rows[-1]
        self._sort_by_cache([t for t in timed if t[1] not in cold], known, out)
        return out

    def _sort_by_cache(
        self, timed: list[tuple[datetime, int, Reading]], known: dict[tuple[int, str], _Row], out: SupplySort
    ) -> None:
        keep, guarded, learned = out.keep, out.guarded, out.learned
        for moment, device_id, reading in timed:
            for supply in reading.supplies:
                name = supply.name
                key = (device_id, name)
                before = learned.get(key) or known[key]
                if before.taken_at == moment or moment - before.taken_at >= HEARTBEAT or not before.same_as(supply):
                    keep.add((reading.id, name))
                    if before.taken_at != moment:
                        learned[key] = _Row(moment, supply.kind, supply.color, supply.level_percent)
                elif not self._tail:
                    row = (reading.id, device_id, moment, name, supply.kind, supply.color, supply.level_percent)
                    guarded.append((*row, before.taken_at))

    def commit(self, sort: SupplySort, fired: set[tuple[int, str]]) -> None:
        """The batch is in the store: take what it taught, forget the keys whose guard fired."""
        if sort.forget_all:
            self._rows.clear()
        self._rows.update(sort.learned)
        self._seen_id = sort.seen_id
        for key in fired:
            self._rows.pop(key, None)


def _cold_devices(timed: list[tuple[datetime, int, Reading]], known: dict[tuple[int, str], _Row]) -> set[int]:
    """Devices with a supply the cache has no entry for, or an entry newer than the reading (a late one)."""
    cold: set[int] = set()
    for moment, device_id, reading in timed:
        for supply in reading.supplies:
            row = known.get((device_id, supply.name))
            if row is None or row.taken_at > moment:
                cold.add(device_id)
                break
    return cold


def _sort_by_history(
    readings: Sequence[tuple[datetime, int, Reading]], history: _History, keep: set[tuple[str, str]]
) -> None:
    """Compare each supply with the store's row at or before its reading ((moment, device id, reading), oldest first).

    A supply at the very instant of a stored row is kept too: the insert then finds its copy
    and the reading is judged new or duplicate by its rows, as before.
    """
    for moment, device_id, reading in readings:
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


@dataclass(frozen=True, slots=True)
class SupplyStatus:
    """One supply of one device now: its cartridge, forecast, whether it is due, and its open alert."""

    device: str
    site: str
    customer: str | None
    customer_name: str | None
    address: str | None
    model: str | None
    supply: str
    kind: str
    color: str | None
    part_number: str | None
    cartridge_since: datetime
    replaced: bool  # the cartridge was seen going in (cartridge_since is its replacement's date)
    forecast: Forecast
    due: bool
    alert_raised_at: datetime | None  # the open alert's
    yields: tuple[Yield, ...]


@dataclass(frozen=True, slots=True)
class SupplyPolicy:
    lead_days: int
    low_percent: int
    history_days: int
    short_yield: float
    yields: dict[str, int]
    sites: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # site -> its (lead, low)

    def due_knobs(self, site: str) -> tuple[int, int]:
        """(lead_days, low_percent) for a device at ``site``: the site's own, else the fleet's."""
        return self.sites.get(site, (self.lead_days, self.low_percent))


class SupplyStore:
    """Forecasts per supply and the replenishment alerts, over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def report(self, policy: SupplyPolicy, now: datetime) -> list[SupplyStatus]:
        """Every supply with a level history: its forecast and its open alert, by site, device and supply."""
        return await self._store.guard(self._report(policy, now), "read supply forecasts")

    async def refresh_alerts(self, policy: SupplyPolicy, now: datetime) -> list[SupplyStatus]:
        """Raise an alert for each due cartridge without one; close those whose cartridge was replaced.

        One alert per cartridge (device, supply, the reading that saw it go in): a cartridge stays
        due every poll until it is replaced, and its alert is raised once. Returns the new ones.
        """
        return await self._store.guard(self._refresh(policy, now), "refresh replenishment alerts")

    async def _refresh(self, policy: SupplyPolicy, now: datetime) -> list[SupplyStatus]:
        statuses = await self._report(policy, now)
        alerts = SupplyAlertRow.__table__
        raised = []
        async with self._store.engine.begin() as conn:
            ids = dict((await conn.execute(select(Device.key, Device.id))).all())
            for status in statuses:
                device_id = ids[status.device]
                if status.replaced:  # an alert for a cartridge before this one is done with
                    mine = (alerts.c.device_id == device_id) & (alerts.c.name == status.supply)
                    await conn.execute(
                        update(SupplyAlertRow)
                        .where(mine, alerts.c.closed_at.is_(None), alerts.c.cartridge_since < status.cartridge_since)
                        .values(closed_at=status.cartridge_since)
                    )
                if status.due and status.alert_raised_at is None:
                    row = {
                        "device_id": device_id,
                        "name": status.supply,
                        "cartridge_since": status.cartridge_since,
                        "raised_at": now,
                        "level_percent": status.forecast.level,
                        "empty_on": status.forecast.empty_on,
                        "reason": _reason(status, policy),
                    }
                    inserted = await conn.execute(
                        self._store.dialect.insert(alerts).on_conflict_do_nothing().returning(alerts.c.id), [row]
                    )
                    if inserted.first() is not None:
                        raised.append(dataclasses.replace(status, alert_raised_at=now))
        return raised

    async def _report(self, policy: SupplyPolicy, now: datetime) -> list[SupplyStatus]:
        since = now - timedelta(days=policy.history_days)
        async with self._store.engine.connect() as conn:
            devices = {row.id: row for row in await conn.execute(select(Device))}
            owned = await owners(conn, now.date())
            levels: dict[tuple[int, str], list[tuple[datetime, str, str | None, int | None]]] = {}
            stmt = (
                select(*_LEVEL_COLUMNS)
                .where(SupplyLevel.taken_at >= since, SupplyLevel.taken_at <= now)
                .order_by(SupplyLevel.taken_at, SupplyLevel.id)
            )
            for device_id, name, taken_at, kind, color, level in await conn.execute(stmt):
                levels.setdefault((device_id, name), []).append((taken_at, kind, color, level))
            totals: dict[int, list[tuple[datetime, int]]] = {}
            stmt_totals = (
                select(ReadingRow.device_id, ReadingRow.taken_at, ReadingRow.value)
                .where(ReadingRow.meter == Meter.TOTAL.value, ReadingRow.taken_at >= since, ReadingRow.taken_at <= now)
                .order_by(ReadingRow.taken_at)
            )
            for device_id, taken_at, value in await conn.execute(stmt_totals):
                totals.setdefault(device_id, []).append((taken_at, value))
            open_alerts = {
                (device_id, name): (since_at, raised_at)
                for device_id, name, since_at, raised_at in await conn.execute(
                    select(
                        SupplyAlertRow.device_id,
                        SupplyAlertRow.name,
                        SupplyAlertRow.cartridge_since,
                        SupplyAlertRow.raised_at,
                    ).where(SupplyAlertRow.closed_at.is_(None))
                )
            }
        out = []
        for (device_id, name), rows in levels.items():
            device = devices[device_id]
            counter = PageCounter(totals.get(device_id, []))
            history = cartridges([Level(at, level) for at, _, _, level in rows])
            current = history[-1]
            result = forecast(current, counter, now, previous=history[-2] if len(history) > 1 else None)
            part = part_number(name)
            nominal = policy.yields.get(part) if part else None
            owner = owned.of(device.key, device.site)
            out.append(
                SupplyStatus(
                    device=device.key,
                    site=device.site,
                    customer=owner.code if owner else None,
                    customer_name=owner.name if owner else None,
                    address=device.address,
                    model=device.model,
                    supply=name,
                    kind=rows[-1][1],
                    color=rows[-1][2],
                    part_number=part,
                    cartridge_since=current.installed_at,
                    replaced=current.replaced,
                    forecast=result,
                    due=replenishment_due(
                        result,
                        now.date(),
                        lead_days=policy.due_knobs(device.site)[0],
                        low_percent=policy.due_knobs(device.site)[1],
                    ),
                    alert_raised_at=_open_alert(open_alerts.get((device_id, name)), current),
                    yields=tuple(yields(history, counter, nominal=nominal, short_share=policy.short_yield))
                    if counter
                    else (),
                )
            )
        return sorted(out, key=lambda s: (s.site, s.device, s.supply))


def _open_alert(alert: tuple[datetime, datetime] | None, current: Cartridge) -> datetime | None:
    """When the open alert was raised, if it is this cartridge's.

    A cartridge that was in the device when the history window begins has no date of its own
    (its start moves with the window): an open alert is then its.
    """
    if alert is None:
        return None
    since, raised_at = alert
    return raised_at if not current.replaced or since >= current.installed_at else None


def _reason(status: SupplyStatus, policy: SupplyPolicy) -> str:
    level, (lead_days, low_percent) = status.forecast.level, policy.due_knobs(status.site)
    if level is not None and level <= low_percent:
        return f"level {level} % <= {low_percent} %"
    return f"empty by {status.forecast.empty_on} (lead {lead_days} days)"
