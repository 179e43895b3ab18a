"""Agent forwarding: the outbox, in order, to the broker; an entry leaves when the hub confirms it.

A PUBACK only says the broker has the message: an entry stays queued until the hub says
it committed it (ack.py), so a hub away past its session expiry loses nothing. Each
connection, and each new hub session, starts again from the oldest entry still queued,
so whatever was not confirmed is sent again (the hub drops the copies by reading id).
Publishes are paced (``replay_rate`` per second) so a week's backlog does not hit the
broker at once, and at most ``max_inflight`` wait for their PUBACK (paho-mqtt loses
QoS 1 messages beyond 65,535 unacknowledged).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.mqtt.ack import Confirmation, Position, ack_topic
from collectors.mqtt.connection import Backoff, BrokerOptions, ConnectionEvents, stay_connected
from daemon.kernel.errors import StorageError, raise_if_cancelling

log = structlog.get_logger(__name__)

_PAGE: Final = 500
_IDLE_WAIT_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    topic: str
    payload: bytes


class Outbox(Protocol):
    """Where the agent's queued readings live (the daemon's store)."""

    async def pending(self, *, after_id: int, limit: int) -> Sequence[OutboxEntry]: ...

    async def epoch(self) -> str:
        """The outbox's identity: ids of another outbox (a store started afresh) mean nothing to the hub."""
        ...

    async def confirmed(self, up_to: int) -> None:
        """The hub committed every entry up to ``up_to``: forget them."""
        ...

    async def acknowledged(self, ids: list[int]) -> None:
        """The broker has these entries (PUBACK): forget them (``confirmed_by_hub`` off)."""
        ...


class ForwardEvents(ConnectionEvents, Protocol):
    def forwarded(self, count: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ForwardOptions:
    site: str
    confirmed_by_hub: bool = True  # False: an entry leaves at its PUBACK (hubs in a shared group)
    max_inflight: int = 1000
    replay_rate: float = 500.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0


class MqttForwarder:
    """Stream collector: ``await forwarder.run(outbox)`` until cancelled; ``wake()`` when new entries arrive."""

    def __init__(
        self,
        broker: BrokerOptions,
        options: ForwardOptions,
        events: ForwardEvents,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._options = options
        self._events = events
        self._monotonic = monotonic
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s)
        self._new_entries = asyncio.Event()
        self._hub: str | None = None  # the hub session that last confirmed
        self._rewind = False

    def wake(self) -> None:
        self._new_entries.set()

    async def run(self, outbox: Outbox) -> None:
        async def session(client: aiomqtt.Client) -> None:
            try:
                await self._forward(client, outbox)
            except* StorageError as errors:
                raise_if_cancelling()  # the stop broke a store call: it must go on, not be retried
                # The outbox is the local store: if it fails, nothing is lost by waiting.
                log.error("outbox_unreadable", error=str(errors.exceptions[0]))  # noqa: TRY400 - one line
                await asyncio.sleep(self._backoff.next_delay())

        await stay_connected(self._broker, self._events, self._backoff, session, monotonic=self._monotonic)

    async def _forward(self, client: aiomqtt.Client, outbox: Outbox) -> None:
        epoch = await outbox.epoch()
        await client.subscribe(ack_topic(self._options.site), qos=1)
        interval = 1.0 / self._options.replay_rate
        next_send = self._monotonic()
        slots = asyncio.Semaphore(self._options.max_inflight)
        acked: list[int] = []

        async def publish(entry: OutboxEntry, prev: int) -> None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.UserProperty = Position(epoch, entry.id, prev).properties()
            try:
                await client.publish(entry.topic, entry.payload, qos=1, properties=properties)
            finally:
                slots.release()
            self._events.forwarded(1)
            if not self._options.confirmed_by_hub:
                acked.append(entry.id)

        async with asyncio.TaskGroup() as in_flight:
            in_flight.create_task(self._listen(client, outbox, epoch))
            self._rewind = True  # every connection replays from the oldest entry still queued
            cursor = prev = 0
            while True:
                if self._rewind:
                    self._rewind = False
                    cursor = prev = 0  # prev 0: nothing older is queued (the hub may move past it)
                entries = await outbox.pending(after_id=cursor, limit=_PAGE)
                if not entries:
                    await _settle(outbox, acked)
                    self._new_entries.clear()
                    try:
                        async with asyncio.timeout(_IDLE_WAIT_S):
                            await self._new_entries.wait()
                    except TimeoutError:
                        pass
                    continue
                for entry in entries:
                    delay = next_send - self._monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    next_send = max(next_send + interval, self._monotonic() - 1.0)
                    await slots.acquire()
                    in_flight.create_task(publish(entry, prev))
                    cursor = prev = entry.id
                    if self._rewind:
                        break
                await _settle(outbox, acked)

    async def _listen(self, client: aiomqtt.Client, outbox: Outbox, epoch: str) -> None:
        """The hub's confirmations: forget what it committed; a new hub session means send again."""
        async for message in client.messages:
            raw = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            confirmation = Confirmation.from_bytes(raw)
            if confirmation is None:
                log.warning("hub_confirmation_unreadable", topic=str(message.topic))
                continue
            if confirmation.epoch == epoch:
                await outbox.confirmed(confirmation.seq)
            if self._hub is not None and confirmation.hub != self._hub:
                log.info("hub_session_new_resending", confirmed=confirmation.seq)
                self._rewind = True
                self._new_entries.set()
            self._hub = confirmation.hub


async def _settle(outbox: Outbox, acked: list[int]) -> None:
    """Remove what the broker acknowledged so far (when the hub does not confirm)."""
    if acked:
        done = acked[:]
        del acked[: len(done)]
        await outbox.acknowledged(done)
