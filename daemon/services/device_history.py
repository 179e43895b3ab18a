"""A device as people see it: daily counters and pages, breaks, latest readings and supplies; manual entry.

Each meter's history marks where its series broke (wrap, reset, swap, or a fall nothing explains yet);
manual meter entry serves a device that is not on the network.

The console's device page and any other client read one :class:`DeviceHistory`; a manual reading goes
through the reading wire format, the pipeline and the anomaly job exactly like a polled one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Final

from billing.anomalies import Kind
from billing.exchange import DEVICE_LABELS, too_long
from collectors import wire
from daemon.kernel.clock import Clock
from daemon.kernel.errors import MeterdError, PayloadError
from daemon.kernel.reading import Meter, Supply, new_reading_id
from daemon.services.anomaly_job import AnomalyJob
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import Settings
from daemon.storage.anomalies import AnomalyRecord, AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.repository import AuditNote, DeviceRecord, MeterPoint, Store

# Episodes that break a counter's series: marked on its chart where they happened.
BREAKS: Final = (Kind.WRAP.value, Kind.RESET.value, Kind.SWAP.value)
DROP: Final = "drop"  # the counter went back with no episode on record (yet)
MANUAL: Final = "manual"
MAX_ENTERED_BY: Final = 128


class ManualReadingError(MeterdError):
    """A manual reading that cannot be stored as entered; the message says what to change."""


class DeviceLabelError(MeterdError):
    """A name, location or cost centre the store cannot keep; the message says which and how long it may be."""


@dataclass(frozen=True, slots=True)
class DayPoint:
    """The counter at a day's last reading, and the pages since the day with a reading before it."""

    day: date
    value: int
    pages: int | None  # None: the first day shown, or the counter went back (a break, marked)


@dataclass(frozen=True, slots=True)
class Mark:
    day: date
    kind: str  # wrap, reset, swap, or "drop"
    anomaly_id: int | None
    status: str | None


@dataclass(frozen=True, slots=True)
class MeterHistory:
    meter: str
    days: list[DayPoint]
    marks: list[Mark]


@dataclass(frozen=True, slots=True)
class ReadingLine:
    """One reading as the readings table shows it: when, from where, each meter's value."""

    reading_id: str
    taken_at: datetime
    source: str
    values: dict[str, int]


@dataclass(frozen=True, slots=True)
class DeviceHistory:
    device: DeviceRecord
    since: date
    until: date
    meters: list[MeterHistory]
    readings: list[ReadingLine]  # newest first
    supplies: tuple[Supply, ...]  # as the latest reading carrying supplies said
    supplies_at: datetime | None
    open_anomalies: list[AnomalyRecord] = field(default_factory=list)


def daily(points: list[MeterPoint]) -> list[DayPoint]:
    """One meter's points (oldest first) as the last value of each day and the pages since the day before."""
    last_of_day: dict[date, int] = {}
    for point in points:
        last_of_day[point.taken_at.date()] = point.value
    days: list[DayPoint] = []
    previous: int | None = None
    for day, value in last_of_day.items():
        pages = None if previous is None or value < previous else value - previous
        days.append(DayPoint(day, value, pages))
        previous = value
    return days


def breaks(days: list[DayPoint], episodes: list[AnomalyRecord]) -> list[Mark]:
    """The episodes that broke the series in the days shown, and any fall of the counter none of them explains."""
    first, last = (days[0].day, days[-1].day) if days else (date.max, date.min)
    marks = [
        Mark(e.window_end.date(), e.kind, e.id, e.resolution or e.status)
        for e in episodes
        if first <= e.window_end.date() <= last
    ]
    explained = {m.day for m in marks}
    for before, after in pairwise(days):
        if after.value < before.value and after.day not in explained:
            marks.append(Mark(after.day, DROP, None, None))
    return sorted(marks, key=lambda m: (m.day, m.kind))


