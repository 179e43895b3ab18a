"""The one sink every collector emits into: decode, store, count; what fails is dead-lettered."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Final

import structlog

from billing.anomalies import Finding, Kind
from collectors import wire
from collectors.mqtt.connection import reading_topic
from daemon.kernel.clock import Clock, utc_now
from daemon.kernel.errors import PayloadError, StorageError
from daemon.kernel.reading import Reading
from daemon.services.metrics import Metrics
from daemon.storage.repository import AuditNote, Forward, Store, StoreOutcome

log = structlog.get_logger(__name__)

# A dead letter keeps at most this much of the input: enough to see what was wrong.
_RAW_KEEP_BYTES: Final = 1024 * 1024


class Pipeline:
    """Turns what collectors produce into stored rows, with every outcome counted."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        clock: Clock = utc_now,
        *,
        forward: Forward | None = None,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock
        # An agent queues every new reading for the hub in the same transaction (the outbox).
        self._forward = forward
        self._on_queued = on_queued

    async def emit(self, readings: list[Reading], *, audit: AuditNote | None = None) -> StoreOutcome:
        """Store a batch of valid readings; duplicates are dropped and counted.

        ``audit``: a person's entry (manual readings), written with the readings of its one source.

        Raises:
            StorageError: the store refused the batch; nothing of that source's part was written.
        """
        by_source: dict[str, list[Reading]] = defaultdict(list)
        for reading in readings:
            by_source[reading.source].append(reading)
        stored = duplicates = values = 0
        elsewhere: tuple[Reading, ...] = ()
        for source, batch in by_source.items():
            outcome = await self._store_batch(source, batch, audit)
            stored += outcome.stored
            duplicates += outcome.duplicates
            values += outcome.values
            elsewhere += outcome.elsewhere
        return StoreOutcome(stored=stored, duplicates=duplicates, values=values, elsewhere=elsewhere)

    async def _store_batch(self, source: str, batch: list[Reading], audit: AuditNote | None) -> StoreOutcome:
        try:
            outcome = await self._store.store(batch, now=self._clock(), forward=self._forward, audit=audit)
        except StorageError:
            self._metrics.db_errors.labels(operation="store_readings").inc()
            raise
        now = self._clock()
        lag = self._metrics.ingest_lag.labels(source=source)
        for reading in batch:
            lag.observe(max(0.0, (now - reading.taken_at_utc).total_seconds()))
        self._metrics.readings_stored.labels(source=source).inc(outcome.stored)
        if self._on_queued is not None and outcome.stored:
            self._on_queued()
        self._metrics.duplicates.labels(source=source).inc(outcome.duplicates)
        self._metrics.meter_values_stored.labels(source=source).inc(outcome.values)
        if outcome.duplicates:
            log.info("duplicates_dropped", source=source, readings=len(batch), duplicates=outcome.duplicates)
        for reading in outcome.elsewhere:
            await self._hold_site_change(reading)
        return outcome

    async def _hold_site_change(self, reading: Reading) -> None:
        """A reading placing a known device at another site: kept as a dead letter, a ``moved`` item for a person.

        The device stays where it is; its readings from the new site wait in the dead letters
        until someone confirms the move.
        """
        # The anomaly store's module brings pandas (detection's frames); a device that moves is rare.
        from daemon.storage.anomalies import AnomalyStore  # noqa: PLC0415 - see above

        anomalies = AnomalyStore(self._store)
        device = reading.device.key
        to_site = reading.site
        if not await anomalies.find(status="unresolved", kind=Kind.MOVED.value, device=device, limit=1):
            moment = reading.taken_at_utc
            evidence = {"to_site": to_site, "reading": reading.id, "held_in": "dead letters (site_changed)"}
            await anomalies.record([Finding(Kind.MOVED, device, None, moment, moment, evidence)], now=self._clock())
        detail = f"device {device!r} belongs to another site; a reading from site {to_site!r} waits for a person"
        error = PayloadError("site_changed", detail)
        await self.reject(
            wire.to_bytes(reading), origin=reading_topic(to_site, device), source=reading.source, error=error
        )

    async def reject(self, raw: bytes, *, origin: str, source: str, error: PayloadError) -> None:
        """Keep input that failed validation in the dead-letter table and count it (a redelivery counts once)."""
        try:
            new = await self._store.dead_letter(
                raw=raw[:_RAW_KEEP_BYTES],
                source=source,
                origin=origin,
                reason=error.reason,
                detail=error.detail,
                now=self._clock(),
            )
        except StorageError:
            self._metrics.db_errors.labels(operation="store_dead_letter").inc()
            raise
        if not new:
            log.info("payload_rejected_again", source=source, origin=origin, reason=error.reason)
            return
        self._metrics.dead_letters.labels(source=source, reason=error.reason).inc()
        log.warning("payload_rejected", source=source, origin=origin, reason=error.reason, detail=error.detail)

    async def ingest(self, raw: bytes, *, origin: str, source: str) -> StoreOutcome | None:
        """Decode one wire-format reading and store it, or dead-letter it (None); never raises PayloadError."""
        try:
            reading = wire.decode(raw, source=source)
        except PayloadError as err:
            await self.reject(raw, origin=origin, source=source, error=err)
            return None
        return await self.emit([reading])
