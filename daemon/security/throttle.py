"""Limits on guessing that the per-account lock-out alone does not give.

* :class:`Turns`: at most N login attempts per account are judged at once, so a burst of
  parallel guesses cannot all read "not locked yet" before the first failure is counted.
* :class:`FailureWindow`: failed logins per key (a client address, or everything) in a
  sliding window, so one guess per account across many accounts (password spraying) is
  stopped too.
* :class:`UnknownLogins`: the lock-out of logins that do not exist, kept in memory, so a
  locked real account and an unknown one answer alike (no way to tell which logins exist).
"""

from __future__ import annotations

import asyncio
import contextlib
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
