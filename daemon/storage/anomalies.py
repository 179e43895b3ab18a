"""Anomalies, the readings they hold, the audit log and job state, in the store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.anomalies import Finding, Kind
from billing.anomalies.detectors import SUPPLY_COLUMNS, empty_frame
from billing.anomalies.episodes import Episode, Moments, continues, episodes, first_reading_after
from daemon.kernel.errors import MeterdError
from daemon.storage.audit import write_audit
from daemon.storage.models import AnomalyReading, AnomalyRow, Device, ReadingRow, SupplyLevel
from daemon.storage.repository import Store
from daemon.storage.supplies import HEARTBEAT

OPEN: Final = "open"
ACKNOWLEDGED: Final = "acknowledged"
RESOLVED: Final = "resolved"
# Resolutions that keep the readings out of usage for good (the manual reading replaces them).
EXCLUDING_RESOLUTIONS: Final = frozenset({"replaced"})
RESET: Final = "reset"  # the resolution of a confirmed counter reset: billing counts on from the restart value
RESTART_VALUE: Final = "restart_value"  # in a confirmed reset's evidence: the value the counter restarted from
_OR_CHUNK: Final = 200  # conditions per statement when matching many findings at once


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
    occurrences: int  # readings the episode involves (findings, for one about no readings: stale, over_allowance)
    ended_at: datetime | None  # when a reading showed the condition over (None: it may go on)


class AnomalyStore:
    """The anomaly side of a Store (same engine, same error translation)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(
        self, findings: Sequence[Finding], *, now: datetime, moments: Moments | None = None
    ) -> list[AnomalyRecord]:
        """Store findings as episodes; returns the episodes it opened.

        A finding that overlaps a stored episode of its device, kind and meter, or continues
        a running one (no reading in between, by ``moments``: the readings the detectors
        saw), joins it: last seen, count and evidence are updated and its readings added, so
        a decision already taken covers them. Otherwise it opens an episode, and ends the
        running one it does not continue.
        """
        moments = moments or {}
        grouped = episodes(findings, moments)

        async def _write() -> list[int]:
            created: list[int] = []
            async with self._store.engine.begin() as conn:
                keys = sorted({e.device for e in grouped})
                known = await conn.execute(select(Device.key, Device.id).where(Device.key.in_(keys)))
                ids = {key: ident for key, ident in known}  # noqa: C416 - a Result is not a mapping
                stored = await _episodes_of(
                    conn,
                    list(ids.values()),
                    sorted({e.kind.value for e in grouped}),
                    since=min(e.window_start for e in grouped),
                )
                for episode in grouped:
                    if episode.device not in ids:
                        continue
                    key = (episode.kind.value, ids[episode.device], episode.meter or "")
                    rows = stored.setdefault(key, [])
                    row = next((r for r in rows if _joins(r, episode, moments)), None)
                    if row is None:
                        for running in (r for r in rows if r.ended_at is None and r.window_end < episode.window_start):
                            over = first_reading_after(moments, episode.device, running.window_end)
                            await _end(conn, running, over or episode.window_start)
                        row = await self._open(conn, episode, ids[episode.device], now)
                        if row is None:
                            continue
                        rows.append(row)
                        created.append(row.id)
                    else:
                        await _join(conn, row, episode)
                    await _hold(conn, self._store, row, episode.readings)
            return created

        if not grouped:
            return []
        created = await self._store.guard(_write(), "record anomalies")
        return [await self.get(anomaly_id) for anomaly_id in created]

    async def end_episodes(self, moments: Moments) -> int:
        """End the running episodes of devices with a reading after the episode's last finding; how many."""
        if not moments:
            return 0

        async def _write() -> int:
            ended = 0
            async with self._store.engine.begin() as conn:
                known = await conn.execute(select(Device.key, Device.id).where(Device.key.in_(sorted(moments))))
                keys = {ident: key for key, ident in known}
                for rows in (await _episodes_of(conn, list(keys), None, running_only=True)).values():
                    for row in rows:
                        after = first_reading_after(moments, keys[row.device_id], row.window_end)
                        if after is not None:
                            await _end(conn, row, after)
                            ended += 1
            return ended

        return await self._store.guard(_write(), "end anomaly episodes")

    async def _open(self, conn: AsyncConnection, episode: Episode, device_id: int, now: datetime) -> _Stored | None:
        table = AnomalyRow.__table__
        stmt = (
            self._store.dialect.insert(table)
            .values(
                kind=episode.kind.value,
                severity=episode.severity.value,
                device_id=device_id,
                meter=episode.meter or "",
                window_start=episode.window_start,
                window_end=episode.window_end,
                evidence=json.dumps(episode.evidence, default=str),
                holds=episode.holds,
                status=OPEN,
                detected_at=now,
                occurrences=len(episode.findings),
                ended_at=episode.ended_at,
            )
            .on_conflict_do_nothing()
            .returning(table.c.id)
        )
        new_id = (await conn.execute(stmt)).scalar_one_or_none()
        if new_id is None:
            return None
        return _Stored(
            new_id, device_id, episode.window_start, episode.window_end, episode.ended_at, None, len(episode.findings)
        )

    async def find(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        device: str | None = None,
        limit: int = 500,
        offset: int = 0,
    ) -> list[AnomalyRecord]:
        """Anomalies newest first, ``limit`` of them from ``offset`` (:meth:`count` says how many match)."""
        stmt = _filtered(_select(), status=status, kind=kind, device=device)
        stmt = stmt.order_by(AnomalyRow.detected_at.desc(), AnomalyRow.id.desc()).limit(limit).offset(offset)
        return await self._fetch(stmt, "list anomalies")

    async def count(self, *, status: str | None = None, kind: str | None = None, device: str | None = None) -> int:
        """How many anomalies :meth:`find` would page through."""
        stmt = _filtered(
            select(func.count()).select_from(AnomalyRow).join(Device, Device.id == AnomalyRow.device_id),
            status=status,
            kind=kind,
            device=device,
        )

        async def _query() -> int:
            async with self._store.engine.connect() as conn:
                return int((await conn.execute(stmt)).scalar_one())

        return await self._store.guard(_query(), "count anomalies")

    async def get(self, anomaly_id: int) -> AnomalyRecord:
        """Raises AnomalyNotFoundError."""
        found = await self._fetch(_select().where(AnomalyRow.id == anomaly_id), "read anomaly")
        if not found:
            raise AnomalyNotFoundError(f"no anomaly {anomaly_id}; list them with `meterd anomalies list`")
        return found[0]

    async def set_status(
        self,
        anomaly_id: int,
        *,
        status: str,
        resolution: str | None,
        actor: str,
        reason: str,
        now: datetime,
        detail: dict[str, Any] | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> AnomalyRecord:
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
                entry = {
                    "from": before.status,
                    "to": status,
                    "resolution": resolution,
                    "reason": reason,
                    "kind": before.kind,
                    "device": before.device,
                    **(detail or {}),
                }
                await write_audit(conn, now, actor, f"anomaly.{resolution or status}", f"anomaly:{anomaly_id}", entry)

        await self._store.guard(_write(), "update anomaly")
        return await self.get(anomaly_id)

    async def pages_held(self, anomalies: Sequence[AnomalyRecord]) -> dict[int, int]:
        """Per unresolved holding anomaly, the pages its held readings carry on its meter (total for a device's).

        From the reading before the first held one to the last held one: what usage would
        count if the readings were approved as they are (a step back carries none).
        """

        async def _query() -> dict[int, int]:
            held: dict[int, int] = {}
            async with self._store.engine.connect() as conn:
                for anomaly in anomalies:
                    if not anomaly.holds or anomaly.status == RESOLVED:
                        continue
                    meter = anomaly.meter or "total"
                    rows = (
                        await conn.execute(
                            select(ReadingRow.device_id, ReadingRow.taken_at, ReadingRow.value)
                            .join(AnomalyReading, AnomalyReading.reading_id == ReadingRow.reading_id)
                            .where(AnomalyReading.anomaly_id == anomaly.id, ReadingRow.meter == meter)
                            .order_by(ReadingRow.taken_at)
                        )
                    ).all()
                    if not rows:
                        continue
                    device_id, first_at, first_value = rows[0]
                    before = (
                        await conn.execute(
                            select(ReadingRow.value)
                            .where(
                                ReadingRow.device_id == device_id,
                                ReadingRow.meter == meter,
                                ReadingRow.taken_at < first_at,
                            )
                            .order_by(ReadingRow.taken_at.desc())
                            .limit(1)
                        )
                    ).scalar_one_or_none()
                    held[anomaly.id] = max(0, int(rows[-1][2]) - int(first_value if before is None else before))
            return held

        return await self._store.guard(_query(), "read pages held")

    async def readings_around(
        self, anomaly: AnomalyRecord, *, context: int = 5, most: int = 40
    ) -> list[dict[str, Any]]:
        """The episode's readings of its meter (up to ``most``) with ``context`` readings either side, oldest first.

        Each: taken_at, reading_id, meter, value, step (from the reading before) and whether
        the episode holds it.
        """
        meter = anomaly.meter or "total"
        columns = (ReadingRow.taken_at, ReadingRow.reading_id, ReadingRow.value)
        base = select(*columns).join(Device, Device.id == ReadingRow.device_id)
        base = base.where(Device.key == anomaly.device, ReadingRow.meter == meter)
        earlier = base.where(ReadingRow.taken_at < anomaly.window_start).order_by(ReadingRow.taken_at.desc())
        inside = base.where(ReadingRow.taken_at >= anomaly.window_start, ReadingRow.taken_at <= anomaly.window_end)
        later = base.where(ReadingRow.taken_at > anomaly.window_end).order_by(ReadingRow.taken_at)
        held_ids = select(AnomalyReading.reading_id).where(AnomalyReading.anomaly_id == anomaly.id)

        async def _query() -> list[dict[str, Any]]:
            async with self._store.engine.connect() as conn:
                # One more before than shown: the first one shown has a step too.
                before: list[tuple[datetime, str, int]] = [
                    (at, ident, value) for at, ident, value in await conn.execute(earlier.limit(context + 1))
                ][::-1]
                during = await conn.execute(inside.order_by(ReadingRow.taken_at.desc()).limit(most))
                rows = before + [(at, ident, value) for at, ident, value in during][::-1]
                rows += [(at, ident, value) for at, ident, value in await conn.execute(later.limit(context))]
                held = set((await conn.execute(held_ids)).scalars())
            shown = []
            for index, (taken_at, reading_id, value) in enumerate(rows):
                step = None if index == 0 else int(value) - int(rows[index - 1][2])
                shown.append(
                    {
                        "taken_at": taken_at,
                        "reading_id": reading_id,
                        "meter": meter,
                        "value": int(value),
                        "step": step,
                        "held": reading_id in held,
                    }
                )
            return shown[1:] if len(before) > context else shown

        return await self._store.guard(_query(), "read readings around an anomaly")

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
        )
        return await self._resolve_by_system(stmt, "recovered", "the device reads again", now=now)

    async def withdraw_spikes(self, shifts: Sequence[Finding], *, now: datetime) -> list[int]:
        """Close spikes that level shifts showed to be the first day of a busy spell: the system resolves them.

        The latest day is judged a spike before the next day is known; when the next day stays
        up, the detectors call those days a level shift, and the spike no longer stands.
        """
        withdrawn: list[int] = []
        for first in range(0, len(shifts), _OR_CHUNK):
            overlapping = [
                (Device.key == shift.device)
                & (AnomalyRow.meter == (shift.meter or ""))
                & (AnomalyRow.window_start < shift.window_end)
                & (AnomalyRow.window_end > shift.window_start)
                for shift in shifts[first : first + _OR_CHUNK]
            ]
            stmt = (
                select(AnomalyRow.id)
                .join(Device, Device.id == AnomalyRow.device_id)
                .where(AnomalyRow.kind == Kind.SPIKE.value, AnomalyRow.status != RESOLVED, or_(*overlapping))
            )
            withdrawn += await self._resolve_by_system(
                stmt, "level_shift", "the days after stayed up: a busy spell, not a spike", now=now
            )
        return withdrawn

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
            await self.set_status(
                anomaly_id, status=RESOLVED, resolution=resolution, actor="system", reason=reason, now=now
            )
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
        return await self._store.get_state(key)

    async def set_state(self, key: str, value: str) -> None:
        await self._store.set_state(key, value)

    async def _fetch(self, stmt: Any, operation: str) -> list[AnomalyRecord]:  # noqa: ANN401 - a Select
        async def _query() -> list[AnomalyRecord]:
            async with self._store.engine.connect() as conn:
                return [_record(row) for row in await conn.execute(stmt)]

        return await self._store.guard(_query(), operation)


