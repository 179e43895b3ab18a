"""The repository: idempotent writes of readings, dead letters, and the queries the CLI needs."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, Final, TypeVar

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Insert,
    Select,
    String,
    bindparam,
    case,
    cast,
    delete,
    func,
    select,
    text,
    union,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.types import TypeEngine

from daemon.kernel.errors import DatabaseUnreachableError, MeterdError, StorageError
from daemon.kernel.reading import DeviceInfo, Meter, MeterValue, Reading, Unit
from daemon.storage import migrate
from daemon.storage.audit import enforce_audit, write_audit
from daemon.storage.engine import create_engine, create_private, ensure_state_directory, mask, parse_url, sqlite_path
from daemon.storage.models import DeadLetter, Device, OutboxItem, ReadingRow, StateEntry, SupplyLevel
from daemon.storage.partitions import MONTHS_AHEAD, MonthlyPartitions, month_of, months_from
from daemon.storage.supplies import LastLevels, SupplySort, supplies_as_of
from daemon.storage.types import aware_utc, sqlite_time

T = TypeVar("T")

# Rows per multi-VALUES statement: SQLite allows 32,766 bound parameters, a device row has 7.
_DEVICE_CHUNK: Final = 1000
_READINGS_PER_INSERT: Final = 500
# What a DeadLetterRecord holds, in its order.
_DEAD_LETTER_COLUMNS: Final = (
    DeadLetter.received_at,
    DeadLetter.source,
    DeadLetter.origin,
    DeadLetter.reason,
    DeadLetter.detail,
    DeadLetter.raw,
    DeadLetter.repeats,
    DeadLetter.last_received_at,
)
# Redelivery comes within a broker session's life (mqtt.session_expiry_s, a week by default).
DEAD_LETTER_WINDOW: Final = timedelta(days=7)


# An agent's reading -> (MQTT topic, payload), queued in the outbox as it is stored.
Forward = Callable[[Reading], tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    id: int
    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """What one batch did: readings newly stored, readings already present, meter rows written.

    ``elsewhere``: readings set aside, not stored, because their site is not the site the
    device belongs to (a device changes site only through a person; the pipeline keeps them).
    """

    stored: int = 0
    duplicates: int = 0
    values: int = 0
    elsewhere: tuple[Reading, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    key: str
    vendor: str | None
    model: str | None
    address: str | None
    site: str
    first_seen: datetime
    last_seen: datetime
    name: str | None = None  # the office's name, location and cost centre for it (the customer's invoice)
    location: str | None = None
    cost_centre: str | None = None


# In DeviceRecord's field order.
_DEVICE_COLUMNS: Final = (
    Device.key,
    Device.vendor,
    Device.model,
    Device.address,
    Device.site,
    Device.first_seen,
    Device.last_seen,
    Device.name,
    Device.location,
    Device.cost_centre,
)


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    received_at: datetime
    source: str
    origin: str
    reason: str
    detail: str
    raw: bytes
    repeats: int
    last_received_at: datetime


@dataclass(frozen=True, slots=True)
class MeterPoint:
    """One stored meter value of a device, as a chart and a readings table read it."""

    meter: str
    taken_at: datetime
    value: int
    source: str
    reading_id: str


@dataclass(frozen=True, slots=True)
class AuditNote:
    """The audit entry a person's readings are stored with (a manual entry), in the same transaction."""

    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class DeviceNotFoundError(MeterdError):
    """No device with that key has ever sent a reading."""


