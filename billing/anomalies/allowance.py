"""Usage growing past the contract: a forecast to the end of the running usage cycle, against its allowance.

Simple enough to explain to a customer on the phone: pages used so far in the cycle, plus
the device's recent daily rate times the days left, against the pages the contract
includes (prorated by the days each device is under it, pooled where the contract pools).
A forecast beyond the allowance by ``allowance_margin`` is a finding, once per allowance
and cycle, so the dealer can call the customer before the invoice does.

Pure: :func:`allowances` reads the book, :func:`forecast_requests` says which usage to
measure (for :func:`billing.reads.period_usage`), :func:`over_allowance` judges it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

import pandas as pd

from billing.anomalies import DetectorSettings, Finding, Kind
from billing.invoicing import Book, usage_jobs
from billing.periods import CYCLE_MONTHS, Period, cycle_containing, utc_midnight
from billing.rating import prorated_included

USED: Final = "used"  # from the cycle's start (or the device's first day in it) to now
RECENT: Final = "recent"  # the last allowance_rate_days: the daily rate
REQUEST_COLUMNS: Final = ["allowance", "device", "meter", "purpose", "start", "end"]
_DAY: Final = pd.Timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Allowance:
    """Pages a contract includes for one meter in the running cycle: one device's, or a pool's."""

    customer: str
    contract: str
    meter: str
    pool: str | None
    cycle: Period
    held: dict[str, list[Period]]  # device -> its days under the contract in the cycle
    included: int

    @property
    def device(self) -> str:
        """The device the finding is filed under: the pool's first member, so it stays put all cycle."""
        return min(self.held)

    def settings(self, default: DetectorSettings, tuned: Mapping[str, DetectorSettings] | None) -> DetectorSettings:
        """The knobs this allowance is judged by: those of the device it is filed under."""
        return (tuned or {}).get(self.device, default)


def allowances(book: Book, today: date) -> list[Allowance]:
    """Every allowance (included pages > 0) of the usage cycles running on ``today``."""
    running = sorted({cycle_containing(today, cycle).end for cycle in CYCLE_MONTHS})
    found: list[Allowance] = []
    for payer in book.payers():
        for job in usage_jobs(book, payer, running):
            if today not in job.cycle:
                continue
            active = {device: sum(p.days for p in pieces) for device, pieces in job.held_days.items()}
            for terms in job.version.meters:
                if terms.included <= 0:
                    continue  # nothing included: every page is billed, there is no allowance to outgrow
                groups = [sorted(active)] if terms.pool else [[device] for device in sorted(active)]
                found.extend(
                    Allowance(
                        customer=job.customer,
                        contract=job.contract.id,
                        meter=str(terms.meter),
                        pool=terms.pool,
                        cycle=job.cycle,
                        held={d: job.held_days[d] for d in devices},
                        included=sum(prorated_included(terms, active[d], job.cycle) for d in devices),
                    )
                    for devices in groups
                )
    return found


def forecast_requests(
    watched: list[Allowance],
    now: datetime,
    settings: DetectorSettings,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> pd.DataFrame:
    """The usage to measure: each device's pages so far in each piece of the cycle it holds, and its recent rate."""
    moment = pd.Timestamp(now)
    rows: list[tuple[Any, ...]] = []
    for index, allowance in enumerate(watched):
        recent_start = moment - pd.Timedelta(days=allowance.settings(settings, tuned).allowance_rate_days)
        for device, pieces in allowance.held.items():
            rows.extend(
                (index, device, allowance.meter, USED, _utc(piece.start), min(_utc(piece.end), moment))
                for piece in pieces
                if _utc(piece.start) < moment
            )
            rows.append((index, device, allowance.meter, RECENT, recent_start, moment))
    return pd.DataFrame(rows, columns=REQUEST_COLUMNS)


def over_allowance(
    watched: list[Allowance],
    measured: pd.DataFrame,
    now: datetime,
    settings: DetectorSettings,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> list[Finding]:
    """Allowances whose forecast exceeds them by more than the margin.

    ``measured``: :func:`forecast_requests` joined with its :func:`billing.reads.period_usage`.
    """
    per_device = _device_figures(measured, watched, now, settings, tuned)
    findings = []
    for index, allowance in enumerate(watched):
        knobs = allowance.settings(settings, tuned)
        devices = per_device.get(index, {})
        used = sum(figures["used"] for figures in devices.values())
        forecast = round(sum(f["used"] + f["per_day"] * f["days_left"] for f in devices.values()))
        limit = allowance.included * (1 + knobs.allowance_margin)
        if not devices or forecast <= limit:
            continue
        end = date.fromordinal(allowance.cycle.end.toordinal() - 1)
        subject = f"pool {allowance.pool}" if allowance.pool else allowance.device
        summary = (
            f"{allowance.meter} of {subject}: {forecast:,} pages forecast by {end} "
            f"against {allowance.included:,} included ({used:,} used so far)"
        )
        evidence = {
            "summary": summary,
            "customer": allowance.customer,
            "contract": allowance.contract,
            "pool": allowance.pool,
            "cycle": allowance.cycle.label,
            "included": allowance.included,
            "margin": knobs.allowance_margin,
            "used": used,
            "forecast": forecast,
            "devices": {
                device: {k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}
                for device, figures in sorted(devices.items())
            },
        }
        findings.append(
            Finding(
                Kind.OVER_ALLOWANCE,
                allowance.device,
                allowance.meter,
                utc_midnight(allowance.cycle.start),
                utc_midnight(allowance.cycle.end),
                evidence,
            )
        )
    return findings


def _device_figures(
    measured: pd.DataFrame,
    watched: list[Allowance],
    now: datetime,
    settings: DetectorSettings,
    tuned: Mapping[str, DetectorSettings] | None,
) -> dict[int, dict[str, dict[str, Any]]]:
    """Per allowance and device: pages used, recent pages per day and the days it still holds in the cycle."""
    moment = pd.Timestamp(now)
    figures: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    counted_until: dict[tuple[int, str], pd.Timestamp] = {}
    for row in measured.to_dict("records"):
        index, device = int(row["allowance"]), str(row["device"])
        entry = figures[index].setdefault(device, {"used": 0, "per_day": 0.0, "days_left": 0.0, "estimated": False})
        if row["no_reads"]:
            continue
        entry["estimated"] = entry["estimated"] or bool(row["start_estimated"] or row["end_estimated"])
        if row["purpose"] == USED:
            entry["used"] += int(row["usage"])
            if pd.Timestamp(row["end"]) == moment:
                # The running piece: days left count from the read its count stops at, so pages
                # printed since a device's last answer are forecast, not lost.
                counted_until[index, device] = min(pd.Timestamp(row["end_at"]), moment)
        else:
            span_days = (pd.Timestamp(row["end_at"]) - pd.Timestamp(row["start_at"])) / _DAY
            if span_days >= watched[index].settings(settings, tuned).allowance_min_days:
                entry["per_day"] = int(row["usage"]) / span_days
    for index, allowance in enumerate(watched):
        for device, entry in figures[index].items():
            since = counted_until.get((index, device), moment)
            entry["days_left"] = sum(
                max(0.0, (_utc(piece.end) - max(_utc(piece.start), since)) / _DAY) for piece in allowance.held[device]
            )
    return figures


def _utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(utc_midnight(day))
