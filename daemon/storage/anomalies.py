"""Anomalies, the readings they hold, the audit log and job state, in the store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import func, select, update

from billing.anomalies import Finding, Kind
from billing.anomalies.detectors import SUPPLY_COLUMNS, empty_frame
from daemon.errors import MeterdError
from daemon.storage.audit import write_audit
from daemon.storage.models import AnomalyReading, AnomalyRow, Device, ReadingRow, StateEntry, SupplyLevel
from daemon.storage.repository import Store
from daemon.storage.supplies import HEARTBEAT

OPEN: Final = "open"
ACKNOWLEDGED: Final = "acknowledged"
RESOLVED: Final = "resolved"
# Resolutions that keep the readings out of usage for good (the manual reading replaces them).
EXCLUDING_RESOLUTIONS: Final = frozenset({"replaced"})
RESET: Final = "reset"  # the resolution of a confirmed counter reset: billing counts on from the restart value
RESTART_VALUE: Final = "restart_value"  # in a confirmed reset's evidence: the value the counter restarted from


class AnomalyNotFoundError(MeterdError):
    """No anomaly with that id."""


@dataclass(frozen=True, slots=True)
class AnomalyRecord:
    id: int
    kind: str
    severity: str
    device: str
    meter: str
    window_start: datetime
    window_end: datetime
    evidence: dict[str, Any]
    holds: bool
    status: str
    detected_at: datetime
    resolved_at: datetime | None
    resolution: str | None
    resolved_by: str | None
    reason: str | None


class AnomalyStore:
    """The anomaly side of a Store (same engine, same error translation)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, findings: Sequence[Finding], *, now: datetime) -> list[AnomalyRecord]:
        """Store new findings; one already recorded (same kind, device, meter, window start) is skipped."""

        async def _write() -> list[int]:
            created: list[int] = []
            async with self._store.engine.begin() as conn:
                keys = sorted({f.device for f in findings})
                known = await conn.execute(select(Device.key, Device.id).where(Device.key.in_(keys)))
                ids = {key: ident for key, ident in known}  # noqa: C416 - a Result is not a mapping
                table = AnomalyRow.__table__
                for finding in findings:
                    if finding.device not in ids:
                        continue
                    stmt = (
                        self._store.dialect.insert(table)
                        .values(
                            kind=finding.kind.value,
                            severity=finding.severity.value,
                            device_id=ids[finding.device],
                            meter=finding.meter or "",
                            window_start=finding.window_start,
                            window_end=finding.window_end,
                            evidence=json.dumps(finding.evidence, default=str),
                            holds=finding.holds,
                            status=OPEN,
                            detected_at=now,
                        )
                        .on_conflict_do_nothing()
                        .returning(table.c.id)
                    )
                    new_id = (await conn.execute(stmt)).scalar_one_or_none()
                    if new_id is None:
                        continue
                    created.append(new_id)
                    readings = [r for r in finding.evidence.get("readings", []) if isinstance(r, str)]
                    if readings:
                        await conn.execute(
                            self._store.dialect.insert(AnomalyReading.__table__).on_conflict_do_nothing(),
                            [{"anomaly_id": new_id, "reading_id": r} for r in dict.fromkeys(readings)],
                        )
            return created

        if not findings:
            return []
        created = await self._store.guard(_write(), "record anomalies")
        return [await self.get(anomaly_id) for anomaly_id in created]

    async def find(
        self, *, status: str | None = None, kind: str | None = None, device: str | None = None, limit: int = 500
    ) -> list[AnomalyRecord]:
        stmt = _select().order_by(AnomalyRow.detected_at.desc(), AnomalyRow.id.desc()).limit(limit)
        if status == "unresolved":
            stmt = stmt.where(AnomalyRow.status != RESOLVED)
        elif status:
            stmt = stmt.where(AnomalyRow.status == status)
        if kind:
            stmt = stmt.where(AnomalyRow.kind == kind)
        if device:
            stmt = stmt.where(Device.key == device)
        return await self._fetch(stmt, "list anomalies")

    async def get(self, anomaly_id: int) -> AnomalyRecord:
        """Raises AnomalyNotFoundError."""
        found = await self._fetch(_select().where(AnomalyRow.id == anomaly_id), "read anomaly")
        if not found:
            raise AnomalyNotFoundError(f"no anomaly {anomaly_id}; list them with `meterd anomalies list`")
        return found[0]

    async def set_status(
        self, anomaly_id: int, *, status: str, resolution: str | None, actor: str, reason: str, now: datetime,
        detail: dict[str, Any] | None = None, evidence: dict[str, Any] | None = None,
    ) -> AnomalyRecord:  # fmt: skip
        """Move an anomaly on (acknowledge, resolve) and write who, why and what to the audit log.

        ``evidence``: what the decision adds to the anomaly's evidence (a reset's restart value).
        """
        before = await self.get(anomaly_id)

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                values: dict[str, Any] = {"status": status}
                if status == RESOLVED:
                    values |= {"resolution": resolution, "resolved_by": actor, "reason": reason, "resolved_at": now}
                if evidence:
                    values["evidence"] = json.dumps(before.evidence | evidence, default=str)
                await conn.execute(update(AnomalyRow).where(AnomalyRow.id == anomaly_id).values(**values))
                entry = {"from": before.status, "to": status, "resolution": resolution, "reason": reason,
                         "kind": before.kind, "device": before.device, **(detail or {})}  # fmt: skip
                await write_audit(conn, now, actor, f"anomaly.{resolution or status}", f"anomaly:{anomaly_id}", entry)

        await self._store.guard(_write(), "update anomaly")
        return await self.get(anomaly_id)

    async def held_reading_ids(self) -> set[str]:
        """Readings usage must leave out: those of unresolved holding anomalies, and replaced ones."""
        stmt = (
            select(AnomalyReading.reading_id)
            .join(AnomalyRow, AnomalyRow.id == AnomalyReading.anomaly_id)
            .where(
                ((AnomalyRow.status != RESOLVED) & AnomalyRow.holds)
                | AnomalyRow.resolution.in_(sorted(EXCLUDING_RESOLUTIONS))
            )
        )

        async def _query() -> set[str]:
            async with self._store.engine.connect() as conn:
                return set((await conn.execute(stmt)).scalars())

        return await self._store.guard(_query(), "read held readings")

    async def open_counts(self) -> dict[tuple[str, str], int]:
        stmt = (
            select(AnomalyRow.kind, AnomalyRow.severity, func.count())
            .where(AnomalyRow.status != RESOLVED)
            .group_by(AnomalyRow.kind, AnomalyRow.severity)
        )

        async def _query() -> dict[tuple[str, str], int]:
            async with self._store.engine.connect() as conn:
                return {(k, s): int(n) for k, s, n in await conn.execute(stmt)}

        return await self._store.guard(_query(), "count anomalies")

    async def resolve_recovered_stale(self, *, now: datetime) -> list[int]:
        """Close stale anomalies of devices that have read since: the system resolves them."""
        stmt = (
            select(AnomalyRow.id)
            .join(Device, Device.id == AnomalyRow.device_id)
            .where(AnomalyRow.kind == Kind.STALE.value, AnomalyRow.status != RESOLVED)
            .where(Device.last_seen > AnomalyRow.window_start)
        )  # fmt: skip
        return await self._resolve_by_system(stmt, "recovered", "the device reads again", now=now)

    async def resolve_closed_cycles(self, *, now: datetime) -> list[int]:
        """Close over-allowance forecasts whose usage cycle has ended: the invoice has the figures now."""
        stmt = select(AnomalyRow.id).where(
            AnomalyRow.kind == Kind.OVER_ALLOWANCE.value, AnomalyRow.status != RESOLVED, AnomalyRow.window_end <= now
        )
        return await self._resolve_by_system(stmt, "cycle_closed", "the usage cycle has ended", now=now)

    async def _resolve_by_system(self, stmt: Any, resolution: str, reason: str, *, now: datetime) -> list[int]:  # noqa: ANN401 - a Select of ids
        async def _query() -> list[int]:
            async with self._store.engine.connect() as conn:
                return list((await conn.execute(stmt)).scalars())

        found = await self._store.guard(_query(), f"find anomalies to close ({resolution})")
        for anomaly_id in found:
            await self.set_status(anomaly_id, status=RESOLVED, resolution=resolution, actor="system", reason=reason,
                                  now=now)  # fmt: skip
        return found

    async def readings_frame(
        self, *, received_after: datetime | None, lookback_days: int
    ) -> tuple[pd.DataFrame, datetime | None]:
        """Readings of the devices with readings received after the watermark, and the next watermark.

        Each such device's readings go back ``lookback_days`` before its earliest new one:
        the window the detectors need to judge the new ones.
        """

        async def _query() -> tuple[pd.DataFrame, datetime | None]:
            async with self._store.engine.connect() as conn:
                changed = select(ReadingRow.device_id, func.min(ReadingRow.taken_at), func.max(ReadingRow.received_at))
                if received_after is not None:
                    changed = changed.where(ReadingRow.received_at > received_after)
                rows = (await conn.execute(changed.group_by(ReadingRow.device_id))).all()
                if not rows:
                    return empty_frame(), received_after
                newest = max(r[2] for r in rows)
                frames = []
                for device_id, earliest, _ in rows:
                    since = pd.Timestamp(earliest) - pd.Timedelta(days=lookback_days)
                    stmt = (
                        select(
                            Device.key.label("device"),
                            Device.site,
                            Device.address,
                            ReadingRow.meter,
                            ReadingRow.unit,
                            ReadingRow.taken_at,
                            ReadingRow.value,
                            ReadingRow.reading_id,
                        )
                        .join(Device, Device.id == ReadingRow.device_id)
                        .where(ReadingRow.device_id == device_id, ReadingRow.taken_at >= since.to_pydatetime())
                    )
                    result = await conn.execute(stmt)
                    frames.append(pd.DataFrame(result.all(), columns=list(result.keys())))
                frame = pd.concat(frames, ignore_index=True)
                frame["taken_at"] = pd.to_datetime(frame["taken_at"], utc=True)
                return frame, newest

        return await self._store.guard(_query(), "read readings for detection")

    async def supplies_frame(self, readings: pd.DataFrame) -> pd.DataFrame:
        """Supply levels (SUPPLY_COLUMNS) of the devices in ``readings``, over the time ``readings`` spans."""
        if readings.empty:
            return empty_frame(SUPPLY_COLUMNS)
        # A day before: levels are stored when they change, with a row a day, so the level each supply
        # had when the readings begin is in (see daemon.storage.supplies).
        since = pd.Timestamp(readings["taken_at"].min()).to_pydatetime() - HEARTBEAT
        stmt = (
            select(Device.key, SupplyLevel.name, SupplyLevel.kind, SupplyLevel.taken_at, SupplyLevel.level_percent)
            .join(Device, Device.id == SupplyLevel.device_id)
            .where(Device.key.in_(readings["device"].unique().tolist()), SupplyLevel.taken_at >= since)
        )

        async def _query() -> pd.DataFrame:
            async with self._store.engine.connect() as conn:
                frame = pd.DataFrame((await conn.execute(stmt)).all(), columns=list(SUPPLY_COLUMNS))
            frame["taken_at"] = pd.to_datetime(frame["taken_at"], utc=True)
            return frame

        return await self._store.guard(_query(), "read supply levels for detection")

    async def last_seen(self) -> list[tuple[str, datetime]]:
        async def _query() -> list[tuple[str, datetime]]:
            async with self._store.engine.connect() as conn:
                return [(k, s) for k, s in await conn.execute(select(Device.key, Device.last_seen))]

        return await self._store.guard(_query(), "read device last seen")

    async def get_state(self, key: str) -> str | None:
        async def _query() -> str | None:
            async with self._store.engine.connect() as conn:
                return (await conn.execute(select(StateEntry.value).where(StateEntry.key == key))).scalar_one_or_none()

        return await self._store.guard(_query(), "read job state")

    async def set_state(self, key: str, value: str) -> None:
        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                stmt = self._store.dialect.insert(StateEntry.__table__).values(key=key, value=value)
                await conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

        await self._store.guard(_write(), "write job state")

    async def _fetch(self, stmt: Any, operation: str) -> list[AnomalyRecord]:  # noqa: ANN401 - a Select
        async def _query() -> list[AnomalyRecord]:
            async with self._store.engine.connect() as conn:
                return [_record(row) for row in await conn.execute(stmt)]

        return await self._store.guard(_query(), operation)


def _select() -> Any:  # noqa: ANN401 - a Select of the record's columns
    return select(
        AnomalyRow.id, AnomalyRow.kind, AnomalyRow.severity, Device.key, AnomalyRow.meter, AnomalyRow.window_start,
        AnomalyRow.window_end, AnomalyRow.evidence, AnomalyRow.holds, AnomalyRow.status, AnomalyRow.detected_at,
        AnomalyRow.resolved_at, AnomalyRow.resolution, AnomalyRow.resolved_by, AnomalyRow.reason,
    ).join(Device, Device.id == AnomalyRow.device_id)  # fmt: skip


def _record(row: Any) -> AnomalyRecord:  # noqa: ANN401 - a Row of _select()
    values = list(row)
    values[7] = json.loads(values[7])
    return AnomalyRecord(*values)