class Store:
    """Async access to the store. Build it with :meth:`open`; the constructor does no I/O."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.url_for_humans = mask(engine.url)
        self.dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
        self.last_levels = LastLevels(tail=self.dialect is sqlite)
        self._partitions = MonthlyPartitions() if self.dialect is postgresql else None

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, url: str, *, busy_timeout_ms: int = 5000, upgrade: bool = True) -> AsyncIterator[Store]:
        """Check the store answers, migrate it to head, and close it on exit.

        Raises:
            ConfigError: the URL is malformed or unsupported.
            StateDirectoryError: an SQLite file's directory is not writable.
            DatabaseUnreachableError: the server does not answer.
        """
        parsed = parse_url(url)
        if (path := sqlite_path(parsed)) is not None:
            ensure_state_directory(path.parent)
            create_private(path)
        engine = create_engine(parsed, busy_timeout_ms=busy_timeout_ms)
        enforce_audit(engine)
        try:
            store = cls(engine)
            await store.ping()
            if upgrade:
                await store.migrate()
                await store.make_partitions_ahead()
            yield store
        finally:
            await engine.dispose()

    async def guard(self, awaitable: Awaitable[T], operation: str) -> T:
        """Await a store operation, translating driver errors once, here."""
        try:
            result = await awaitable
        except OperationalError as err:
            raise DatabaseUnreachableError(self._explain(err, operation)) from err
        except SQLAlchemyError as err:
            msg = f"store operation {operation!r} failed on {self.url_for_humans}: {_first_line(err)}"
            raise StorageError(msg) from err
        return result

    def _explain(self, err: DBAPIError, operation: str) -> str:
        what = (
            f"cannot reach the database at {self.url_for_humans}"
            if operation == "reach"
            else (f"cannot {operation}: the database at {self.url_for_humans} is unavailable")
        )
        return f"{what}: {_first_line(err)}; check storage.url (or --db) and that the server is running"

    async def migrate(self) -> tuple[str | None, str | None]:
        """Bring the schema to the newest revision; return the revisions before and after."""
        if await self.guard(migrate.at_head(self.engine), "migrate"):
            head = migrate.script_head()  # nothing to do, and Alembic stays unloaded (see migrate's docstring)
            return head, head
        before = await self.guard(migrate.current_revision(self.engine), "migrate")
        await self.guard(migrate.upgrade(self.engine), "migrate")
        return before, await self.guard(migrate.current_revision(self.engine), "migrate")

    async def ping(self) -> None:
        """Raise DatabaseUnreachableError unless the store answers a trivial query."""

        async def _ping() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await self.guard(_ping(), "reach")

    async def store(
        self,
        readings: Sequence[Reading],
        *,
        now: datetime,
        forward: Forward | None = None,
        audit: AuditNote | None = None,
    ) -> StoreOutcome:
        """Write readings in one transaction; what the store already holds is skipped and counted.

        With ``forward`` (an agent), every newly stored reading is also queued in the outbox,
        in the same transaction: a reading is never stored without being queued, or queued
        without being stored. With ``audit`` (a person's entry), its audit entry commits with them.
        """
        if not readings:
            return StoreOutcome()
        try:
            if self._partitions is not None:
                await self.guard(self._partitions.ensure(self.engine, (r.taken_at_utc for r in readings)), "partition")
            return await self.guard(self._store(readings, now, forward, audit), "store readings")
        except StorageError:
            if self._partitions is not None:
                self._partitions.forget()
            raise

    async def make_partitions_ahead(self, now: datetime | None = None) -> None:
        """PostgreSQL: this month's partition of `readings` and the next ones' (partitions.py)."""
        if self._partitions is not None:
            months = months_from(month_of(now or datetime.now(UTC)), MONTHS_AHEAD + 1)
            moments = [datetime(year, month, 1, tzinfo=UTC) for year, month in months]
            await self.guard(self._partitions.ensure(self.engine, moments), "create partitions")

    async def _store(
        self, readings: Sequence[Reading], now: datetime, forward: Forward | None, audit: AuditNote | None
    ) -> StoreOutcome:
        async with self.engine.begin() as conn:
            if audit is not None:
                await write_audit(conn, now, audit.actor, audit.action, audit.target, audit.detail)
            sites = await self._upsert_devices(conn, readings)
            elsewhere = tuple(r for r in readings if sites.get(r.device.key, (0, None))[1] != r.site)
            if elsewhere:
                readings = [r for r in readings if sites.get(r.device.key, (0, None))[1] == r.site]
            device_ids = {key: ident for key, (ident, _) in sites.items()}
            sort = await self.last_levels.sort(conn, readings, device_ids)
            news = sort.keep
            new_ids: set[str] = set()
            values = 0
            # Rows built and inserted a slice at a time, in the one transaction: a 10,000-printer
            # round would otherwise hold 100,000 row dicts (and the driver's copies) at once.
            for start in range(0, len(readings), _READINGS_PER_INSERT):
                part = readings[start : start + _READINGS_PER_INSERT]
                inserted, meter_values = await self._insert_readings(conn, part, device_ids, now, news)
                new_ids |= inserted
                values += meter_values
            # A reading with nothing in it cannot be told from its copy; it counts as stored. So does
            # one of supplies alone that changed nothing (its levels are those of the rows before it).
            empty = {r.id for r in readings if not r.meters and not any((r.id, s.name) in news for s in r.supplies)}
            fired = await self._insert_guarded(conn, sort)
            await self.last_levels.note_written(conn, sort)
            if forward is not None:
                await self._queue(conn, [r for r in readings if r.id in new_ids or r.id in empty], forward, now)
        self.last_levels.commit(sort, fired)
        stored = len(new_ids | empty)
        # Every reading not stored is a copy, also when it came in the same batch as its original
        # (a redelivered MQTT message can): counting distinct ids would miss exactly those.
        return StoreOutcome(stored=stored, duplicates=len(readings) - stored, values=values, elsewhere=elsewhere)

    async def _insert_readings(
        self,
        conn: AsyncConnection,
        readings: Sequence[Reading],
        device_ids: dict[str, int],
        now: datetime,
        news: set[tuple[str, str]],
    ) -> tuple[set[str], int]:
        """Insert the meter and supply rows of ``readings``; return the new readings' ids and the meter rows added."""
        if self.dialect is sqlite:
            return await _insert_counted(conn, readings, device_ids, now, news)
        meter_rows, supply_rows = _row_values(readings, device_ids, now, news, time=aware_utc)
        new_ids: set[str] = set()
        values = 0
        if meter_rows:
            inserted = await self._insert_returning(conn, ReadingRow, _METER_COLUMNS, meter_rows)
            values = len(inserted)
            new_ids.update(inserted)
        if supply_rows:
            new_ids.update(await self._insert_returning(conn, SupplyLevel, _SUPPLY_COLUMNS, supply_rows))
        return new_ids, values

    async def _insert_guarded(self, conn: AsyncConnection, sort: SupplySort) -> set[tuple[int, str]]:
        """PostgreSQL: write the rows the cache called unchanged where the store says otherwise; the keys where it did.

        The store decides, in one statement per batch: a row goes in unless the cached row is
        there as cached and no row of that supply came after it up to the reading. (SQLite's
        cache checks the rows other writers added instead and sends no guarded rows.)
        """
        if not sort.guarded:
            return set()
        columns = [list(column) for column in zip(*sort.guarded, strict=True)]
        result = await conn.execute(_INSERT_GUARDED_POSTGRES, dict(zip(_GUARDED_COLUMNS, columns, strict=True)))
        return {(device_id, name) for device_id, name in result}

    async def _queue(self, conn: AsyncConnection, readings: list[Reading], forward: Forward, now: datetime) -> None:
        rows = []
        for reading in {r.id: r for r in readings}.values():
            topic, payload = forward(reading)
            rows.append({"reading_id": reading.id, "topic": topic, "payload": payload, "created_at": now})
        if rows:
            await conn.execute(self.dialect.insert(OutboxItem.__table__).on_conflict_do_nothing(), rows)

    async def outbox_pending(self, *, after_id: int = 0, limit: int = 1000) -> list[OutboxRecord]:
        """The oldest queued readings (after ``after_id``), in the order they were stored."""

        async def _query() -> list[OutboxRecord]:
            stmt = (
                select(OutboxItem.id, OutboxItem.topic, OutboxItem.payload)
                .where(OutboxItem.id > after_id)
                .order_by(OutboxItem.id)
                .limit(limit)
            )
            async with self.engine.connect() as conn:
                return [OutboxRecord(*row) for row in await conn.execute(stmt)]

        return await self.guard(_query(), "read outbox")

    async def outbox_remove(self, *, ids: Sequence[int] = (), through: int | None = None) -> None:
        """Forget queued readings the hub has committed (every id ``through``) or the broker acknowledged (``ids``)."""

        async def _delete() -> None:
            async with self.engine.begin() as conn:
                if through is not None:
                    await conn.execute(delete(OutboxItem).where(OutboxItem.id <= through))
                for start in range(0, len(ids), _DEVICE_CHUNK):
                    await conn.execute(delete(OutboxItem).where(OutboxItem.id.in_(ids[start : start + _DEVICE_CHUNK])))

        await self.guard(_delete(), "remove from outbox")

    async def states(self, *, prefix: str) -> dict[str, str]:
        """The named state values whose key starts with ``prefix``."""

        async def _query() -> dict[str, str]:
            stmt = select(StateEntry.key, StateEntry.value).where(StateEntry.key.startswith(prefix, autoescape=True))
            async with self.engine.connect() as conn:
                return {key: value for key, value in await conn.execute(stmt)}  # noqa: C416 - not a mapping

        return await self.guard(_query(), "read state")

    async def get_state(self, key: str) -> str | None:
        """One named state value (a job's watermark, the outbox's epoch), or None when never set."""

        async def _query() -> str | None:
            async with self.engine.connect() as conn:
                return (await conn.execute(select(StateEntry.value).where(StateEntry.key == key))).scalar_one_or_none()

        return await self.guard(_query(), "read job state")

    async def set_state(self, key: str, value: str) -> None:
        """Set one named state value, replacing what it held."""

        async def _write() -> None:
            async with self.engine.begin() as conn:
                stmt = self.dialect.insert(StateEntry.__table__).values(key=key, value=value)
                await conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

        await self.guard(_write(), "write job state")

    async def outbox_stats(self) -> tuple[int, datetime | None]:
        """How many readings wait, and when the oldest was queued."""

        async def _query() -> tuple[int, datetime | None]:
            async with self.engine.connect() as conn:
                depth, oldest = (await conn.execute(select(func.count(), func.min(OutboxItem.created_at)))).one()
            return int(depth), oldest

        return await self.guard(_query(), "read outbox size")

    async def outbox_trim(self, max_items: int) -> int:
        """Drop the oldest queued readings beyond ``max_items``; returns how many were dropped."""

        async def _trim() -> int:
            async with self.engine.begin() as conn:
                depth = (await conn.execute(select(func.count()).select_from(OutboxItem))).scalar_one()
                excess = int(depth) - max_items
                if excess <= 0:
                    return 0
                cutoff = (
                    await conn.execute(select(OutboxItem.id).order_by(OutboxItem.id).offset(excess - 1).limit(1))
                ).scalar_one()
                await conn.execute(delete(OutboxItem).where(OutboxItem.id <= cutoff))
                return excess

        return await self.guard(_trim(), "trim outbox")

    async def _insert_returning(
        self,
        conn: AsyncConnection,
        model: type[ReadingRow | SupplyLevel],
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
    ) -> list[str]:
        return list((await conn.execute(_INSERT_FROM_ARRAYS[model], _as_arrays(columns, rows))).scalars())

    async def _upsert_devices(self, conn: AsyncConnection, readings: Sequence[Reading]) -> dict[str, tuple[int, str]]:
        """Insert new devices, refresh known ones of the same site; their ids and sites.

        A known device is left untouched by a reading of another site (it is absent from the
        answer): anyone allowed to publish for one site could otherwise take over another's printer.
        """
        newest: dict[str, Reading] = {}
        oldest: dict[str, datetime] = {}
        owner = await _owning_sites(conn, readings)
        for reading in readings:
            key = reading.device.key
            if owner.get(key, reading.site) != reading.site:
                continue
            if key not in newest or reading.taken_at_utc > newest[key].taken_at_utc:
                newest[key] = reading
            oldest[key] = min(oldest.get(key, reading.taken_at_utc), reading.taken_at_utc)
        rows = [  # in _DEVICE_UPSERT_COLUMNS order
            (key, r.device.vendor, r.device.model, r.device.address, r.site, oldest[key], r.taken_at_utc)
            for key, r in newest.items()
        ]
        if not rows:
            return {}
        if self.dialect is postgresql:
            result = await conn.execute(_UPSERT_DEVICES_FROM_ARRAYS, _as_arrays(_DEVICE_UPSERT_COLUMNS, rows))
            return {key: (ident, site) for key, ident, site in result}
        # SQLite: one statement shape executed with many parameter sets: compiled once and cached,
        # where a multi-row VALUES of this batch's size would be compiled anew every batch.
        ids: dict[str, tuple[int, str]] = {}
        for start in range(0, len(rows), _DEVICE_CHUNK):
            chunk = [dict(zip(_DEVICE_UPSERT_COLUMNS, row, strict=True)) for row in rows[start : start + _DEVICE_CHUNK]]
            ids.update({key: (ident, site) for key, ident, site in await conn.execute(_UPSERT_DEVICES, chunk)})
        return ids

    async def dead_letter(
        self, *, raw: bytes, source: str, origin: str, reason: str, detail: str, now: datetime
    ) -> bool:
        """Keep input that could not be accepted, whole, with the reason; False when it is a repeat.

        The same bytes from the same source and origin, last seen within DEAD_LETTER_WINDOW,
        are a redelivery (a batch committed but not acknowledged before a crash or a broker
        restart comes again): the existing row counts one more repeat.
        """
        digest = hashlib.sha256(raw).hexdigest()
        origin = origin[:512]

        async def _write() -> bool:
            async with self.engine.begin() as conn:
                same = (
                    await conn.execute(
                        select(DeadLetter.id)
                        .where(
                            DeadLetter.source == source,
                            DeadLetter.origin == origin,
                            DeadLetter.raw_sha256 == digest,
                            DeadLetter.last_received_at >= now - DEAD_LETTER_WINDOW,
                        )
                        .order_by(DeadLetter.id.desc())
                        .limit(1)
                    )
                ).scalar_one_or_none()
                if same is not None:
                    await conn.execute(
                        update(DeadLetter)
                        .where(DeadLetter.id == same)
                        .values(
                            repeats=DeadLetter.repeats + 1,
                            last_received_at=case(
                                (DeadLetter.last_received_at < now, now), else_=DeadLetter.last_received_at
                            ),
                        )
                    )
                    return False
                await conn.execute(
                    self.dialect.insert(DeadLetter).values(
                        received_at=now,
                        source=source,
                        origin=origin,
                        reason=reason,
                        detail=detail,
                        raw=raw,
                        raw_sha256=digest,
                        repeats=1,
                        last_received_at=now,
                    )
                )
                return True

        return await self.guard(_write(), "store a dead letter")

    async def dead_letters(self, *, limit: int = 100) -> list[DeadLetterRecord]:
        async def _query() -> list[DeadLetterRecord]:
            stmt = select(*_DEAD_LETTER_COLUMNS).order_by(DeadLetter.id.desc()).limit(limit)
            async with self.engine.connect() as conn:
                return [DeadLetterRecord(*row) for row in await conn.execute(stmt)]

        return await self.guard(_query(), "read dead letters")

    async def move_device(self, key: str, *, site: str, reason: str, origin: str) -> list[DeadLetterRecord]:
        """Put a device at another site; return, and forget, its dead letters of ``reason`` from ``origin``.

        The readings a site change held back (site_changed) go back to the caller to be stored.
        """

        async def _move() -> list[DeadLetterRecord]:
            held = (DeadLetter.reason == reason) & (DeadLetter.origin == origin)
            async with self.engine.begin() as conn:
                await conn.execute(update(Device).where(Device.key == key).values(site=site))
                rows = await conn.execute(select(*_DEAD_LETTER_COLUMNS).where(held).order_by(DeadLetter.id))
                letters = [DeadLetterRecord(*row) for row in rows]
                await conn.execute(delete(DeadLetter).where(held))
            return letters

        return await self.guard(_move(), "move a device")

    async def devices(self) -> list[DeviceRecord]:
        async def _query() -> list[DeviceRecord]:
            stmt = select(*_DEVICE_COLUMNS).order_by(Device.site, Device.key)
            async with self.engine.connect() as conn:
                return [DeviceRecord(**row._asdict()) for row in await conn.execute(stmt)]

        return await self.guard(_query(), "list devices")

    async def device(self, key: str) -> DeviceRecord:
        """Raises DeviceNotFoundError."""

        async def _query() -> DeviceRecord | None:
            stmt = select(*_DEVICE_COLUMNS).where(Device.key == key)
            async with self.engine.connect() as conn:
                row = (await conn.execute(stmt)).first()
            return None if row is None else DeviceRecord(**row._asdict())

        found = await self.guard(_query(), "read a device")
        if found is None:
            msg = f"no device {key!r}; the devices list shows the keys (serial numbers) the store knows"
            raise DeviceNotFoundError(msg)
        return found

    async def meter_points(self, device: str, *, since: datetime, until: datetime) -> list[MeterPoint]:
        """Every meter value of ``device`` taken in [since, until), oldest first (the device-meter-time index)."""

        async def _query() -> list[MeterPoint]:
            stmt = (
                select(
                    ReadingRow.meter, ReadingRow.taken_at, ReadingRow.value, ReadingRow.source, ReadingRow.reading_id
                )
                .join(Device, Device.id == ReadingRow.device_id)
                .where(Device.key == device, ReadingRow.taken_at >= since, ReadingRow.taken_at < until)
                .order_by(ReadingRow.taken_at, ReadingRow.meter)
            )
            async with self.engine.connect() as conn:
                return [MeterPoint(*row) for row in await conn.execute(stmt)]

        return await self.guard(_query(), "read a device's meters")

    async def device_meters(self, key: str) -> set[str]:
        """The meters ``key`` has ever reported."""

        async def _query() -> set[str]:
            stmt = (
                select(ReadingRow.meter)
                .join(Device, Device.id == ReadingRow.device_id)
                .where(Device.key == key)
                .distinct()
            )
            async with self.engine.connect() as conn:
                return set((await conn.execute(stmt)).scalars())

        return await self.guard(_query(), "read a device's meters")

    async def count_devices(self) -> int:
        async def _query() -> int:
            async with self.engine.connect() as conn:
                return int((await conn.execute(select(func.count()).select_from(Device))).scalar_one())

        return await self.guard(_query(), "count devices")

    async def readings(
        self, *, device: str | None = None, since: datetime | None = None, until: datetime | None = None
    ) -> list[Reading]:
        """Stored readings, regrouped into one Reading per reading id, oldest first."""
        return await self.guard(self._readings(device, since, until), "read readings")

    async def _readings(self, device: str | None, since: datetime | None, until: datetime | None) -> list[Reading]:
        filters: list[ColumnElement[bool]] = []
        if device is not None:
            filters.append(Device.key == device)
        if since is not None:
            filters.append(ReadingRow.taken_at >= since)
        if until is not None:
            filters.append(ReadingRow.taken_at < until)
        stmt = (
            select(
                ReadingRow.reading_id,
                ReadingRow.taken_at,
                ReadingRow.source,
                Device.site,
                Device.key,
                Device.vendor,
                ReadingRow.model,  # as read, not the device's latest
                ReadingRow.address,
                ReadingRow.meter,
                ReadingRow.value,
                ReadingRow.unit,
                ReadingRow.derived,
                ReadingRow.device_id,
            )
            .join(Device, Device.id == ReadingRow.device_id)
            .where(*filters)
            .order_by(ReadingRow.taken_at, Device.key, ReadingRow.reading_id, ReadingRow.id)
        )
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(stmt))
            supplies = await supplies_as_of(conn, list({row[0]: (row[0], row[12], row[1]) for row in rows}.values()))
        readings = []
        for (reading_id, taken_at, source, site, key, vendor, model, address), group in groupby(
            rows, key=lambda row: row[:8]
        ):
            readings.append(
                Reading(
                    id=reading_id,
                    site=site,
                    taken_at=taken_at,
                    source=source,
                    device=DeviceInfo(key=key, vendor=vendor, model=model, address=address),
                    meters=tuple(MeterValue(Meter(g[8]), g[9], Unit(g[10]), g[11]) for g in group),
                    supplies=supplies.get(reading_id, ()),
                )
            )
        return readings

    async def maintain(self) -> None:
        """Periodic upkeep: SQLite refreshes its planner statistics and folds the WAL back."""
        if self.engine.dialect.name != "sqlite":
            return  # PostgreSQL's autovacuum does this job

        async def _run() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("PRAGMA optimize"))
                await conn.execute(text("PRAGMA wal_checkpoint(PASSIVE)"))

        await self.guard(_run(), "maintain")

    async def flush(self) -> None:
        """Before exit: move everything out of SQLite's WAL into the database file."""
        if self.engine.dialect.name == "sqlite":

            async def _run() -> None:
                async with self.engine.connect() as conn:
                    await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))

            await self.guard(_run(), "flush")


