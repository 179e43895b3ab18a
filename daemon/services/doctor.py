"""`meterd doctor`: what a technician runs when something is wrong. A checklist, each failed line with its fix.

Every check runs even when an earlier one failed (a dead broker says nothing about the
printers), each bounded in time; nothing is changed (the write check rolls back, the
broker check uses a client id of its own and no session).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Final

import aiomqtt
from sqlalchemy import func, insert, select

from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.mapping import DeviceReport
from daemon.kernel.errors import CollectorError, MeterdError
from daemon.services.mqtt import broker_options
from daemon.services.polling import expand_targets
from daemon.settings import Settings
from daemon.storage import migrate
from daemon.storage.models import OutboxItem, ReadingRow, StateEntry
from daemon.storage.repository import Store

MIN_FREE_BYTES: Final = 500 * 1024 * 1024
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
_CHECK_TIMEOUT_S: Final = 30.0
MAX_TARGETS_PROBED: Final = 1024  # four /24s; a /16 would take minutes
FIX_CONFIG: Final = "mend the key the message names (config/README.md explains each); `meterd config check FILE`"
FIX_CLOCK: Final = "set the clock right (apt install systemd-timesyncd, or chrony) and check the time zone"
FIX_NEVER_POLLED: Final = "is the daemon running (systemctl status meterd)? the target checks below say more"
FIX_NOT_POLLING: Final = "the daemon is not polling: systemctl status meterd; journalctl -u meterd"
FIX_NTP: Final = "apt install systemd-timesyncd (or chrony): meter reads need the right time"
FIX_PRINTER: Final = "is it on and reachable from here (ping)? SNMP enabled on it? the community or v3 user right?"
FIX_SUBNET: Final = "the printers' subnet, reachable from here? `meterd discover SUBNET` lists what answers"
FIX_LOGIN: Final = "check mqtt.username and the password (mqtt.password_file, or METERD_MQTT__PASSWORD in meterd.env)"
FIX_BROKER: Final = "check mqtt.host and mqtt.port, the firewall, and for TLS mqtt.ca_file"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool | None  # None: could not tell (not a failure)
    detail: str
    fix: str = ""


async def diagnose(settings: Settings, config_file: str, *, now: datetime) -> list[Check]:
    """Every check, in the order a technician would go."""
    checks = [Check("configuration", ok=True, detail=f"{config_file} is valid")]
    store_checks: list[Callable[[Store], Awaitable[Check]]] = [
        _writable,
        lambda store: _clock(store, now),
        lambda store: _last_poll(store, settings, now),
    ]
    if settings.role == "agent":
        store_checks.append(lambda store: _outbox(store, now))
    try:
        async with Store.open(settings.database_url, upgrade=False) as store:
            checks.append(await _bounded(_migrated(store), "store schema"))
            if checks[-1].ok:  # the other store checks read tables an old schema may not have
                checks.extend([await _bounded(check(store), "store") for check in store_checks])
    except MeterdError as err:
        checks.append(
            Check(
                "store",
                ok=False,
                detail=str(err),
                fix="see the message; storage.url (or --db) and state_dir must point at a store meterd can open",
            )
        )
    checks.append(_disk(settings))
    checks.append(await _bounded(_ntp(), "clock sync"))
    checks += await _targets(settings)
    if settings.role in {"agent", "hub"}:
        checks.append(await _bounded(_broker(settings), "broker"))
    return checks


def render(checks: list[Check], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(check) for check in checks], indent=2)
    marks = {True: "✓", False: "✗", None: "?"}
    lines = []
    for check in checks:
        lines.append(f"{marks[check.ok]} {check.name}: {check.detail}")
        if check.ok is False and check.fix:
            lines.append(f"    fix: {check.fix}")
    failed = sum(check.ok is False for check in checks)
    lines.append(f"{len(checks) - failed} of {len(checks)} fine" + (f", {failed} to fix" if failed else ""))
    return "\n".join(lines)


async def _bounded(check: Awaitable[Check], name: str) -> Check:
    try:
        async with asyncio.timeout(_CHECK_TIMEOUT_S):
            return await check
    except TimeoutError:
        return Check(name, ok=False, detail=f"no answer within {_CHECK_TIMEOUT_S:.0f} s", fix="see what it waits for")
    except MeterdError as err:
        return Check(name, ok=False, detail=str(err))


async def _migrated(store: Store) -> Check:
    current, head = (
        await store.guard(migrate.current_revision(store.engine), "read the schema"),
        migrate.head_revision(),
    )
    if current == head:
        return Check("store schema", ok=True, detail=f"{store.url_for_humans} at revision {head}")
    return Check(
        "store schema",
        ok=False,
        detail=f"at revision {current or 'none'}, this meterd needs {head}",
        fix="run `meterd db upgrade` (the daemon also migrates when it starts)",
    )


async def _writable(store: Store) -> Check:
    async def _try() -> None:
        async with store.engine.connect() as conn:
            transaction = await conn.begin()
            await conn.execute(insert(StateEntry).values(key="doctor.write-check", value="x"))
            await transaction.rollback()

    try:
        await store.guard(_try(), "write a test row")
    except MeterdError as err:
        return Check(
            "store writable",
            ok=False,
            detail=str(err),
            fix="give the meterd user write access to the store (and its directory, for SQLite)",
        )
    return Check("store writable", ok=True, detail="a test write went through (and was rolled back)")


async def _clock(store: Store, now: datetime) -> Check:
    async def _newest() -> datetime | None:
        async with store.engine.connect() as conn:
            return (await conn.execute(select(func.max(ReadingRow.taken_at)))).scalar_one_or_none()

    newest = await store.guard(_newest(), "read the newest reading")
    if newest is not None and newest - now > MAX_CLOCK_SKEW:
        return Check(
            "clock", ok=False, detail=f"readings are stamped {newest - now} ahead of this box's clock", fix=FIX_CLOCK
        )
    return Check("clock", ok=True, detail=f"{now:%Y-%m-%d %H:%M:%S} UTC, no reading stamped in the future")


async def _last_poll(store: Store, settings: Settings, now: datetime) -> Check:
    async def _latest() -> datetime | None:
        async with store.engine.connect() as conn:
            stmt = select(func.max(ReadingRow.received_at)).where(ReadingRow.source == "snmp")
            return (await conn.execute(stmt)).scalar_one_or_none()

    latest = await store.guard(_latest(), "read the last poll")
    if not settings.snmp.targets:
        return Check("last poll", ok=None, detail="no snmp.targets configured: this box does not poll")
    if latest is None:
        return Check("last poll", ok=False, detail="no printer has been read yet", fix=FIX_NEVER_POLLED)
    age = now - latest
    late = age > timedelta(seconds=3 * settings.scheduler.poll_interval_s)
    return Check(
        "last poll", ok=not late, detail=f"last reading received {_ago(age)} ago", fix=FIX_NOT_POLLING if late else ""
    )


async def _outbox(store: Store, now: datetime) -> Check:
    async def _oldest() -> tuple[int, datetime | None]:
        async with store.engine.connect() as conn:
            row = (await conn.execute(select(func.count(), func.min(OutboxItem.created_at)))).one()
            return int(row[0]), row[1]

    depth, oldest = await store.guard(_oldest(), "read the outbox")
    if depth == 0 or oldest is None:
        return Check("forwarding", ok=True, detail="the outbox is empty: every reading reached the broker")
    age = now - oldest
    stuck = age > timedelta(hours=1)
    return Check(
        "forwarding",
        ok=not stuck,
        detail=f"{depth} reading(s) waiting, the oldest for {_ago(age)}",
        fix="the broker check below says why they do not leave" if stuck else "",
    )


def _disk(settings: Settings) -> Check:
    where = settings.state_dir if settings.state_dir.exists() else settings.state_dir.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError as err:
        return Check("disk", ok=False, detail=f"cannot read {where}: {err.strerror}", fix="create state_dir")
    ok = free >= MIN_FREE_BYTES
    return Check(
        "disk",
        ok=ok,
        detail=f"{free / 2**30:.1f} GiB free under {where}",
        fix="free space: the store and the outbox (a week offline) need it" if not ok else "",
    )


async def _ntp() -> Check:
    timedatectl = shutil.which("timedatectl")
    if timedatectl is None:
        return Check("clock sync", ok=None, detail="cannot tell: no timedatectl on this box")
    done = await asyncio.to_thread(
        subprocess.run,
        [timedatectl, "show", "-p", "NTPSynchronized", "--value"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    answer = done.stdout.strip()
    if answer not in {"yes", "no"}:
        return Check("clock sync", ok=None, detail="cannot tell: timedatectl gave no answer (no systemd here?)")
    return Check(
        "clock sync", ok=answer == "yes", detail=f"NTP synchronised: {answer}", fix=FIX_NTP if answer == "no" else ""
    )


async def _targets(settings: Settings) -> list[Check]:
    planned = expand_targets(settings)
    if not planned:
        return []
    probed = planned[:MAX_TARGETS_PROBED]
    async with SnmpCollector(site=settings.site) as collector:
        results = await poll_many(collector, [p.target for p in probed], concurrency=settings.snmp.max_concurrency)
    # A listed host gets a line whatever it says; of a range only what answered does, and the range one line.
    checks = [
        _target_check(p.target, result)
        for p, result in zip(probed, results, strict=True)
        if p.subnet is None or isinstance(result, DeviceReport)
    ]
    for subnet in dict.fromkeys(p.subnet for p in probed if p.subnet):
        answers = [r for p, r in zip(probed, results, strict=True) if p.subnet == subnet]
        found = sum(isinstance(r, DeviceReport) for r in answers)
        checks.append(
            Check(
                f"subnet {subnet}",
                ok=found > 0,
                detail=f"{found} of {len(answers)} addresses answered",
                fix="" if found else FIX_SUBNET,
            )
        )
    if len(planned) > len(probed):
        checks.append(Check("printers", ok=None, detail=f"{len(probed)} of {len(planned)} targets probed"))
    return checks


def _target_check(target: SnmpTarget, result: DeviceReport | CollectorError) -> Check:
    name = f"printer {target.host}:{target.port}"
    if isinstance(result, CollectorError):
        return Check(name, ok=False, detail=result.message, fix=FIX_PRINTER)
    device = result.reading.device
    meters = ", ".join(f"{m.meter.value} {m.value}" for m in result.reading.meters[:4])
    return Check(
        name,
        ok=True,
        detail=f"{device.vendor or '?'} {device.model or ''} serial {device.key}, profile {result.profile}: {meters}",
    )


async def _broker(settings: Settings) -> Check:
    options = broker_options(settings)
    # A client id of its own and no session: the running daemon's session must not be taken over.
    probe = replace(options, client_id=f"{options.client_id}-doctor", session_expiry_s=0)
    where = f"{options.host}:{options.port}" + (" (TLS)" if options.tls else "")
    try:
        async with probe.client():
            pass
    except aiomqtt.MqttCodeError as err:
        return Check("broker", ok=False, detail=f"{where} refused the login: {err}", fix=FIX_LOGIN)
    except aiomqtt.MqttError as err:
        return Check("broker", ok=False, detail=f"{where} cannot be reached: {err}", fix=FIX_BROKER)
    return Check("broker", ok=True, detail=f"{where} accepted the login")


def _ago(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds < 120:  # noqa: PLR2004 - two minutes
        return f"{seconds} s"
    if seconds < 7200:  # noqa: PLR2004 - two hours
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def exit_code(checks: list[Check]) -> int:
    return 1 if any(check.ok is False for check in checks) else 0
