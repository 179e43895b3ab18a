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
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import aiomqtt
import structlog

from collectors import wire
from collectors.base import ReadingSink
from collectors.mqtt.ack import ChainStore, Confirmation, Position, SiteChain, ack_topic, topic_site
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
        self._chain_store = chains
        self._chains: dict[str, SiteChain] | None = None

    async def run(self, sink: ReadingSink) -> None:
        async def session(client: aiomqtt.Client) -> None:
            for topic in self._options.topics():
                await client.subscribe(topic, qos=1)
            log.info("mqtt_ingest_subscribed", topics=self._options.topics(), client_id=self._broker.client_id)
            hub = uuid.uuid4().hex  # a new session: agents send again what is not confirmed
            await self._announce(client, hub)
            await self._consume(client, sink, hub)

        await stay_connected(
            self._broker, self._events, self._backoff, session, monotonic=self._monotonic, manual_ack=True
        )

    async def _announce(self, client: aiomqtt.Client, hub: str) -> None:
        """Publish every known site's confirmed position under this session's hub id."""
        if self._chain_store is None:
            return
        if self._chains is None:
            loaded = await self._chain_store.load()
            self._chains = {site: SiteChain(epoch, seq) for site, (epoch, seq) in loaded.items()}
        for site, chain in self._chains.items():
            await self._confirm(client, site, chain, hub)

    async def _confirm(self, client: aiomqtt.Client, site: str, chain: SiteChain, hub: str) -> None:
        confirmation = Confirmation(chain.epoch, chain.seq, hub)
        await client.publish(ack_topic(site), confirmation.to_bytes(), qos=1, retain=True)

    async def _committed(self, client: aiomqtt.Client, batch: list[aiomqtt.Message], hub: str) -> None:
        """Advance each site's chain by the batch just committed; save and publish where it moved."""
        if self._chain_store is None or self._chains is None:
            return
        touched: dict[str, bool] = {}
        for message in batch:
            properties = getattr(message.properties, "UserProperty", None)
            position = Position.from_properties(properties)
            site = topic_site(str(message.topic))
            if position is None or site is None:
                continue
            chain = self._chains.setdefault(site, SiteChain())
            touched[site] = chain.committed(position) or touched.get(site, False)
        for site, moved in touched.items():
            chain = self._chains[site]
            if moved:
                await self._chain_store.save(site, chain.epoch, chain.seq)
            # Published even when it did not move: an agent learns this session's hub id.
            await self._confirm(client, site, chain, hub)

    async def _consume(self, client: aiomqtt.Client, sink: ReadingSink, hub: str) -> None:
        messages = client.messages
        # The wait for the next message is never cancelled: aiomqtt's iterator loses a message
        # that arrives just as its __anext__ is cancelled (it cancels the queue read after the
        # read has completed). A timed-out wait is kept and picked up by the next batch.
        waiting: asyncio.Future[aiomqtt.Message] | None = None
        try:
            while True:
                waiting = waiting or asyncio.ensure_future(anext(messages))
                batch = [await asyncio.shield(waiting)]
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
                await self._committed(client, batch, hub)
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
