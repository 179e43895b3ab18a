"""Device status and faults kept as episodes: a row when a condition appears, its end when it is gone.

A poll's status (collectors.snmp.status.DeviceStatus) is compared with the device's open rows: what
is new opens a row at the poll's time, what is no longer there is ended at it, what is unchanged is
not written. hrDeviceStatus is always one open row per device (running too), so the current state
of every device is its open ``status`` row; error bits and standing alert-table conditions open a
row only while they last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Final

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from collectors.snmp.status import DeviceStatus
from daemon.kernel.clock import utc_now
from daemon.storage.models import Device, DeviceFault
from daemon.storage.owners import owners

if TYPE_CHECKING:
    from daemon.storage.repository import Store

_CHUNK: Final = 1000  # devices per IN (...)
_DETAIL_MAX: Final = 512


@dataclass(frozen=True, slots=True)
class Observed:
    """One device's status at one poll."""

    device: str  # device key
    taken_at: datetime
    status: DeviceStatus


@dataclass(frozen=True, slots=True)
class Condition:
    kind: str
    key: str
    code: str
    severity: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A stored episode, with its device's customer, site, address and model for whoever goes there.

    The customer is who owns the device on the day the list was read (daemon.storage.owners).
    """

    id: int
    device: str
    customer: str | None
    customer_name: str | None
    site: str
    address: str | None
    model: str | None
    kind: str
    code: str
    severity: str | None
    detail: str
    started_at: datetime
    ended_at: datetime | None
    alert_raised_at: datetime | None


@dataclass(frozen=True, slots=True)
class FaultChanges:
    opened: tuple[FaultRecord, ...]
    ended: tuple[FaultRecord, ...]
    alerts: tuple[FaultRecord, ...]  # service alerts raised now


def conditions(status: DeviceStatus) -> list[Condition]:
    """What a poll's status holds as separate conditions, each with the key it keeps from poll to poll."""
    found = []
    if status.device is not None:
        found.append(Condition("status", "status", status.device, None, f"printer {status.printer or 'unknown'}"))
    found += [Condition("error", f"error/{bit}", bit, None, "") for bit in status.errors]
    seen: set[str] = set()
    for alert in status.alerts:
        if alert.is_condition and alert.key not in seen:  # two rows of one condition (a device's repeats)
            seen.add(alert.key)
            where = f"{alert.group}" + ("" if alert.group_index is None else f" {alert.group_index}")
            text = f"{alert.description} ({where}, {alert.training})" if alert.description else f"({where})"
            found.append(Condition("alert", f"alert/{alert.key}", alert.code, alert.severity, text[:_DETAIL_MAX]))
    return found


