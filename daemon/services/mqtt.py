"""The daemon's side of MQTT: settings into broker options, ingest events into metrics."""

from __future__ import annotations

import uuid
from typing import Final

import structlog

from collectors import wire
from collectors.mqtt.connection import BrokerOptions, default_client_id, reading_topic
from collectors.mqtt.forward import ForwardOptions, MqttForwarder, OutboxEntry
from collectors.mqtt.ingest import IngestOptions, MqttIngest
from daemon.kernel.clock import Clock, utc_now
from daemon.kernel.reading import Reading
from daemon.services.metrics import Metrics
from daemon.settings import Settings
from daemon.storage.confirmations import StoreChains
from daemon.storage.repository import Forward, Store

log = structlog.get_logger(__name__)

_OUTBOX_WARN_FRACTION: Final = 0.8
_EPOCH_KEY: Final = "mqtt.outbox_epoch"


def broker_options(settings: Settings) -> BrokerOptions:
    mqtt = settings.mqtt
    # A group member's session outliving it keeps taking a share of the stream (Mosquitto's
    # round robin counts it), and an agent's resends can land on it round after round; the
    # agents' outboxes, not the broker's session, keep what a hub held when it went away.
    session_expiry_s = mqtt.shared_session_expiry_s if mqtt.shared_group else mqtt.session_expiry_s
    return BrokerOptions(
        host=mqtt.host,
        port=mqtt.port,
        client_id=mqtt.client_id or default_client_id(settings.role, settings.site),
        username=mqtt.username,
        password=mqtt.password_value(),
        tls=mqtt.tls,
        ca_file=str(mqtt.ca_file) if mqtt.ca_file else None,
        cert_file=str(mqtt.cert_file) if mqtt.cert_file else None,
        key_file=str(mqtt.key_file) if mqtt.key_file else None,
        keepalive_s=mqtt.keepalive_s,
        session_expiry_s=session_expiry_s,
        max_inflight=mqtt.max_inflight,
    )


class IngestMetrics:
    """IngestEvents -> Prometheus."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._up: bool | None = None

    def connected(self, *, up: bool) -> None:
        self._metrics.broker_connected.set(1 if up else 0)
        if not up and self._up is not False:
            self._metrics.broker_reconnects.inc()
        self._up = up

    def received(self, count: int) -> None:
        self._metrics.mqtt_received.inc(count)


def build_ingest(settings: Settings, metrics: Metrics, store: Store | None = None) -> MqttIngest:
    mqtt = settings.mqtt
    options = IngestOptions(
        sites=tuple(mqtt.sites),
        shared_group=mqtt.shared_group,
        max_payload_bytes=mqtt.max_payload_bytes,
        batch_max=mqtt.batch_max,
        batch_wait_s=mqtt.batch_wait_ms / 1000,
        reconnect_min_s=mqtt.reconnect_min_s,
        reconnect_max_s=mqtt.reconnect_max_s,
        resend_after_s=mqtt.resend_after_s,
    )
    # The store joins what every hub of a shared group committed (confirmations.py).
    chains = StoreChains(store) if store is not None else None
    return MqttIngest(broker_options(settings), options, IngestMetrics(metrics), chains=chains)


def forward_encoder(site: str) -> Forward:
    """An agent's reading -> its topic and reading-v1 payload."""

    def encode(reading: Reading) -> tuple[str, bytes]:
        return reading_topic(site, reading.device.key), wire.to_bytes(reading)

    return encode


class StoreOutbox:
    """The Outbox a forwarder reads: the agent's own store, with the outbox gauges kept current."""

    def __init__(self, store: Store, metrics: Metrics, clock: Clock = utc_now) -> None:
        self._store = store
        self._metrics = metrics
        self._clock = clock

    async def pending(self, *, after_id: int, limit: int) -> list[OutboxEntry]:
        rows = await self._store.outbox_pending(after_id=after_id, limit=limit)
        return [OutboxEntry(row.id, row.topic, row.payload) for row in rows]

    async def epoch(self) -> str:
        epoch = await self._store.get_state(_EPOCH_KEY)
        if epoch is None:
            epoch = uuid.uuid4().hex
            await self._store.set_state(_EPOCH_KEY, epoch)
        return epoch

    async def confirmed(self, up_to: int) -> None:
        await self._store.outbox_remove(through=up_to)
        await self.refresh_gauges()

    async def acknowledged(self, ids: list[int]) -> None:
        await self._store.outbox_remove(ids=ids)
        await self.refresh_gauges()

    async def refresh_gauges(self) -> int:
        depth, oldest = await self._store.outbox_stats()
        self._metrics.outbox_depth.set(depth)
        age = (self._clock() - oldest).total_seconds() if oldest is not None else 0.0
        self._metrics.outbox_oldest.set(max(0.0, age))
        return depth


class ForwardMetrics(IngestMetrics):
    def forwarded(self, count: int) -> None:
        self._metrics.forwarded.inc(count)


def build_forwarder(settings: Settings, metrics: Metrics) -> MqttForwarder:
    mqtt = settings.mqtt
    options = ForwardOptions(
        site=settings.site,
        confirmed_by_hub=mqtt.confirmed_by == "hub",
        max_inflight=mqtt.max_inflight,
        replay_rate=mqtt.replay_rate,
        reconnect_min_s=mqtt.reconnect_min_s,
        reconnect_max_s=mqtt.reconnect_max_s,
    )
    return MqttForwarder(broker_options(settings), options, ForwardMetrics(metrics))


async def outbox_upkeep(outbox: StoreOutbox, store: Store, settings: Settings, metrics: Metrics) -> None:
    """Keep the outbox under mqtt.outbox_max (oldest dropped, counted, logged) and say when it fills."""
    capacity = settings.mqtt.outbox_max
    metrics.outbox_capacity.set(capacity)
    dropped = await store.outbox_trim(capacity)
    if dropped:
        metrics.outbox_dropped.inc(dropped)
        log.error("outbox_full_oldest_dropped", dropped=dropped, capacity=capacity)
    depth = await outbox.refresh_gauges()
    if depth > capacity * _OUTBOX_WARN_FRACTION:
        log.warning("outbox_filling", depth=depth, capacity=capacity, hint="is the broker reachable?")