@dataclass(slots=True)
class _Stored:
    """What joining needs to know of a stored episode (updated as findings join it)."""

    id: int
    device_id: int
    window_start: datetime
    window_end: datetime
    ended_at: datetime | None
    resolution: str | None
    occurrences: int


async def _episodes_of(
    conn: AsyncConnection,
    device_ids: list[int],
    kinds: list[str] | None,
    *,
    running_only: bool = False,
    since: datetime | None = None,
) -> dict[tuple[str, int, str], list[_Stored]]:
    """Stored episodes of these devices (and kinds), by kind, device and meter.

    ``since``: only those still running or last seen from then on (older ones cannot be joined).
    """
    stmt = select(
        AnomalyRow.kind,
        AnomalyRow.meter,
        AnomalyRow.id,
        AnomalyRow.device_id,
        AnomalyRow.window_start,
        AnomalyRow.window_end,
        AnomalyRow.ended_at,
        AnomalyRow.resolution,
        AnomalyRow.occurrences,
    ).where(AnomalyRow.device_id.in_(device_ids))
    if kinds is not None:
        stmt = stmt.where(AnomalyRow.kind.in_(kinds))
    if running_only:
        stmt = stmt.where(AnomalyRow.ended_at.is_(None))
    if since is not None:
        stmt = stmt.where(AnomalyRow.ended_at.is_(None) | (AnomalyRow.window_end >= since))
    found: dict[tuple[str, int, str], list[_Stored]] = {}
    for kind, meter, ident, device_id, start, end, ended, resolution, count in await conn.execute(
        stmt.order_by(AnomalyRow.window_start)
    ):
        row = _Stored(ident, device_id, start, end, ended, resolution, count)
        found.setdefault((kind, row.device_id, meter), []).append(row)
    return found


