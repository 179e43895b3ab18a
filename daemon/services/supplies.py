"""Supplies for the daemon, the CLI and the API: the policy from settings, the alert job, the replenishment list."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage

import structlog

from billing.supplies import Yield
from daemon.services.mail import outbox
from daemon.services.webhook import post_json
from daemon.settings import Settings
from daemon.storage.repository import Store
from daemon.storage.supplies import SupplyPolicy, SupplyStatus, SupplyStore

log = structlog.get_logger(__name__)

REPLENISHMENT_HEADER = [
    "device",
    "customer",
    "customer_name",
    "site",
    "address",
    "model",
    "supply",
    "part_number",
    "level",
    "empty_on",
    "plus_minus_days",
    "days_left",
    "alert_raised_at",
    "last_yield_pages",
    "nominal_yield",
    "short_yield",
]
FORECAST_HEADER = [
    "device",
    "site",
    "supply",
    "level",
    "pages_per_day",
    "days_left",
    "empty_on",
    "plus_minus_days",
    "cartridge_since",
    "due",
    "basis",
]


def supply_policy(settings: Settings) -> SupplyPolicy:
    s = settings.supplies
    sites = {
        name: (own.get("lead_days", s.lead_days), own.get("low_percent", s.low_percent))
        for name, own in s.sites.items()
    }
    return SupplyPolicy(
        lead_days=s.lead_days,
        low_percent=s.low_percent,
        history_days=s.history_days,
        short_yield=s.short_yield,
        yields=dict(s.yields),
        sites=sites,
    )


async def refresh_supply_alerts(store: Store, settings: Settings, now: datetime) -> list[SupplyStatus]:
    """The job: raise the alerts that are due (one per cartridge), log each, close the replaced ones."""
    raised = await SupplyStore(store).refresh_alerts(supply_policy(settings), now)
    for status in raised:
        log.info(
            "supply_due",
            device=status.device,
            site=status.site,
            supply=status.supply,
            part_number=status.part_number,
            level=status.forecast.level,
            empty_on=str(status.forecast.empty_on) if status.forecast.empty_on else None,
        )
    if raised:
        await tell_the_desk(store, settings, raised, now)
    return raised


async def tell_the_desk(store: Store, settings: Settings, raised: list[SupplyStatus], now: datetime) -> None:
    """One message for the alerts a run raised, to the supplies desk (mail and/or webhook, both off by default).

    A run's alerts are new rows of supply_alerts (one per cartridge, ever), so a restart never
    raises them again; the mail is queued under a key made of those alerts, so a retried run
    queues it once. Sent after the alerts are stored: a crash in between loses the message, it
    never repeats one (the list in the console and the API still has every cartridge).
    """
    desk = settings.supplies
    if not raised or not (desk.desk_mail_to or desk.desk_webhook_url):
        return
    rows = replenishment_rows(replenishment(raised, now.date(), ReplenishmentFilter()))
    key = hashlib.sha256(
        "\n".join(f"{s.device}|{s.supply}|{s.cartridge_since.isoformat()}" for s in raised).encode()
    ).hexdigest()[:40]
    if desk.desk_mail_to:
        await outbox.queue(
            store, settings, _desk_mail(desk.desk_mail_to, rows), key=f"supplies:{key}", kind="supplies", now=now
        )
    if desk.desk_webhook_url:
        payload = json.dumps(
            {
                "event": "supplies_due",
                "at": now.isoformat(),
                "cartridges": [dict(zip(REPLENISHMENT_HEADER, r, strict=True)) for r in rows],
            }
        ).encode()
        try:
            await asyncio.to_thread(post_json, desk.desk_webhook_url, payload)
        except (OSError, RuntimeError) as err:
            # Not retried: the alerts stay open and listed; the desk's hook is told of the next run's.
            log.warning("supplies_desk_webhook_failed", url=desk.desk_webhook_url, error=str(err), cartridges=len(rows))
            return
        log.info("supplies_desk_told", url=desk.desk_webhook_url, cartridges=len(rows))


# What the desk reads per cartridge, in the mail's order (the columns of the replenishment list it ships from).
_DESK_COLUMNS = ("device", "customer_name", "site", "address", "supply", "part_number", "empty_on", "plus_minus_days")


def _desk_mail(to: list[str], rows: list[list[str]]) -> EmailMessage:
    message = EmailMessage()
    message["To"] = ", ".join(to)
    message["Subject"] = f"meterd: {len(rows)} cartridge(s) to ship"
    index = [REPLENISHMENT_HEADER.index(column) for column in _DESK_COLUMNS]
    lines = [" | ".join(_DESK_COLUMNS)]
    lines += [" | ".join(row[i] or "-" for i in index) for row in rows]
    message.set_content("Replenishment alerts raised just now, one line per cartridge:\n\n" + "\n".join(lines) + "\n")
    return message


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@dataclass(frozen=True, slots=True)
class ReplenishmentFilter:
    """Which cartridges a replenishment list shows (the console's, the API's and the CLI's filters).

    ``within_days``: instead of "due now or alert open", every cartridge expected empty within
    that many days (and those due by their level alone, which have no date), so a dealer can
    widen a shipment to what falls due soon after, or narrow it.
    """

    customer: str | None = None  # the customer's code
    site: str | None = None
    within_days: int | None = None

    def keeps(self, status: SupplyStatus, today: date) -> bool:
        if self.customer and status.customer != self.customer:
            return False
        if self.site and status.site != self.site:
            return False
        if self.within_days is None:
            return status.due or status.alert_raised_at is not None
        empty_on = status.forecast.empty_on
        return empty_on <= today + timedelta(days=self.within_days) if empty_on else status.due


def replenishment(statuses: list[SupplyStatus], today: date, wanted: ReplenishmentFilter) -> list[SupplyStatus]:
    """The cartridges to ship, by customer, site, device and supply."""
    return sorted(
        (s for s in statuses if wanted.keeps(s, today)), key=lambda s: (s.customer or "", s.site, s.device, s.supply)
    )


async def replenishment_list(
    store: Store, settings: Settings, now: datetime, wanted: ReplenishmentFilter
) -> list[SupplyStatus]:
    """The replenishment list as of ``now``: what the console, the API, the CLI and the supplies desk are given."""
    statuses = await SupplyStore(store).report(supply_policy(settings), now)
    return replenishment(statuses, now.date(), wanted)


def last_yield(status: SupplyStatus) -> Yield | None:
    """The supply's last finished cartridge, if one was seen from replacement to replacement."""
    return status.yields[-1] if status.yields else None


def replenishment_rows(statuses: list[SupplyStatus]) -> list[list[str]]:
    """``statuses`` (see :func:`replenishment`) in REPLENISHMENT_HEADER's order."""
    rows = []
    for s in statuses:
        previous = last_yield(s)
        rows.append(
            [
                s.device,
                s.customer or "",
                s.customer_name or "",
                s.site,
                s.address or "",
                s.model or "",
                s.supply,
                s.part_number or "",
                "" if s.forecast.level is None else str(s.forecast.level),
                str(s.forecast.empty_on or ""),
                _days(s.forecast.uncertainty_days),
                _days(s.forecast.days_left),
                s.alert_raised_at.isoformat() if s.alert_raised_at else "",
                "" if previous is None else str(previous.pages),
                "" if previous is None or previous.nominal is None else str(previous.nominal),
                "yes" if previous is not None and previous.short else "",
            ]
        )
    return rows


def forecast_rows(statuses: list[SupplyStatus]) -> list[list[str]]:
    """Every supply's forecast, in FORECAST_HEADER's order."""
    return [
        [
            s.device,
            s.site,
            s.supply,
            "" if s.forecast.level is None else str(s.forecast.level),
            _days(s.forecast.pages_per_day),
            _days(s.forecast.days_left),
            str(s.forecast.empty_on or ""),
            _days(s.forecast.uncertainty_days),
            s.cartridge_since.isoformat() if s.replaced else "",
            "yes" if s.due else "",
            s.forecast.basis,
        ]
        for s in statuses
    ]
