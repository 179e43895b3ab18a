"""One place that turns [mqtt] settings into an aiomqtt client, and the reconnect back-off."""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from daemon.kernel.errors import raise_if_cancelling

log = structlog.get_logger(__name__)

TOPIC_ROOT: Final = "meterd/v1"


def reading_topic(site: str, device_key: str) -> str:
    """``meterd/v1/<site>/<device-key>/reading``; MQTT wildcards and separators in a key are escaped."""
    safe_key = device_key.replace("/", "%2F").replace("+", "%2B").replace("#", "%23")
    return f"{TOPIC_ROOT}/{site}/{safe_key}/reading"


@dataclass(frozen=True, slots=True)
class BrokerOptions:
    """What a client needs to reach the broker; built from MqttSettings by the daemon."""

    host: str
    port: int
    client_id: str
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 7 * 86_400
    max_inflight: int = 1000

    def client(self) -> aiomqtt.Client:
        """A persistent-session MQTT 5 client: the broker keeps subscriptions and queued QoS 1 messages."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.session_expiry_s
        client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=self.client_id,
            username=self.username,
            password=self.password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=properties,
            keepalive=self.keepalive_s,
            max_inflight_messages=self.max_inflight,
            tls_context=self._tls_context(),
        )
        # aiomqtt warns past 100 unacknowledged publishes; up to max_inflight is the plan here.
        client.pending_calls_threshold = self.max_inflight + 1
        return client

    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def default_client_id(role: str, site: str) -> str:
    return f"meterd-{role}-{site}-{socket.gethostname()}"


class Backoff:
    """Capped exponential back-off with full jitter (aiomqtt has none built in)."""

    def __init__(self, minimum_s: float, maximum_s: float) -> None:
        self._minimum = minimum_s
        self._maximum = maximum_s
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._maximum, self._minimum * 2**self._attempt)
        self._attempt += 1
        return random.uniform(self._minimum / 2, ceiling)  # noqa: S311 - jitter, not security

    def reset(self) -> None:
        self._attempt = 0


class ConnectionEvents(Protocol):
    """What a broker client reports about its connection (the daemon turns it into metrics)."""

    def connected(self, *, up: bool) -> None: ...


async def stay_connected(
    broker: BrokerOptions,
    events: ConnectionEvents,
    backoff: Backoff,
    session: Callable[[aiomqtt.Client], Awaitable[None]],
    *,
    monotonic: Callable[[], float] = time.monotonic,
    manual_ack: bool = False,
) -> None:
    """Run ``session`` on a connected client for ever, reconnecting with back-off.

    An outage is logged once when it starts and once when it ends. A session that
    returns is simply started again on a fresh connection.
    """
    outage_started: float | None = None
    while True:
        try:
            client = broker.client()
            if manual_ack:
                # aiomqtt has no manual-ack switch yet (empicano/aiomqtt#345); paho-mqtt 2 does.
                client._client.manual_ack_set(on=True)  # noqa: SLF001
            async with client:
                events.connected(up=True)
                if outage_started is not None:
                    log.info("broker_reconnected", outage_s=round(monotonic() - outage_started, 1))
                    outage_started = None
                backoff.reset()
                await session(client)
        except* aiomqtt.MqttError as errors:
            raise_if_cancelling()  # a stop that broke the connection is not an outage to wait out
            events.connected(up=False)
            if outage_started is None:
                outage_started = monotonic()
                where = f"{broker.host}:{broker.port}"
                log.warning("broker_unreachable", broker=where, error=str(errors.exceptions[0]))
            await asyncio.sleep(backoff.next_delay())