def _joins(row: _Stored, episode: Episode, moments: Moments) -> bool:
    """The episode is ``row``'s: it overlaps it, or continues it while it runs (a replaced reading ends it)."""
    if episode.window_start <= row.window_end and row.window_start <= episode.window_end:
        return True
    if row.ended_at is not None or row.resolution in EXCLUDING_RESOLUTIONS:
        return False
    return row.window_end <= episode.window_start and continues(
        moments, episode.device, row.window_end, episode.window_start
    )


async def _join(conn: AsyncConnection, row: _Stored, episode: Episode) -> None:
    """Update a stored episode with the findings that joined it: count, last seen, current evidence, end."""
    new = sum(f.window_start > row.window_end for f in episode.findings)
    if not new and episode.window_end <= row.window_end:
        return  # seen before (a lookback detects it again): nothing changed
    values: dict[str, Any] = {
        "window_end": max(row.window_end, episode.window_end),
        "evidence": json.dumps(episode.evidence, default=str),
        "occurrences": row.occurrences + new,
    }
    if new and row.ended_at is None:
        values["ended_at"] = episode.ended_at
    await conn.execute(update(AnomalyRow).where(AnomalyRow.id == row.id).values(**values))
    row.window_end, row.occurrences = values["window_end"], values["occurrences"]
    row.ended_at = values.get("ended_at", row.ended_at)


