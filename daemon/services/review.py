"""Review on anomalies, for the CLI and the API alike: the queue, acknowledge (one, or a kind on a device), resolve."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from billing.invoicing import Book
from collectors import wire
from collectors.mqtt.connection import reading_topic
from daemon.kernel.errors import MeterdError
from daemon.kernel.reading import DeviceInfo, Meter, MeterValue, Reading, Unit
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.storage.anomalies import ACKNOWLEDGED, OPEN, RESOLVED, RESTART_VALUE, AnomalyRecord, AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store

ACTIONS: Final = {
    "approve": "approved",  # the readings are right as they are
    "reset": "reset",  # a counter reset: usage starts a new segment there
    "swap": "swap",  # another device: usage starts a new segment there
    "replace": "replaced",  # a manual reading replaces the suspect one, which stays out for good
    "dismiss": "dismissed",  # a false alarm
}


class ReviewError(MeterdError):
    """A review action that cannot be done as asked."""


async def acknowledge(store: Store, anomaly_id: int, *, actor: str, reason: str, now: datetime) -> AnomalyRecord:
    """Someone is looking at it (written to the audit log).

    Raises:
        AnomalyNotFoundError; ReviewError: it is resolved already.
    """
    anomalies = AnomalyStore(store)
    await _unresolved(anomalies, anomaly_id)
    return await anomalies.set_status(
        anomaly_id, status=ACKNOWLEDGED, resolution=None, actor=actor, reason=reason, now=now
    )


async def acknowledge_kind(
    store: Store, device: str, kind: str, *, actor: str, reason: str, now: datetime
) -> list[AnomalyRecord]:
    """Acknowledge every open anomaly of one kind on one device (each written to the audit log)."""
    anomalies = AnomalyStore(store)
    found = await anomalies.find(
        status=OPEN, kind=kind, device=device, limit=await anomalies.count(status=OPEN, kind=kind, device=device) or 1
    )
    return [await acknowledge(store, a.id, actor=actor, reason=reason, now=now) for a in found]


@dataclass(frozen=True, slots=True)
class QueueItem:
    """An unresolved anomaly as a clerk works it: whose it is and what it holds back."""

    anomaly: AnomalyRecord
    customer: str | None  # who held the device when it began; None: no one on the books
    pages_held: int
    at_stake: Decimal | None  # pages held x the device's page price under its contract; None: no price known
    currency: str | None


async def review_queue(store: Store, *, kind: str | None = None, device: str | None = None) -> list[QueueItem]:
    """Unresolved anomalies grouped by customer and device, the group with most money at stake first.

    Money at stake is the pages the held readings carry times the page price (the first
    tier of the meter's terms) of the contract the device was under when the episode began.
    Within a group, the item with most at stake comes first.
    """
    anomalies = AnomalyStore(store)
    matching = await anomalies.count(status="unresolved", kind=kind, device=device)
    found = await anomalies.find(status="unresolved", kind=kind, device=device, limit=max(matching, 1))
    pages = await anomalies.pages_held(found)
    book = await BillingStore(store).book()
    held_by: dict[str, list[tuple[date, date | None, str]]] = defaultdict(list)
    for assignment in book.assignments:
        held_by[assignment.device].append((assignment.start, assignment.end, assignment.customer))
    items = []
    for anomaly in found:
        day = anomaly.window_start.date()
        customer = next(
            (c for start, end, c in held_by[anomaly.device] if start <= day and (end is None or day < end)), None
        )
        price, currency = _page_price(book, customer, anomaly, day) if customer else (None, None)
        held = pages.get(anomaly.id, 0)
        items.append(QueueItem(anomaly, customer, held, None if price is None else held * price, currency))
    at_stake: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for item in items:
        at_stake[(item.customer or "", item.anomaly.device)] += item.at_stake or Decimal(0)

    def order(item: QueueItem) -> tuple[Any, ...]:
        group = (item.customer or "", item.anomaly.device)
        return (-at_stake[group], *group, -(item.at_stake or Decimal(0)), -item.pages_held, item.anomaly.id)

    return sorted(items, key=order)


def _page_price(book: Book, customer: str, anomaly: AnomalyRecord, day: date) -> tuple[Decimal | None, str | None]:
    for contract in book.contracts_of(customer):
        version = contract.version_at(day)
        if version is None or not contract.covers(anomaly.device) or (contract.ends and contract.ends <= day):
            continue
        terms = next((t for t in version.meters if t.meter.value == (anomaly.meter or "total")), None)
        if terms is not None:
            return terms.tiers[0].price, contract.currency
    return None, None


async def resolve(
    store: Store, anomaly_id: int, *, action: str, value: int | None, actor: str, reason: str, now: datetime
) -> AnomalyRecord:
    """Decide (one of ACTIONS), keeping ``value`` where the action takes one.

    ``replace`` stores it as a manual reading just after the suspect one; ``reset`` keeps it as
    the value the counter restarted from (default 0), which billing counts on from.

    Raises:
        AnomalyNotFoundError; ReviewError: resolved already, an unknown action, a value with another action,
            replace without one.
    """
    if action not in ACTIONS:
        raise ReviewError(f"action {action!r}: one of {', '.join(ACTIONS)}")
    anomalies = AnomalyStore(store)
    anomaly = await _unresolved(anomalies, anomaly_id)
    detail: dict[str, Any] = {}
    evidence: dict[str, Any] = {}
    if action == "replace":
        detail = await _replace(store, anomaly, value, actor=actor)
    elif action == "reset":
        # Billing counts the pages after a confirmed reset from this value (0: the counter restarted from zero).
        evidence = detail = {RESTART_VALUE: value or 0}
    elif value is not None:
        raise ReviewError("a value goes with the replace action (the right reading) or reset (where it restarted)")
    elif action == "approve" and anomaly.kind == "moved" and "to_site" in anomaly.evidence:
        detail = await _move(store, anomaly)
    return await anomalies.set_status(
        anomaly_id,
        status=RESOLVED,
        resolution=ACTIONS[action],
        actor=actor,
        reason=reason,
        now=now,
        detail=detail,
        evidence=evidence,
    )


async def dismiss_kind(
    store: Store, device: str, kind: str, *, actor: str, reason: str, now: datetime
) -> list[AnomalyRecord]:
    """Dismiss every unresolved anomaly of one kind on one device as false alarms (each audited, one reason).

    Raises:
        ReviewError: none of that kind is unresolved on that device (a stale page, or someone was quicker).
    """
    anomalies = AnomalyStore(store)
    matching = await anomalies.count(status="unresolved", kind=kind, device=device)
    found = await anomalies.find(status="unresolved", kind=kind, device=device, limit=max(matching, 1))
    if not found:
        raise ReviewError(f"no unresolved {kind} anomaly on {device}; reload the queue")
    return [
        await resolve(store, a.id, action="dismiss", value=None, actor=actor, reason=reason, now=now) for a in found
    ]


async def _move(store: Store, anomaly: AnomalyRecord) -> dict[str, Any]:
    """An approved move: the device goes to its new site, and what it sent from there is stored.

    The ingest held those readings back as ``site_changed`` dead letters.
    """
    site = str(anomaly.evidence["to_site"])
    held = await store.move_device(
        anomaly.device, site=site, reason="site_changed", origin=reading_topic(site, anomaly.device)
    )
    readings = [wire.decode(letter.raw, source=letter.source) for letter in held]
    outcome = await Pipeline(store, Metrics()).emit(readings)
    return {"moved_to": site, "readings_released": len(readings), "stored": outcome.stored}


async def _unresolved(anomalies: AnomalyStore, anomaly_id: int) -> AnomalyRecord:
    anomaly = await anomalies.get(anomaly_id)
    if anomaly.status == RESOLVED:
        raise ReviewError(f"anomaly {anomaly_id} is already resolved ({anomaly.resolution}) by {anomaly.resolved_by}")
    return anomaly


async def _replace(store: Store, anomaly: AnomalyRecord, value: int | None, *, actor: str) -> dict[str, Any]:
    """Store the manual reading that replaces the suspect one (just after it, so both are kept)."""
    if value is None:
        raise ReviewError("replace needs a value: the counter value the device should have shown")
    readings = await store.readings(
        device=anomaly.device, since=anomaly.window_end, until=anomaly.window_end + timedelta(seconds=1)
    )
    suspect = next((r for r in readings if r.id in anomaly.evidence.get("readings", [])), None)
    if suspect is None:
        raise ReviewError(f"the suspect reading of anomaly {anomaly.id} is not in the store")
    meter = Meter(anomaly.meter or "total")
    unit = next((m.unit for m in suspect.meters if m.meter == meter), Unit.IMPRESSIONS)
    manual = Reading(
        site=suspect.site,
        taken_at=suspect.taken_at + timedelta(seconds=1),
        device=DeviceInfo(
            key=suspect.device.key,
            vendor=suspect.device.vendor,
            model=suspect.device.model,
            address=suspect.device.address,
        ),
        meters=(MeterValue(meter, value, unit),),
        id=f"manual-{uuid.uuid4()}",
        source="manual",
    )
    await Pipeline(store, Metrics()).emit([manual])
    return {"replaced_reading": suspect.id, "manual_reading": manual.id, "value": value, "entered_by": actor}