async def device_history(store: Store, key: str, *, now: datetime, days: int = 90, readings: int = 50) -> DeviceHistory:
    """``days`` of each meter's history up to ``now``, and the latest ``readings`` readings.

    Raises:
        DeviceNotFoundError.
    """
    device = await store.device(key)
    until = now + timedelta(seconds=1)
    since = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    points = await store.meter_points(key, since=since, until=until)
    by_meter: dict[str, list[MeterPoint]] = defaultdict(list)
    lines: dict[tuple[datetime, str], ReadingLine] = {}
    for point in points:
        by_meter[point.meter].append(point)
        line = lines.setdefault(
            (point.taken_at, point.reading_id), ReadingLine(point.reading_id, point.taken_at, point.source, {})
        )
        line.values[point.meter] = point.value
    anomalies = AnomalyStore(store)
    episodes = [a for a in await anomalies.find(device=key, limit=1000) if a.kind in BREAKS]
    meters = []
    for meter, series in sorted(by_meter.items()):
        shown = daily(series)
        mine = [e for e in episodes if (e.meter or Meter.TOTAL.value) == meter]
        meters.append(MeterHistory(meter, shown, breaks(shown, mine)))
    latest = await store.readings(device=key, since=device.last_seen, until=until)
    with_supplies = [r for r in latest if r.supplies]
    return DeviceHistory(
        device=device,
        since=since.date(),
        until=now.date(),
        meters=meters,
        readings=sorted(lines.values(), key=lambda line: line.taken_at, reverse=True)[:readings],
        supplies=with_supplies[-1].supplies if with_supplies else (),
        supplies_at=with_supplies[-1].taken_at if with_supplies else None,
        open_anomalies=await anomalies.find(status="unresolved", device=key, limit=100),
    )


@dataclass(frozen=True, slots=True)
class ManualOutcome:
    reading_id: str
    detected: list[AnomalyRecord]  # what the anomaly job found in it (and anything else new)


async def enter_manual_reading(
    store: Store,
    settings: Settings,
    key: str,
    *,
    meter: str,
    value: int,
    taken_at: datetime,
    entered_by: str,
    actor: str,
    clock: Clock,
) -> ManualOutcome:
    """Store a counter read off a device's panel (or a customer's e-mail) as a reading of source ``manual``.

    It is checked by the reading wire format like any reading, stored through the pipeline with an
    audit entry (``reading.manual``, who entered it for whom), then the anomaly job runs at once,
    so a value that breaks the series shows up in the review queue as any polled one would.

    Raises:
        DeviceNotFoundError; ManualReadingError: a time in the future, a meter the device never reported,
            no name of who read it, a value outside a counter's range, or a reading already at that moment.
    """
    device = await store.device(key)
    now = clock()
    if taken_at.tzinfo is None:
        raise ManualReadingError("the time of the reading needs a time zone (stored in UTC)")
    if taken_at > now:
        raise ManualReadingError(f"taken at {taken_at:%Y-%m-%d %H:%M} UTC: in the future; enter when it was read")
    who = entered_by.strip()
    if not who or len(who) > MAX_ENTERED_BY:
        raise ManualReadingError(f"who read it: a name of 1 to {MAX_ENTERED_BY} characters")
    reported = await store.device_meters(key)
    if meter not in reported:
        known = ", ".join(sorted(reported)) or "none yet"
        raise ManualReadingError(f"meter {meter!r}: device {key} reports {known}; enter one of those")
    if await store.meter_points(key, since=taken_at, until=taken_at + timedelta(microseconds=1)):
        raise ManualReadingError(
            f"device {key} has a reading at {taken_at:%Y-%m-%d %H:%M} UTC already; pick another time"
        )
    payload = {
        "schema": wire.SCHEMA,
        "id": f"{MANUAL}-{new_reading_id()}",
        "site": device.site,
        "taken_at": taken_at.isoformat(),
        "device": {"serial": key, "vendor": device.vendor, "model": device.model, "address": device.address},
        "meters": [{"meter": meter, "value": value}],
    }
    try:
        reading = wire.from_object(payload, source=MANUAL)
    except PayloadError as err:
        raise ManualReadingError(f"{err.detail}; enter the counter as a whole number of pages") from err
    note = AuditNote(
        actor,
        "reading.manual",
        f"device:{key}",
        {"reading": reading.id, "meter": meter, "value": value, "taken_at": taken_at.isoformat(), "entered_by": who},
    )
    outcome = await Pipeline(store, Metrics(), clock).emit([reading], audit=note)
    if not outcome.stored:  # stored in between by someone else: the audit entry says what was tried
        raise ManualReadingError(f"device {key} has a {meter} reading at {taken_at:%Y-%m-%d %H:%M} UTC already")
    job = AnomalyJob(settings, store, Metrics(), clock)
    return ManualOutcome(reading.id, await job.detect())


async def save_device_labels(store: Store, key: str, labels: dict[str, str], *, actor: str, now: datetime) -> bool:
    """Name, location and cost centre of a device as the office enters them (blank: none); False when unchanged.

    Raises:
        DeviceLabelError: a value longer than the store keeps; DeviceNotFoundError.
    """
    cleaned = {column: (labels.get(column) or "").strip() or None for column in DEVICE_LABELS}
    if problems := too_long(cleaned):
        column, reason = problems[0]
        raise DeviceLabelError(f"{column}: {reason}; shorten it and save again")
    return await BillingStore(store).label_device(key, cleaned, actor=actor, now=now)