async def _end(conn: AsyncConnection, row: _Stored, at: datetime) -> None:
    await conn.execute(update(AnomalyRow).where(AnomalyRow.id == row.id).values(ended_at=at))
    row.ended_at = at


async def _hold(conn: AsyncConnection, store: Store, row: _Stored, readings: list[str]) -> None:
    """Join the readings to the episode; an episode of readings counts them (one of none counts its findings)."""
    if not readings:
        return
    await conn.execute(
        store.dialect.insert(AnomalyReading.__table__).on_conflict_do_nothing(),
        [{"anomaly_id": row.id, "reading_id": r} for r in readings],
    )
    held = select(func.count()).select_from(AnomalyReading).where(AnomalyReading.anomaly_id == row.id)
    row.occurrences = int((await conn.execute(held)).scalar_one())
    await conn.execute(update(AnomalyRow).where(AnomalyRow.id == row.id).values(occurrences=row.occurrences))


def _filtered(stmt: Any, *, status: str | None, kind: str | None, device: str | None) -> Any:  # noqa: ANN401 - a Select
    """``stmt`` narrowed to a status (or ``unresolved``), a kind and a device."""
    if status == "unresolved":
        stmt = stmt.where(AnomalyRow.status != RESOLVED)
    elif status:
        stmt = stmt.where(AnomalyRow.status == status)
    if kind:
        stmt = stmt.where(AnomalyRow.kind == kind)
    if device:
        stmt = stmt.where(Device.key == device)
    return stmt


def _select() -> Any:  # noqa: ANN401 - a Select of the record's columns
    return select(
        AnomalyRow.id,
        AnomalyRow.kind,
        AnomalyRow.severity,
        Device.key,
        AnomalyRow.meter,
        AnomalyRow.window_start,
        AnomalyRow.window_end,
        AnomalyRow.evidence,
        AnomalyRow.holds,
        AnomalyRow.status,
        AnomalyRow.detected_at,
        AnomalyRow.resolved_at,
        AnomalyRow.resolution,
        AnomalyRow.resolved_by,
        AnomalyRow.reason,
        AnomalyRow.occurrences,
        AnomalyRow.ended_at,
    ).join(Device, Device.id == AnomalyRow.device_id)


def _record(row: Any) -> AnomalyRecord:  # noqa: ANN401 - a Row of _select()
    values = list(row)
    values[7] = json.loads(values[7])
    return AnomalyRecord(*values)
