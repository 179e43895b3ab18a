"""The anomaly job: detection on schedule, a log event and a notification per new anomaly, the gauge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime, timedelta
from typing import Any, Final

import structlog

from billing.anomalies import SEVERITY, DetectorSettings, Kind
from billing.invoicing import Book
from billing.periods import Period
from daemon.kernel.clock import Clock
from daemon.services.anomaly_detection import detect_new
from daemon.services.billing import forecast_over_allowance
from daemon.services.metrics import Metrics
from daemon.services.webhook import post_json
from daemon.settings import AnomalySettings, Settings
from daemon.storage.anomalies import AnomalyRecord, AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)

_NOTIFY_TIMEOUT_S: Final = 10.0
FORECAST_RAN: Final = "anomalies.forecast_ran_at"


def detector_settings(settings: AnomalySettings) -> DetectorSettings:
    names = DetectorSettings.__dataclass_fields__
    return DetectorSettings(**{name: getattr(settings, name) for name in names})


async def device_tuning(
    store: Store, book: Book, settings: AnomalySettings, today: date
) -> dict[str, DetectorSettings]:
    """Devices judged by knobs of their own: their site's (``[anomalies.sites]``), then their contract's over it."""
    by_contract: dict[str, dict[str, float | int]] = {}
    for contract in book.contracts:
        if not contract.detectors or contract.version_at(today) is None or (contract.ends and contract.ends <= today):
            continue
        for assignment in book.assignments_of(contract.customer):
            if (
                contract.covers(assignment.device)
                and assignment.during(Period(today, today + timedelta(days=1))) is not None
            ):
                by_contract[assignment.device] = contract.detectors
    if not settings.sites and not by_contract:
        return {}
    resolved: dict[tuple[tuple[str, float | int], ...], DetectorSettings] = {}
    tuned = {}
    for device in await store.devices():
        knobs = settings.sites.get(device.site, {}) | by_contract.get(device.key, {})
        if knobs:
            key = tuple(sorted(knobs.items()))
            if key not in resolved:  # a fleet has few distinct tunings: validate each once
                resolved[key] = detector_settings(settings.tuned(knobs, where=f"device {device.key}"))
            tuned[device.key] = resolved[key]
    return tuned


async def refresh_gauge(anomalies: AnomalyStore, metrics: Metrics) -> None:
    counts = await anomalies.open_counts()
    for kind in Kind:
        severity = SEVERITY[kind].value
        metrics.anomalies_open.labels(kind=kind.value, severity=severity).set(counts.get((kind.value, severity), 0))


class AnomalyJob:
    def __init__(self, settings: Settings, store: Store, metrics: Metrics, clock: Clock) -> None:
        self._settings = settings
        self._detectors = detector_settings(settings.anomalies)
        self._store = store
        self._anomalies = AnomalyStore(store)
        self._metrics = metrics
        self._clock = clock

    async def run(self) -> None:
        await self.detect()

    async def detect(self) -> list[AnomalyRecord]:
        """Detect, forecast, notify; returns the anomalies it created."""
        now = self._clock()
        book = await BillingStore(self._store).book()  # once a run: the knobs and the forecast both need it
        tuned = await device_tuning(self._store, book, self._settings.anomalies, now.date())
        created = await detect_new(
            self._anomalies,
            self._detectors,
            now=now,
            poll_interval_s=self._settings.scheduler.poll_interval_s,
            tuned=tuned,
        )
        created += await self._forecast(now, book, tuned)
        for anomaly in created:
            log.warning(
                "anomaly_detected",
                anomaly=anomaly.id,
                kind=anomaly.kind,
                severity=anomaly.severity,
                device=anomaly.device,
                meter=anomaly.meter or None,
                holds_readings=anomaly.holds,
            )
            await self._notify(anomaly)
        await refresh_gauge(self._anomalies, self._metrics)
        return created

    async def _forecast(self, now: datetime, book: Book, tuned: Mapping[str, DetectorSettings]) -> list[AnomalyRecord]:
        """Usage growing past the contract, every ``allowance_interval_h``: it reads whole cycles, so not every run."""
        await self._anomalies.resolve_closed_cycles(now=now)
        raw = await self._anomalies.get_state(FORECAST_RAN)
        if raw and now - datetime.fromisoformat(raw) < timedelta(hours=self._settings.anomalies.allowance_interval_h):
            return []
        findings = await forecast_over_allowance(
            self._store, book, self._settings, self._detectors, now=now, tuned=tuned
        )
        created = await self._anomalies.record(findings, now=now)
        await self._anomalies.set_state(FORECAST_RAN, now.isoformat())
        return created

    async def _notify(self, anomaly: AnomalyRecord) -> None:
        hooks = self._settings.anomalies
        if not hooks.notify_url and not hooks.notify_command:
            return
        payload = json.dumps(asdict(anomaly), default=str).encode()
        for attempt in range(1, hooks.notify_attempts + 1):
            try:
                if hooks.notify_url:
                    await asyncio.to_thread(post_json, hooks.notify_url, payload, timeout_s=_NOTIFY_TIMEOUT_S)
                if hooks.notify_command:
                    await _run(hooks.notify_command, payload)
            except (OSError, RuntimeError) as err:
                if attempt == hooks.notify_attempts:
                    log.error("anomaly_notification_failed", anomaly=anomaly.id, attempts=attempt, error=str(err))  # noqa: TRY400
                    return
                await asyncio.sleep(2 ** (attempt - 1))
            else:
                self._metrics.anomaly_notifications.inc()
                return


async def _run(command: list[str], payload: bytes) -> Any:  # noqa: ANN401
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(payload), timeout=_NOTIFY_TIMEOUT_S)
    if process.returncode != 0:
        msg = f"{command[0]} exited {process.returncode}: {stderr.decode(errors='replace').strip()[:200]}"
        raise RuntimeError(msg)
