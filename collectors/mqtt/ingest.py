"""Hub ingest: readings from the broker into the sink, acknowledged only once committed.

The broker keeps the session (clean start off, session expiry set), so readings queue
while the hub is away. Messages are taken in batches (by count and by time), decoded
(bad ones dead-lettered whole, with topic and reason), the batch committed through the
sink, and only then each message's PUBACK sent: a hub killed between receive and commit
gets the batch again, and the store drops the copies by reading id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import aiomqtt
import structlog

from collectors import wire
from collectors.base import ReadingSink
from collectors.mqtt.ack import ChainStore, Confirmation, Position, Publish, ack_topic, topic_site
from collectors.mqtt.connection import (
    TOPIC_ROOT,
    Backoff,
    BrokerOptions,
    ConnectionEvents,
    reading_topic,
    stay_connected,
)
from daemon.kernel.errors import PayloadError
from daemon.kernel.reading import Reading

log = structlog.get_logger(__name__)

SOURCE: Final = "mqtt"


class IngestEvents(ConnectionEvents, Protocol):
    """What an ingest reports as it goes (the daemon turns it into metrics)."""

    def received(self, count: int) -> None: ...


@dataclass(frozen=True, slots=True)
class IngestOptions:
    sites: tuple[str, ...] = ("+",)
    shared_group: str | None = None
    max_payload_bytes: int = wire.DEFAULT_MAX_BYTES
    batch_max: int = 500
    batch_wait_s: float = 0.2
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    resend_after_s: float = 60.0  # a site's chain stuck this long on a missing entry: its agent sends again

    def topics(self) -> list[str]:
        prefix = f"$share/{self.shared_group}/" if self.shared_group else ""
        return [f"{prefix}{TOPIC_ROOT}/{site}/+/reading" for site in self.sites]


class MqttIngest:
    """Stream collector: ``await ingest.run(sink)`` until cancelled; reconnects by itself."""

    def __init__(
        self,
        broker: BrokerOptions,
        options: IngestOptions,
        events: IngestEvents,
        monotonic: Callable[[], float] = time.monotonic,
        chains: ChainStore | None = None,
    ) -> None:
        self._broker = broker
        self._options = options
        self._events = events
        self._monotonic = monotonic
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s)
        # End-to-end acknowledgement (ack.py): without a store for it, nothing is confirmed.
        self._chains = chains

    async def run(self, sink: ReadingSink) -> None:
        async def session(client: aiomqtt.Client) -> None:
            for topic in self._options.topics():
                await client.subscribe(topic, qos=1)
            log.info("mqtt_ingest_subscribed", topics=self._options.topics(), client_id=self._broker.client_id)

            async def publish(site: str, confirmation: Confirmation) -> None:
                await client.publish(ack_topic(site), confirmation.to_bytes(), qos=1, retain=True)

            if self._chains is not None:
                await self._chains.restart(publish)  # a new session: agents send again what is not confirmed
            await self._consume(client, sink, publish)

        await stay_connected(
            self._broker, self._events, self._backoff, session, monotonic=self._monotonic, manual_ack=True
        )

    async def _committed(self, batch: list[aiomqtt.Message], publish: Publish) -> None:
        """Confirm, per site, the entries of the batch just committed (ack.py)."""
        if self._chains is None:
            return
        by_site: dict[str, list[Position]] = {}
        for message in batch:
            properties = getattr(message.properties, "UserProperty", None)
            position = Position.from_properties(properties)
            site = topic_site(str(message.topic))
            if position is not None and site is not None:
                by_site.setdefault(site, []).append(position)
        for site, positions in by_site.items():
            await self._chains.confirm(site, positions, publish)

    async def _check_stalled(self, publish: Publish, due: float) -> float:
        """Past ``due``, ask agents whose chain is stuck on a missing entry to send again; the next due time."""
        if self._chains is None or self._monotonic() < due:
            return due
        await self._chains.resend_stalled(self._options.resend_after_s, publish)
        return self._monotonic() + self._options.resend_after_s / 2

    async def _consume(self, client: aiomqtt.Client, sink: ReadingSink, publish: Publish) -> None:
        messages = client.messages
        # The wait for the next message is never cancelled: aiomqtt's iterator loses a message
        # that arrives just as its __anext__ is cancelled (it cancels the queue read after the
        # read has completed). A timed-out wait is kept and picked up by the next batch.
        waiting: asyncio.Future[aiomqtt.Message] | None = None
        due = self._monotonic() + self._options.resend_after_s / 2
        try:
            while True:
                waiting = waiting or asyncio.ensure_future(anext(messages))
                idle_s = max(0.0, due - self._monotonic()) if self._chains is not None else None
                done, _ = await asyncio.wait({waiting}, timeout=idle_s)
                if not done:
                    due = await self._check_stalled(publish, due)
                    continue
                batch = [waiting.result()]
                waiting = None
                batch += _already_queued(client, self._options.batch_max - len(batch))
                deadline = self._monotonic() + self._options.batch_wait_s
                while len(batch) < self._options.batch_max and (remaining := deadline - self._monotonic()) > 0:
                    waiting = waiting or asyncio.ensure_future(anext(messages))
                    done, _ = await asyncio.wait({waiting}, timeout=remaining)
                    if not done:
                        break
                    batch.append(waiting.result())
                    waiting = None
                    batch += _already_queued(client, self._options.batch_max - len(batch))
                self._events.received(len(batch))
                await self._commit(batch, sink)
                for message in batch:
                    client._client.ack(message.mid, message.qos)  # noqa: SLF001 - see manual_ack_set above
                await self._committed(batch, publish)
                due = await self._check_stalled(publish, due)
        finally:
            if waiting is not None:
                waiting.cancel()  # leaving anyway: what it holds was never acknowledged, so it comes again

    async def _commit(self, batch: list[aiomqtt.Message], sink: ReadingSink) -> None:
        """Decode the batch, dead-letter what fails, commit the rest; raises if the store refuses."""
        items = [(str(m.topic), m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()) for m in batch]
        readings, _ = await wire.decode_batch(
            sink, items, source=SOURCE, max_bytes=self._options.max_payload_bytes, check=check_topic
        )
        if readings:
            await sink.emit(readings)


def check_topic(reading: Reading, topic: str) -> None:
    """The broker's ACLs bind a sender to its topic, so the topic, not the payload, says whose reading it is.

    Raises:
        PayloadError: ``topic_mismatch`` when the payload's site or device key is not the topic's.
    """
    expected = reading_topic(reading.site, reading.device.key)
    if topic != expected:
        detail = (
            f"payload says site {reading.site!r}, device {reading.device.key!r} (topic {expected}) "
            f"but arrived on {topic}; a sender may only publish its own site's devices"
        )
        raise PayloadError("topic_mismatch", detail)


def _already_queued(client: aiomqtt.Client, limit: int) -> list[aiomqtt.Message]:
    """Messages aiomqtt has already received, taken without waiting.

    Its iterator costs a task and an ``asyncio.wait`` per message, which a backlog being
    drained pays for nothing: what is queued is taken straight off the queue it reads from.
    """
    queue = client._queue  # noqa: SLF001 - the queue aiomqtt's own iterator reads
    taken: list[aiomqtt.Message] = []
    while len(taken) < limit and not queue.empty():
        taken.append(queue.get_nowait())
    return taken