_METER_COLUMNS: Final = (
    "reading_id",
    "device_id",
    "meter",
    "value",
    "unit",
    "derived",
    "taken_at",
    "received_at",
    "source",
    "address",
    "model",
)
_SUPPLY_COLUMNS: Final = ("reading_id", "device_id", "taken_at", "name", "kind", "color", "level_percent")


def _insert_sql(model: type[ReadingRow | SupplyLevel], columns: tuple[str, ...]) -> str:
    """SQLite's INSERT … ON CONFLICT DO NOTHING of ``columns``, ``?`` in their order, for the driver's executemany."""
    compiled = (
        sqlite.insert(model).on_conflict_do_nothing().compile(dialect=sqlite.dialect(), column_keys=list(columns))
    )
    if compiled.positiontup != list(columns):  # the tuples of _row_values must line up with the placeholders
        msg = f"{model.__tablename__}: placeholders {compiled.positiontup} are not in the order {columns}"
        raise RuntimeError(msg)
    return str(compiled)


_INSERT_METERS: Final = _insert_sql(ReadingRow, _METER_COLUMNS)
_INSERT_SUPPLIES: Final = _insert_sql(SupplyLevel, _SUPPLY_COLUMNS)


def _from_arrays(table: FromClause, columns: Sequence[str]) -> Select[Any]:
    """PostgreSQL: SELECT … FROM unnest(one array parameter per column), for INSERT … SELECT.

    A batch goes as one array per column, not one placeholder per value: psycopg parses anew,
    at every execution, a statement too long for its cache, and a 1,000-row VALUES list was two
    thirds of a hub's commit time (cProfile). This text is the same for any batch size.
    """
    arrays = [cast(bindparam(name), postgresql.ARRAY(_unbounded(table.c[name].type))) for name in columns]
    rows = func.unnest(*arrays).table_valued(*columns).render_derived()
    return select(*rows.c)


