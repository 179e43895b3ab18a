"""Supplies for the daemon, the CLI and the API: the policy from settings, the alert job, the replenishment list."""

from __future__ import annotations

from datetime import datetime

import structlog

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
    "alert_raised_at",
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
    return raised


def _days(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def replenishment_rows(statuses: list[SupplyStatus]) -> list[list[str]]:
    """The cartridges to ship (due now, or an open alert), in REPLENISHMENT_HEADER's order, by customer and site."""
    due = sorted(
        (s for s in statuses if s.due or s.alert_raised_at is not None),
        key=lambda s: (s.customer or "", s.site, s.device, s.supply),
    )
    return [
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
            s.alert_raised_at.isoformat() if s.alert_raised_at else "",
        ]
        for s in due
    ]


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
