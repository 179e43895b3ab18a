"""The SNMP collector: probe a device once, then read it with one GET per poll.

The first poll of an address (and every ``replan_after_s``, or when the device at that
address changes) walks the counter and supply tables and keeps a plan: which OIDs the
device answers, which table rows carry which meter, each supply's name and capacity.
Later polls GET exactly those OIDs, usually in one PDU; that is what keeps a round of
thousands of printers cheap. Everything here returns typed readings; nothing is stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Self, TypeVar, cast

import structlog

from collectors.snmp import printer_mib as pm
from collectors.snmp import status as st
from collectors.snmp.client import SnmpClient, SnmpTarget, Value
from collectors.snmp.mapping import DeviceAnswers, DeviceReport, TableRow, build_report, text_of
from collectors.snmp.profiles import KEY, Catalog, CounterTable, Profile, builtin_catalog
from daemon.kernel.errors import CollectorError, ProtocolError

DEFAULT_REPLAN_AFTER_S: Final = 6 * 3600.0
T = TypeVar("T")
RowKeys = tuple[tuple[str, str], ...]
log = structlog.get_logger(__name__)


@dataclass(slots=True)
class _Plan:
    profile: Profile
    sys_object_id: Value | None
    device_key: str
    # Strings that describe the device (sysDescr, model, IEEE 1284 ID, MAC) are kept from the
    # probe: decoding them every poll is most of a poll's CPU. sysObjectID and the serial are
    # asked every time, so a swap is still seen at once; the rest refreshes at the next probe.
    static: dict[str, Value]
    # Per profile table: row suffix -> (row keys, OID of its value).
    table_cells: list[dict[str, tuple[RowKeys, str]]]
    # Per supply row: the columns that do not change between polls (name, type, capacity).
    supply_rows: dict[str, dict[str, Value]]
    # What every warm poll asks, in one GET.
    oids: tuple[str, ...]
    made_at: float
    matched_by: str
    # hrDeviceIndex of the printer whose status is read (None: the device answers no status).
    status_index: str | None = None
    # The last alert walk found a standing condition: walk again until it is gone.
    alerts_open: bool = False


class _Alike:
    """One copy of what many plans hold alike.

    Printers of one model answer the same strings, supply rows and OID lists; without this
    every plan of a 10,000-printer site held its own copies.
    """

    _LIMIT: Final = 100_000

    def __init__(self) -> None:
        self._copies: dict[Hashable, Any] = {}

    def one_copy(self, key: Hashable, value: T) -> T:
        """The copy already held for ``key``, else ``value`` (then held). Callers never mutate either."""
        if len(self._copies) >= self._LIMIT:  # replans of changing devices must not grow it forever
            self._copies.clear()
        copy: T = self._copies.setdefault(key, value)
        return copy


class SnmpCollector:
    """Polled collector: ``await collector.poll(target)`` -> DeviceReport. Enter with ``async with``."""

    def __init__(
        self,
        *,
        site: str,
        catalog: Catalog | None = None,
        replan_after_s: float = DEFAULT_REPLAN_AFTER_S,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._site = site
        self._catalog = catalog or builtin_catalog()
        self._replan_after_s = replan_after_s
        self._now = now
        self._client = SnmpClient()
        # Keyed by the whole target: one address may serve several devices by community (simulators, proxies).
        self._plans: dict[SnmpTarget, _Plan] = {}
        self._alike = _Alike()

    async def __aenter__(self) -> Self:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(*exc)

    @property
    def client(self) -> SnmpClient:
        """The SNMP client this collector polls through (discovery sweeps with it too)."""
        return self._client

    def forget(self, target: SnmpTarget) -> None:
        """Drop what is known about ``target``: its next poll probes it afresh."""
        self._plans.pop(target, None)

    async def poll(self, target: SnmpTarget) -> DeviceReport:
        """Read one device.

        Raises:
            DeviceTimeoutError: it did not answer.
            ProtocolError: it answered with errors, or is not something with a system group.
        """
        plan = self._plans.get(target)
        if plan is None or time.monotonic() - plan.made_at > self._replan_after_s:
            return await self._probe(target)
        scalars = await self._client.get(target, plan.oids)
        if scalars.get(pm.SYS_OBJECT_ID) != plan.sys_object_id:
            return await self._probe(target)  # another device now answers at this address
        if any(oid not in scalars for cells in plan.table_cells for _keys, oid in cells.values()):
            # A meter summed over rows would come out short, like a counter going back: learn the rows again.
            return await self._probe(target)
        answers = DeviceAnswers(
            scalars={**plan.static, **scalars},
            tables=[
                {suffix: TableRow(keys, scalars[oid]) for suffix, (keys, oid) in cells.items()}
                for cells in plan.table_cells
            ],
            supplies={
                suffix: {**row, pm.SUPPLY_LEVEL: scalars[level]}
                for suffix, row in plan.supply_rows.items()
                if (level := f"{pm.SUPPLY_LEVEL}.{suffix}") in scalars
            },
        )
        report = self._report(plan.profile, answers, target, plan.matched_by)
        if report.reading.device.key != plan.device_key:
            return await self._probe(target)  # same model, other serial: a swap; re-learn it
        if plan.status_index is None:
            return report
        status = st.device_status(scalars, plan.status_index, ())
        # The alert table is walked only when something is wrong, or was at the last walk: a healthy
        # device stays at one GET per poll.
        if plan.alerts_open or not status.settled:
            alerts = st.alerts_of(await self._walk_status(target, st.ALERT_COLUMNS))
            status = dataclasses.replace(status, alerts=alerts)
            plan.alerts_open = any(alert.is_condition for alert in alerts)
        return dataclasses.replace(report, status=status)

    async def _probe(self, target: SnmpTarget) -> DeviceReport:
        self._plans.pop(target, None)
        scalars = await self._client.get(target, pm.IDENTITY_OIDS)
        if pm.SYS_OBJECT_ID not in scalars and pm.SYS_DESCR not in scalars:
            raise ProtocolError(target.address, "answers SNMP but not sysObjectID/sysDescr; is this a printer?")
        identified = self._catalog.identify(
            _oid_text(scalars.get(pm.SYS_OBJECT_ID)),
            [(name, text_of(scalars.get(oid))) for name, oid in pm.IDENTIFYING_STRINGS],
        )
        profile = identified.profile
        # By sysObjectID is the rule for nearly every device; a fallback (or none) is worth seeing at info.
        by_oid = identified.rule.startswith("sysObjectID")
        (log.debug if by_oid else log.info)(
            "device_identified", address=target.address, profile=profile.name, rule=identified.rule
        )
        scalars |= await self._client.get(target, profile.scalar_oids())
        # Every table column, the profile's and the supplies', walked side by side: a few round trips in all.
        table_columns = [column for table in profile.tables for column in (*table.key_columns().values(), table.values)]
        walked = await self._client.walk_columns(target, [*dict.fromkeys(table_columns), *pm.SUPPLY_COLUMNS])
        # Walked apart from the counters: a status table that answers with errors must cost no meter.
        status_walk = await self._walk_status(target, [st.HR_PRINTER_STATUS, *st.ALERT_COLUMNS])
        # The printer's row of hrPrinterTable; devices without that table (LibreNMS's Canon LBP recording
        # answers hrDeviceStatus alone) are asked at hrDeviceIndex 1, where every recorded printer has its own.
        status_index = next(iter(st.printer_indexes(status_walk.get(st.HR_PRINTER_STATUS, {}))), "1")
        status_scalars = await self._client.get(target, st.status_oids(status_index))
        scalars |= status_scalars
        tables = [_table_rows(walked, table) for table in profile.tables]
        supplies = _supply_rows(walked)
        answers = DeviceAnswers(
            scalars=scalars,
            tables=[{suffix: TableRow(key, value) for suffix, (key, _oid, value) in rows.items()} for rows in tables],
            supplies=supplies,
        )
        report = self._report(profile, answers, target, identified.rule)
        alerts = st.alerts_of(status_walk)
        if status_scalars:
            report = dataclasses.replace(report, status=st.device_status(status_scalars, status_index, alerts))
        static_oids = {
            pm.SYS_DESCR,
            pm.HR_DEVICE_DESCR,
            pm.PRT_GENERAL_PRINTER_NAME,
            pm.PRT_MARKER_COUNTER_UNIT,
            pm.PRT_MARKER_PROCESS_COLORANTS,
            *pm.IF_PHYS_ADDRESSES,
            *profile.identity.model,
            *profile.identity.device_id,
        }
        alike = self._alike.one_copy
        # Each value shared on its own too: a MAC makes every device's set differ, its sysDescr rarely does.
        static = {oid: alike(("value", value), value) for oid, value in scalars.items() if oid in static_oids}
        table_cells = [
            {suffix: (keys, oid) for suffix, (keys, oid, _value) in rows.items() if table.wanted(dict(keys))}
            for table, rows in zip(profile.tables, tables, strict=True)
        ]
        supply_rows = {
            suffix: {col: val for col, val in row.items() if col != pm.SUPPLY_LEVEL} for suffix, row in supplies.items()
        }
        # Only what answered: on SNMPv1 each missing OID costs a round trip (noSuchName).
        oids = tuple(
            dict.fromkeys(  # two tables may read the same cells (Xerox: by label, then by number)
                (
                    *(oid for oid in scalars if oid not in static_oids),
                    *(oid for cells in table_cells for _key, oid in cells.values()),
                    *(f"{pm.SUPPLY_LEVEL}.{suffix}" for suffix in supply_rows),
                )
            )
        )
        self._plans[target] = _Plan(
            profile=profile,
            sys_object_id=scalars.get(pm.SYS_OBJECT_ID),
            device_key=report.reading.device.key,
            static=alike(("static", *static.items()), static),
            table_cells=[alike(("cells", *cells.items()), cells) for cells in table_cells],
            supply_rows=alike(("supplies", *((k, *row.items()) for k, row in supply_rows.items())), supply_rows),
            oids=alike(("oids", *oids), oids),
            made_at=time.monotonic(),
            matched_by=identified.rule,
            status_index=status_index if status_scalars else None,
            alerts_open=any(alert.is_condition for alert in alerts),
        )
        return report

    async def _walk_status(self, target: SnmpTarget, columns: Sequence[str]) -> dict[str, dict[str, Value]]:
        """Status and alert columns; an error answer means the device has none to give (a timeout still raises)."""
        try:
            return await self._client.walk_columns(target, columns)
        except ProtocolError as err:
            log.debug("status_unreadable", address=target.address, reason=err.message)
            return {}

    def _report(self, profile: Profile, answers: DeviceAnswers, target: SnmpTarget, matched_by: str) -> DeviceReport:
        return build_report(
            profile, answers, site=self._site, address=target.host, taken_at=self._now(), matched_by=matched_by
        )


async def poll_many(
    collector: SnmpCollector, targets: Sequence[SnmpTarget], *, concurrency: int
) -> list[DeviceReport | CollectorError]:
    """Poll every target, at most ``concurrency`` at once; one failure never stops the others.

    ``concurrency`` workers take targets in turn: a task per target would hold 10,000
    suspended tasks (and their frames) for a big round.
    """
    results: list[DeviceReport | CollectorError | None] = [None] * len(targets)
    pending = iter(enumerate(targets))

    async def worker() -> None:
        for index, target in pending:  # shared: each target is taken by exactly one worker
            try:
                results[index] = await collector.poll(target)
            except CollectorError as err:
                # Kept as a value for the caller, not re-raised: its traceback would only keep frames alive.
                results[index] = err.with_traceback(None)

    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(targets))):
            group.create_task(worker())
    # Every slot is filled: a worker either stores an outcome or its exception ends the TaskGroup.
    return cast("list[DeviceReport | CollectorError]", results)


def _table_rows(walked: dict[str, dict[str, Value]], table: CounterTable) -> dict[str, tuple[RowKeys, str, Value]]:
    """Rows of a counter table: suffix -> (keys, value OID, value). A row missing a key column is skipped."""
    key_columns = table.key_columns()
    rows: dict[str, tuple[RowKeys, str, Value]] = {}
    for oid, value in walked[table.values].items():
        suffix = oid[len(table.values) + 1 :]
        if not key_columns:
            rows[suffix] = (((KEY, suffix),), oid, value)
            continue
        keys = tuple(
            (name, _key_text(walked[column].get(f"{column}.{suffix}"))) for name, column in key_columns.items()
        )
        if all(text is not None for _name, text in keys):
            rows[suffix] = (cast("RowKeys", keys), oid, value)
    return rows


def _supply_rows(walked: dict[str, dict[str, Value]]) -> dict[str, dict[str, Value]]:
    rows: dict[str, dict[str, Value]] = {}
    for column in pm.SUPPLY_COLUMNS:
        for oid, value in walked[column].items():
            rows.setdefault(oid[len(column) + 1 :], {})[column] = value
    return {suffix: row for suffix, row in rows.items() if pm.SUPPLY_DESCRIPTION in row}


def _oid_text(value: Value | None) -> str | None:
    return value if isinstance(value, str) else None


def _key_text(value: Value | None) -> str | None:
    if isinstance(value, int):
        return str(value)  # a type-code column (Ricoh)
    return text_of(value)
