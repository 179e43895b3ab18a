"""Limits on guessing that the per-account lock-out alone does not give.

* :class:`Turns`: at most N login attempts per account are judged at once, so a burst of
  parallel guesses cannot all read "not locked yet" before the first failure is counted.
* :class:`FailureWindow`: failed logins per key (a client address, or everything) in a
  sliding window, so one guess per account across many accounts (password spraying) is
  stopped too.
* :class:`SlowLane`: while everyone together is at the failure limit (a spray), logins are
  judged one at a time and at most so many a second, those from addresses with fewer
  recent failures first: the spray is slowed, and a correct login still gets in, later.
* :class:`UnknownLogins`: the lock-out of logins that do not exist, kept in memory, so a
  locked real account and an unknown one answer alike (no way to tell which logins exist).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Final

MAX_TRACKED: Final = 10_000  # keys remembered at once; the oldest are forgotten first (memory stays bounded)


class Turns:
    """Per-key turns: at most ``at_once`` holders of one key's turn at a time, the others wait in order."""

    def __init__(self, at_once: int) -> None:
        self._at_once = at_once
        self._gates: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        gate, users = self._gates.get(key, (asyncio.Semaphore(self._at_once), 0))
        self._gates[key] = (gate, users + 1)
        try:
            async with gate:
                yield
        finally:
            gate, users = self._gates[key]
            if users == 1:
                del self._gates[key]  # nobody waits: forget the key
            else:
                self._gates[key] = (gate, users - 1)


class FailureWindow:
    """How many failures each key had in the last ``window``; full at ``limit``."""

    def __init__(self, limit: int, window: timedelta) -> None:
        self._limit = limit
        self._window = window
        self._seen: OrderedDict[str, deque[datetime]] = OrderedDict()

    def full_until(self, key: str, now: datetime) -> datetime | None:
        """When ``key`` may try again, if it is at its limit now; else None."""
        times = self._recent(key, now)
        return times[0] + self._window if len(times) >= self._limit else None

    def count(self, key: str, now: datetime) -> int:
        """Failures of ``key`` in the window (up to the limit)."""
        return len(self._recent(key, now)) if key in self._seen else 0

    def add(self, key: str, now: datetime) -> None:
        times = self._recent(key, now)
        times.append(now)
        self._seen[key] = times
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_TRACKED:
            self._seen.popitem(last=False)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        times = self._seen.get(key, deque())
        while times and times[0] <= now - self._window:
            times.popleft()
        # Only the newest ``limit`` matter: whether it is full, and when the oldest of them ages out.
        while len(times) > self._limit:
            times.popleft()
        return times


class LaneTimeoutError(Exception):
    """An attempt waited its longest for a turn in the slow lane (internal: the caller says try again)."""


class SlowLane:
    """One judgement at a time, ``per_second`` at most, lowest rank first (then in order of arrival).

    A slow-down rather than a refusal: every attempt is judged, just later, so a spray cannot
    lock everyone out, and it gets ``per_second`` guesses judged instead of the argon2 pool's
    worth. The wait is bounded (``max_wait_s``); an attempt that cannot get a turn by then
    is answered "try again". Ranks (an address's recent failures) put a person at a clean
    address ahead of the spray's own queue.
    """

    def __init__(self, per_second: float, max_wait_s: float) -> None:
        self._interval = 1.0 / per_second
        self._max_wait_s = max_wait_s
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._busy = False
        self._next_start = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.judged = 0  # turns given, for a look at how hard the lane holds back

    @property
    def queued(self) -> int:
        return sum(1 for *_, future in self._waiting if not future.done())

    @contextlib.asynccontextmanager
    async def turn(self, rank: int) -> AsyncIterator[None]:
        """Wait for a turn (at most ``max_wait_s``), hold it while judging.

        Raises:
            LaneTimeoutError: no turn came in time.
        """
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (rank, next(self._arrivals), future))
        self._give()
        try:
            async with asyncio.timeout(self._max_wait_s):
                await asyncio.shield(future)
        except TimeoutError:
            if not future.done():
                future.cancel()
                raise LaneTimeoutError from None
        except asyncio.CancelledError:
            if future.done():
                self._release()  # the turn came just as the wait was cancelled: pass it on
            else:
                future.cancel()
            raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self._busy = False
        self._give()

    def _give(self) -> None:
        """Hand the free lane to the best waiter, now or when the spacing allows."""
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)  # gave up waiting
        if self._busy or not self._waiting or self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        if (delay := self._next_start - loop.time()) > 0:
            self._timer = loop.call_later(delay, self._wake)
            return
        _, _, future = heapq.heappop(self._waiting)
        self._busy = True
        self._next_start = loop.time() + self._interval
        self.judged += 1
        future.set_result(None)

    def _wake(self) -> None:
        self._timer = None
        self._give()


class UnknownLogins:
    """Failed logins of logins that do not exist, counted and locked as the store does for real ones."""

    def __init__(self, limit: int, lockout: timedelta) -> None:
        self._limit = limit
        self._lockout = lockout
        self._state: OrderedDict[str, tuple[int, datetime | None]] = OrderedDict()

    def locked_until(self, login: str, now: datetime) -> datetime | None:
        _, until = self._state.get(login, (0, None))
        return until if until is not None and until > now else None

    def fail(self, login: str, now: datetime) -> None:
        failures = self._state.get(login, (0, None))[0] + 1  # 0 after a lock: counting starts again, as in the store
        self._state[login] = (0, now + self._lockout) if failures >= self._limit else (failures, None)
        self._state.move_to_end(login)
        while len(self._state) > MAX_TRACKED:
            self._state.popitem(last=False)
