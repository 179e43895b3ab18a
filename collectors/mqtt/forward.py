"""Agent forwarding: the outbox, in order, to the broker; an entry leaves only on its PUBACK.

Each connection starts again from the oldest entry still queued, so whatever was in
flight when the link dropped is sent again (the hub drops the copies by reading id).
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

from collectors.mqtt.connection import Backoff, BrokerOptions, ConnectionEvents, stay_connected
from daemon.errors import StorageError

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

    async def acknowledged(self, ids: list[int]) -> None: ...


class ForwardEvents(ConnectionEvents, Protocol):
    def forwarded(self, count: int) -> None: ...


@dataclass(frozen=True, slots=True)
class ForwardOptions:
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

    def wake(self) -> None:
        self._new_entries.set()

    async def run(self, outbox: Outbox) -> None:
        async def session(client: aiomqtt.Client) -> None:
            try:
                await self._forward(client, outbox)
            except* StorageError as errors:
                # The outbox is the local store: if it fails, nothing is lost by waiting.
                log.error("outbox_unreadable", error=str(errors.exceptions[0]))  # noqa: TRY400 - one line
                await asyncio.sleep(self._backoff.next_delay())

        await stay_connected(self._broker, self._events, self._backoff, session, monotonic=self._monotonic)

    async def _forward(self, client: aiomqtt.Client, outbox: Outbox) -> None:
        cursor = 0  # every connection replays from the oldest entry still queued
        interval = 1.0 / self._options.replay_rate
        next_send = self._monotonic()
        slots = asyncio.Semaphore(self._options.max_inflight)
        acked: list[int] = []

        async def publish(entry: OutboxEntry) -> None:
            try:
                await client.publish(entry.topic, entry.payload, qos=1)
            finally:
                slots.release()
            acked.append(entry.id)

        async with asyncio.TaskGroup() as in_flight:
            while True:
                entries = await outbox.pending(after_id=cursor, limit=_PAGE)
                if not entries:
                    await self._settle(outbox, acked)
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
                    in_flight.create_task(publish(entry))
                    cursor = entry.id
                await self._settle(outbox, acked)

    async def _settle(self, outbox: Outbox, acked: list[int]) -> None:
        """Remove what the broker acknowledged so far from the outbox."""
        if acked:
            done = acked[:]
            del acked[: len(done)]
            await outbox.acknowledged(done)
            self._events.forwarded(len(done))
