"""The daemon's side of MQTT: settings into broker options, ingest events into metrics."""

from __future__ import annotations

from collectors.mqtt.connection import BrokerOptions, default_client_id
from collectors.mqtt.ingest import IngestOptions, MqttIngest
from daemon.metrics import Metrics
from daemon.settings import Settings


def broker_options(settings: Settings) -> BrokerOptions:
    mqtt = settings.mqtt
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
        session_expiry_s=mqtt.session_expiry_s,
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


def build_ingest(settings: Settings, metrics: Metrics) -> MqttIngest:
    mqtt = settings.mqtt
    options = IngestOptions(
        sites=tuple(mqtt.sites),
        shared_group=mqtt.shared_group,
        max_payload_bytes=mqtt.max_payload_bytes,
        batch_max=mqtt.batch_max,
        batch_wait_s=mqtt.batch_wait_ms / 1000,
        reconnect_min_s=mqtt.reconnect_min_s,
        reconnect_max_s=mqtt.reconnect_max_s,
    )
    return MqttIngest(broker_options(settings), options, IngestMetrics(metrics))