def _unbounded(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    """The array's element type: a CAST to varchar(n) would cut a longer value silently; the column must refuse it."""
    return String() if isinstance(column_type, String) else column_type


def _insert_from_arrays(model: type[ReadingRow | SupplyLevel], columns: tuple[str, ...]) -> ReturningInsert[Any]:
    insert = postgresql.insert(model).from_select(columns, _from_arrays(model.__table__, columns))
    return insert.on_conflict_do_nothing().returning(model.__table__.c.reading_id)


_INSERT_FROM_ARRAYS: Final = {
    ReadingRow: _insert_from_arrays(ReadingRow, _METER_COLUMNS),
    SupplyLevel: _insert_from_arrays(SupplyLevel, _SUPPLY_COLUMNS),
}
_GUARDED_COLUMNS: Final = (*_SUPPLY_COLUMNS, "cached_at")
# PostgreSQL: the row goes in unless the cached row is still there, as cached, and nothing came after it up to
# this reading (both probes on the (device_id, name, taken_at) index); the batch as one array per column, one
# statement, and RETURNING says which went in.
_INSERT_GUARDED_POSTGRES: Final = text("""
INSERT INTO supplies (reading_id, device_id, taken_at, name, kind, color, level_percent)
SELECT v.reading_id, v.device_id, v.taken_at, v.name, v.kind, v.color, v.level_percent
FROM unnest(
    CAST(:reading_id AS varchar[]), CAST(:device_id AS integer[]), CAST(:taken_at AS timestamptz[]),
    CAST(:name AS varchar[]), CAST(:kind AS varchar[]), CAST(:color AS varchar[]),
    CAST(:level_percent AS smallint[]), CAST(:cached_at AS timestamptz[])
) AS v(reading_id, device_id, taken_at, name, kind, color, level_percent, cached_at)
WHERE NOT EXISTS (
    SELECT 1 FROM supplies s WHERE s.device_id = v.device_id AND s.name = v.name AND s.taken_at = v.cached_at
    AND s.kind = v.kind AND s.color IS NOT DISTINCT FROM v.color
    AND s.level_percent IS NOT DISTINCT FROM v.level_percent)
OR EXISTS (
    SELECT 1 FROM supplies s WHERE s.device_id = v.device_id AND s.name = v.name
    AND s.taken_at > v.cached_at AND s.taken_at <= v.taken_at)
ON CONFLICT DO NOTHING
RETURNING device_id, name
""")


_LAST_ROW_IDS: Final = select(
    select(func.max(ReadingRow.id)).scalar_subquery(), select(func.max(SupplyLevel.id)).scalar_subquery()
)
_READING_IDS_AFTER: Final = union(
    select(ReadingRow.reading_id).where(ReadingRow.id > bindparam("meter_id")),
    select(SupplyLevel.reading_id).where(SupplyLevel.id > bindparam("supply_id")),
)


def _row_values(
    readings: Sequence[Reading],
    device_ids: dict[str, int],
    now: datetime,
    news: set[tuple[str, str]],
    *,
    time: Callable[[datetime], object],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The meter rows and supply rows of ``readings`` as tuples in ``_METER_COLUMNS`` / ``_SUPPLY_COLUMNS`` order.

    Only the supplies in ``news`` (reading id, name) get a row: see daemon.storage.supplies.
    """
    received_at = time(now)
    meter_rows: list[tuple[Any, ...]] = []
    supply_rows: list[tuple[Any, ...]] = []
    for r in readings:
        # What a reading's rows share, worked out once per reading, not per row.
        reading_id, device_id, taken_at, source = r.id, device_ids[r.device.key], time(r.taken_at_utc), r.source
        address, model = r.device.address, r.device.model
        meter_rows += [
            (
                reading_id,
                device_id,
                m.meter.value,
                m.value,
                m.unit.value,
                m.derived,
                taken_at,
                received_at,
                source,
                address,
                model,
            )
            for m in r.meters
        ]
        supply_rows += [
            (reading_id, device_id, taken_at, s.name, s.kind, s.color, s.level_percent)
            for s in r.supplies
            if (reading_id, s.name) in news
        ]
    return meter_rows, supply_rows


async def _insert_counted(
    conn: AsyncConnection,
    readings: Sequence[Reading],
    device_ids: dict[str, int],
    now: datetime,
    news: set[tuple[str, str]],
) -> tuple[set[str], int]:
    """SQLite: rows in through the driver's executemany; the count it reports says whether every reading was new.

    SQLAlchemy's RETURNING path builds and processes a parameter dict per row; sqlite3's
    executemany binds tuples in C (a poll round's store: 0.24 to 0.29 → 0.14 to 0.21 CPU-s per
    1,000 readings). Only when some rows were already there is the table asked which
    readings are new: those with rows past the ids held before (the transaction holds
    SQLite's one write lock, and a new row gets max(rowid) + 1).
    """
    meter_rows, supply_rows = _row_values(readings, device_ids, now, news, time=sqlite_time)
    last_meter_id, last_supply_id = (await conn.execute(_LAST_ROW_IDS)).one()
    meters_written = await _execute_many(conn, _INSERT_METERS, meter_rows)
    supplies_written = await _execute_many(conn, _INSERT_SUPPLIES, supply_rows)
    if meters_written == len(meter_rows) and supplies_written == len(supply_rows):
        return {r.id for r in readings if r.meters or any((r.id, s.name) in news for s in r.supplies)}, meters_written
    after = await conn.execute(_READING_IDS_AFTER, {"meter_id": last_meter_id or 0, "supply_id": last_supply_id or 0})
    return set(after.scalars()), meters_written


async def _execute_many(conn: AsyncConnection, sql: str, rows: list[tuple[Any, ...]]) -> int:
    """Rows written (a row already there is skipped by ON CONFLICT DO NOTHING and not counted)."""
    if not rows:
        return 0
    return (await conn.exec_driver_sql(sql, rows)).rowcount


_DEVICE_UPSERT_COLUMNS: Final = ("key", "vendor", "model", "address", "site", "first_seen", "last_seen")


def _upsert_devices_statement(insert: Insert) -> ReturningInsert[Any]:
    """Insert a device, or refresh a known one of the same site from the newer reading (either dialect)."""
    table = Device.__table__
    incoming = insert.excluded  # type: ignore[attr-defined]
    is_newer = incoming.last_seen > table.c.last_seen
    upsert = insert.on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=[table.c.key],
        set_={
            "vendor": _newer_or_kept(is_newer, incoming.vendor, table.c.vendor),
            "model": _newer_or_kept(is_newer, incoming.model, table.c.model),
            "address": _newer_or_kept(is_newer, incoming.address, table.c.address),
            "last_seen": case((is_newer, incoming.last_seen), else_=table.c.last_seen),
            "first_seen": case(
                (incoming.first_seen < table.c.first_seen, incoming.first_seen), else_=table.c.first_seen
            ),
        },
        where=table.c.site == incoming.site,
    )
    return upsert.returning(table.c.key, table.c.id, table.c.site)  # type: ignore[no-any-return]


def _as_arrays(columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> dict[str, list[Any]]:
    """Row tuples (in ``columns`` order) as one list per column: the parameters of ``_from_arrays``."""
    return dict(zip(columns, ([*column] for column in zip(*rows, strict=True)), strict=True))


async def _owning_sites(conn: AsyncConnection, readings: Sequence[Reading]) -> dict[str, str]:
    """The stored site of each device that readings of one batch place at more than one site (rare)."""
    seen: dict[str, str] = {}
    mixed: set[str] = set()
    for reading in readings:
        if seen.setdefault(reading.device.key, reading.site) != reading.site:
            mixed.add(reading.device.key)
    if not mixed:
        return {}
    result = await conn.execute(select(Device.key, Device.site).where(Device.key.in_(sorted(mixed))))
    return {key: site for key, site in result}  # noqa: C416 - a Result is not a mapping


def _newer_or_kept(is_newer: ColumnElement[bool], incoming: Any, kept: Any) -> ColumnElement[Any]:  # noqa: ANN401 - SQL expressions
    """Take the incoming value when its reading is newer and it has one; otherwise keep ours."""
    return case((is_newer, func.coalesce(incoming, kept)), else_=kept)


_UPSERT_DEVICES: Final = _upsert_devices_statement(sqlite.insert(Device))
_UPSERT_DEVICES_FROM_ARRAYS: Final = _upsert_devices_statement(
    postgresql.insert(Device).from_select(
        _DEVICE_UPSERT_COLUMNS, _from_arrays(Device.__table__, _DEVICE_UPSERT_COLUMNS)
    )
)


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
