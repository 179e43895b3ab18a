"""Device faults for the daemon, the CLI and the API: record what each poll saw, raise service alerts, list them.

Status travels no further than the store of the box that polled: reading-v1 (what an agent sends a
hub) has no place for it and a hub rejects unknown fields, so an agent's faults are served by the
agent's own API, CLI and /metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

import structlog

from collectors.snmp.mapping import DeviceReport
from daemon.kernel.clock import Clock
from daemon.services.metrics import Metrics
from daemon.settings import Settings
from daemon.storage.faults import FaultChanges, FaultRecord, FaultStore, Observed
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)

FAULT_HEADER: Final = [
    "id",
    "device",
    "customer",
    "customer_name",
    "site",
    "address",
    "model",
    "kind",
    "fault",
    "severity",
    "detail",
    "started_at",
    "ended_at",
    "open_minutes",
    "alert_raised_at",
]


class FaultTracker:
    """What the poll round calls with its reports: episodes stored, alerts raised and logged, gauges set."""

    def __init__(self, store: Store, settings: Settings, metrics: Metrics, clock: Clock) -> None:
        self._faults = FaultStore(store)
        self._settings = settings.service
        self._metrics = metrics
        self._clock = clock

    async def record(self, reports: Sequence[DeviceReport]) -> FaultChanges:
        """Store the status changes these reports show (after their readings, so their devices exist)."""
        observed = [
            Observed(r.reading.device.key, r.reading.taken_at_utc, r.status) for r in reports if r.status is not None
        ]
        changes = await self._faults.record(
            observed,
            alert_on=self._settings.alert_on,
            alert_after=timedelta(minutes=self._settings.alert_after_minutes),
            now=self._clock(),
        )
        for fault in changes.opened:
            if fault.kind != "status" or fault.code != "running":
                log.info("fault_opened", device=fault.device, site=fault.site, kind=fault.kind, fault=fault.code)
        for fault in changes.ended:
            if fault.kind != "status" or fault.code != "running":
                log.info("fault_ended", device=fault.device, site=fault.site, kind=fault.kind, fault=fault.code)
        for alert in changes.alerts:
            self._metrics.service_alerts.labels(site=alert.site).inc()
            log.warning(
                "service_alert",
                device=alert.device,
                site=alert.site,
                address=alert.address,
                model=alert.model,
                fault=alert.code,
                detail=alert.detail,
                since=alert.started_at.isoformat(),
            )
        await self.update_gauges()
        return changes

    async def update_gauges(self) -> None:
        counts = await self._faults.open_counts()
        m = self._metrics
        for gauge in (m.devices_by_status, m.faults_open, m.service_alerts_open):
            gauge.clear()  # a state nobody is in any more must read 0, not its last count
        alerts: dict[str, int] = {}
        for site, kind, code, count, alerted in counts:
            if kind == "status":
                m.devices_by_status.labels(site=site, status=code).set(count)
            else:
                # Private alert codes stay one series per vendor number space, not per code.
                fault = "vendor" if code.startswith("vendor:") else code
                m.faults_open.labels(site=site, fault=fault).inc(count)
            alerts[site] = alerts.get(site, 0) + alerted
        for site, count in alerts.items():
            m.service_alerts_open.labels(site=site).set(count)


async def faults(
    store: Store,
    *,
    open_only: bool = True,
    alerts_only: bool = False,
    device: str | None = None,
    today: date | None = None,
) -> list[FaultRecord]:
    """What `meterd service faults|alerts` and /api/v1/service/... list (customers as of ``today``)."""
    return await FaultStore(store).find(open_only=open_only, alerts_only=alerts_only, device=device, today=today)


def fault_rows(found: Sequence[FaultRecord], now: datetime) -> list[list[str]]:
    """Faults in FAULT_HEADER's order; ``open_minutes`` runs to the end, or to ``now`` while open."""
    return [
        [
            str(f.id),
            f.device,
            f.customer or "",
            f.customer_name or "",
            f.site,
            f.address or "",
            f.model or "",
            f.kind,
            f.code,
            f.severity or "",
            f.detail,
            f.started_at.isoformat(),
            f.ended_at.isoformat() if f.ended_at else "",
            str(int(((f.ended_at or now) - f.started_at).total_seconds() // 60)),
            f.alert_raised_at.isoformat() if f.alert_raised_at else "",
        ]
        for f in found
    ]


# -- the console's Service page ----------------------------------------------------------------

ALERT: Final = "alert"  # a service alert is open: a technician is needed
PENDING: Final = "pending"  # a fault that needs a technician, not open long enough yet for its alert
INFORMATIONAL: Final = "informational"  # paper out, toner low …: the customer's to fix
SERVICE_HEADER: Final = ["section", *FAULT_HEADER, "also"]


@dataclass(frozen=True, slots=True)
class ServiceFilter:
    """Which rows the Service page and its CSV show. ``fault`` matches an alert's own fault or one folded into it."""

    customer: str | None = None  # the customer's code
    site: str | None = None
    fault: str | None = None  # a fault code: jammed, jam, noPaper …

    def keeps(self, row: ServiceRow) -> bool:
        f = row.fault
        return (
            (not self.customer or f.customer == self.customer)
            and (not self.site or f.site == self.site)
            and (not self.fault or self.fault in (f.code, *(a.code for a in row.also)))
        )


@dataclass(frozen=True, slots=True)
class ServiceRow:
    section: str  # ALERT, PENDING or INFORMATIONAL
    fault: FaultRecord
    also: tuple[FaultRecord, ...] = ()  # the device's other open service faults: the same visit (jammed and jam)
    alert_due_at: datetime | None = None  # PENDING: when its alert is raised if it is still open


@dataclass(frozen=True, slots=True)
class ServiceBoard:
    """Open service alerts, then the other open faults, each list longest open first; what the filters offer."""

    alerts: list[ServiceRow]
    others: list[ServiceRow]
    customers: list[tuple[str, str]]  # (code, name) of the customers with an open fault
    sites: list[str]
    faults: list[str]


async def service_board(store: Store, settings: Settings, now: datetime, wanted: ServiceFilter) -> ServiceBoard:
    """Which printers need a technician now, and what else is wrong: the console's Service page and its CSV."""
    found = sorted(await faults(store, today=now.date()), key=lambda f: (f.started_at, f.id))
    alert_on = set(settings.service.alert_on)
    after = timedelta(minutes=settings.service.alert_after_minutes)
    alerted = {f.device for f in found if f.alert_raised_at is not None}
    folded: dict[str, list[FaultRecord]] = defaultdict(list)
    rows = []
    for f in found:
        if f.alert_raised_at is None and f.code in alert_on and f.device in alerted:
            folded[f.device].append(f)  # the alert of its device stands for it
    for f in found:
        if f.alert_raised_at is not None:
            rows.append(ServiceRow(ALERT, f, tuple(folded[f.device])))
        elif f.code not in alert_on:
            rows.append(ServiceRow(INFORMATIONAL, f))
        elif f.device not in alerted:
            rows.append(ServiceRow(PENDING, f, alert_due_at=f.started_at + after))
    shown = [r for r in rows if wanted.keeps(r)]
    return ServiceBoard(
        alerts=[r for r in shown if r.section == ALERT],
        others=[r for r in shown if r.section != ALERT],
        customers=sorted({(f.customer, f.customer_name or f.customer) for f in found if f.customer}),
        sites=sorted({f.site for f in found}),
        faults=sorted({f.code for f in found}),
    )


def service_rows(board: ServiceBoard, now: datetime) -> list[list[str]]:
    """The board's rows in SERVICE_HEADER's order: alerts first, then the other faults."""
    shown = [*board.alerts, *board.others]
    return [
        [row.section, *cells, " ".join(a.code for a in row.also)]
        for row, cells in zip(shown, fault_rows([r.fault for r in shown], now), strict=True)
    ]
