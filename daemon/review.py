"""Review decisions on anomalies, for the CLI and the API alike: acknowledge, resolve (with a manual reading)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Final

from collectors import wire
from collectors.base import DeviceInfo, Meter, MeterValue, Reading, Unit
from collectors.mqtt.connection import reading_topic
from daemon.errors import MeterdError
from daemon.metrics import Metrics
from daemon.pipeline import Pipeline
from daemon.storage.anomalies import ACKNOWLEDGED, RESOLVED, AnomalyRecord, AnomalyStore
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
    return await anomalies.set_status(anomaly_id, status=ACKNOWLEDGED, resolution=None, actor=actor, reason=reason,
                                      now=now)  # fmt: skip


async def resolve(
    store: Store, anomaly_id: int, *, action: str, value: int | None, actor: str, reason: str, now: datetime
) -> AnomalyRecord:
    """Decide (one of ACTIONS); ``replace`` stores ``value`` as a manual reading just after the suspect one.

    Raises:
        AnomalyNotFoundError; ReviewError: resolved already, an unknown action, a value without replace or the reverse.
    """
    if action not in ACTIONS:
        raise ReviewError(f"action {action!r}: one of {', '.join(ACTIONS)}")
    anomalies = AnomalyStore(store)
    anomaly = await _unresolved(anomalies, anomaly_id)
    detail: dict[str, Any] = {}
    if action == "replace":
        detail = await _replace(store, anomaly, value, actor=actor)
    elif value is not None:
        raise ReviewError("a value goes with the replace action only")
    elif action == "approve" and anomaly.kind == "moved" and "to_site" in anomaly.evidence:
        detail = await _move(store, anomaly)
    return await anomalies.set_status(anomaly_id, status=RESOLVED, resolution=ACTIONS[action], actor=actor,
                                      reason=reason, now=now, detail=detail)  # fmt: skip


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