class FaultStore:
    """Status episodes and service alerts over the store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(
        self, observed: Sequence[Observed], *, alert_on: Iterable[str], alert_after: timedelta, now: datetime
    ) -> FaultChanges:
        """Open and end episodes for what these polls saw, then raise the service alerts that are due.

        A service alert is raised once per episode, for a fault in ``alert_on`` open ``alert_after``
        or longer, and only while its device has no other open alert: a jam seen both as the
        ``jammed`` bit and as the alert table's ``jam`` is one visit.
        """
        return await self._store.guard(self._record(observed, set(alert_on), alert_after, now), "record faults")

    async def _record(
        self, observed: Sequence[Observed], alert_on: set[str], alert_after: timedelta, now: datetime
    ) -> FaultChanges:
        opened: list[int] = []
        ended: list[int] = []
        async with self._store.engine.begin() as conn:
            ids = await _device_ids(conn, {o.device for o in observed})
            current = await _open_rows(conn, set(ids.values()))
            for seen in sorted(observed, key=lambda o: o.taken_at):
                device_id = ids.get(seen.device)
                if device_id is None:
                    continue
                mine = current.setdefault(device_id, {})
                wanted = {c.key: c for c in conditions(seen.status)}
                for key, (row_id, code, started_at) in list(mine.items()):
                    if seen.taken_at <= started_at:
                        continue  # a late poll says nothing about an episode that began after it
                    if key not in wanted or wanted[key].code != code:
                        await conn.execute(
                            update(DeviceFault).where(DeviceFault.id == row_id).values(ended_at=seen.taken_at)
                        )
                        ended.append(row_id)
                        del mine[key]
                for key, condition in wanted.items():
                    if key in mine:
                        continue
                    row = {
                        "device_id": device_id,
                        "kind": condition.kind,
                        "key": condition.key,
                        "code": condition.code,
                        "severity": condition.severity,
                        "detail": condition.detail,
                        "started_at": seen.taken_at,
                    }
                    row_id = (await conn.execute(insert(DeviceFault).returning(DeviceFault.id), [row])).scalar_one()
                    opened.append(row_id)
                    mine[key] = (row_id, condition.code, seen.taken_at)
            raised = await _raise_alerts(conn, alert_on, now - alert_after, now)
        by_id = {r.id: r for r in await self._find(now.date(), ids=[*opened, *ended, *raised])}
        return FaultChanges(
            opened=tuple(by_id[i] for i in opened if i in by_id),
            ended=tuple(by_id[i] for i in ended if i in by_id),
            alerts=tuple(by_id[i] for i in raised),
        )

    async def find(
        self,
        *,
        open_only: bool = True,
        alerts_only: bool = False,
        device: str | None = None,
        include_status: bool = False,
        today: date | None = None,
    ) -> list[FaultRecord]:
        """Faults (error bits, alert conditions, and a status other than running), newest first.

        ``include_status`` adds every status episode, running ones too. Each names its device's
        customer as of ``today`` (the current UTC day unless given).
        """

        async def _query() -> list[FaultRecord]:
            return await self._find(
                today or utc_now().date(),
                open_only=open_only,
                alerts_only=alerts_only,
                device=device,
                include_status=include_status,
            )

        return await self._store.guard(_query(), "read faults")

    async def _find(
        self,
        today: date,
        *,
        ids: Sequence[int] | None = None,
        open_only: bool = False,
        alerts_only: bool = False,
        device: str | None = None,
        include_status: bool = True,
    ) -> list[FaultRecord]:
        f = DeviceFault
        stmt = select(
            f.id,
            Device.key.label("device"),
            Device.site,
            Device.address,
            Device.model,
            f.kind,
            f.code,
            f.severity,
            f.detail,
            f.started_at,
            f.ended_at,
            f.alert_raised_at,
        ).join(Device, Device.id == f.device_id)
        if ids is not None:
            if not ids:
                return []
            stmt = stmt.where(f.id.in_(ids))
        if open_only:
            stmt = stmt.where(f.ended_at.is_(None))
        if alerts_only:
            stmt = stmt.where(f.alert_raised_at.is_not(None))
        if device is not None:
            stmt = stmt.where(Device.key == device)
        if not include_status:
            stmt = stmt.where((f.kind != "status") | (f.code != "running"))
        stmt = stmt.order_by(f.started_at.desc(), f.id.desc())
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
            owned = await owners(conn, today) if rows else None
        found = []
        for row in rows:
            owner = owned.of(row.device, row.site) if owned else None
            found.append(
                FaultRecord(
                    **row._asdict(), customer=owner.code if owner else None, customer_name=owner.name if owner else None
                )
            )
        return found

    async def open_counts(self) -> list[tuple[str, str, str, int, int]]:
        """(site, kind, code, open episodes, of them with an alert raised), for the metrics."""

        async def _query() -> list[tuple[str, str, str, int, int]]:
            f = DeviceFault
            alerted = func.count(f.alert_raised_at)
            stmt = (
                select(Device.site, f.kind, f.code, func.count(), alerted)
                .join(Device, Device.id == f.device_id)
                .where(f.ended_at.is_(None))
                .group_by(Device.site, f.kind, f.code)
            )
            async with self._store.engine.connect() as conn:
                return [(site, kind, code, int(n), int(a)) for site, kind, code, n, a in await conn.execute(stmt)]

        return await self._store.guard(_query(), "count faults")


async def _device_ids(conn: AsyncConnection, keys: set[str]) -> dict[str, int]:
    ordered = sorted(keys)
    out: dict[str, int] = {}
    for start in range(0, len(ordered), _CHUNK):
        stmt = select(Device.key, Device.id).where(Device.key.in_(ordered[start : start + _CHUNK]))
        out.update(dict((await conn.execute(stmt)).all()))
    return out


async def _open_rows(conn: AsyncConnection, device_ids: set[int]) -> dict[int, dict[str, tuple[int, str, datetime]]]:
    """Per device: its open episodes, key -> (row id, code, started at)."""
    ordered = sorted(device_ids)
    out: dict[int, dict[str, tuple[int, str, datetime]]] = {}
    f = DeviceFault
    for start in range(0, len(ordered), _CHUNK):
        stmt = select(f.device_id, f.key, f.id, f.code, f.started_at).where(
            f.device_id.in_(ordered[start : start + _CHUNK]), f.ended_at.is_(None)
        )
        for device_id, key, row_id, code, started_at in await conn.execute(stmt):
            out.setdefault(device_id, {})[key] = (row_id, code, started_at)
    return out


async def _raise_alerts(conn: AsyncConnection, alert_on: set[str], cutoff: datetime, now: datetime) -> list[int]:
    """Mark the one alert of each due episode; at most one open alert per device."""
    if not alert_on:
        return []
    f = DeviceFault
    due = (
        await conn.execute(
            select(f.id, f.device_id)
            .where(
                f.ended_at.is_(None),
                f.alert_raised_at.is_(None),
                f.code.in_(sorted(alert_on)),
                f.started_at <= cutoff,
            )
            .order_by(f.started_at, f.id)
        )
    ).all()
    if not due:
        return []
    devices = sorted({device_id for _, device_id in due})
    alerted: set[int] = set()
    for start in range(0, len(devices), _CHUNK):
        stmt = select(f.device_id).where(
            f.device_id.in_(devices[start : start + _CHUNK]), f.ended_at.is_(None), f.alert_raised_at.is_not(None)
        )
        alerted.update(await conn.scalars(stmt))
    raised = []
    for row_id, device_id in due:
        if device_id in alerted:
            continue
        alerted.add(device_id)
        await conn.execute(update(f).where(f.id == row_id).values(alert_raised_at=now))
        raised.append(row_id)
    return raised
