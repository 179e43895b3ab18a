"""Requests that cost seconds of CPU (the usage report's chart, an invoice PDF): limited per user, and cached.

The HTML usage report took ~4 s of CPU per request with no limit: a few callers in a loop
starve the daemon. Each user gets ``api.expensive_per_minute`` such requests a minute;
past that, 429 with when to try again. A report is also kept, per customer x period x
format, for as long as nothing it is made from changed: every change to customers,
contracts or invoices writes an audit entry, and every reading a row, so the newest id of
each tells whether a kept report still holds.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import func, select

from daemon.kernel.errors import MeterdError
from daemon.security.throttle import FailureWindow
from daemon.storage.models import AuditEntry, ReadingRow
from daemon.storage.repository import Store

KEPT: Final = 64  # reports kept at once; the least recently used go first


class RateLimitedError(MeterdError):
    """Too many expensive requests from one user; the message says when to try again."""


class Expensive:
    """The per-user limit and the report cache of one API."""

    def __init__(self, per_minute: int) -> None:
        self._spent = FailureWindow(per_minute, timedelta(minutes=1))
        self._reports: OrderedDict[tuple[str, ...], tuple[tuple[int, int], str]] = OrderedDict()

    def spend(self, login: str, now: datetime) -> None:
        """Count one expensive request of ``login``.

        Raises:
            RateLimitedError: past ``api.expensive_per_minute`` in the last minute.
        """
        until = self._spent.full_until(login, now)
        if until is not None:
            msg = f"too many reports at once: try again after {until:%H:%M:%S} UTC (api.expensive_per_minute)"
            raise RateLimitedError(msg)
        self._spent.add(login, now)

    async def kept(self, store: Store, key: tuple[str, ...]) -> tuple[tuple[int, int], str | None]:
        """What the store looks like now (its newest audit and reading ids), and the report kept for it, if any."""
        stamp = await _stamp(store)
        found = self._reports.get(key)
        if found is not None and found[0] == stamp:
            self._reports.move_to_end(key)
            return stamp, found[1]
        return stamp, None

    def keep(self, key: tuple[str, ...], stamp: tuple[int, int], report: str) -> None:
        self._reports[key] = (stamp, report)
        self._reports.move_to_end(key)
        while len(self._reports) > KEPT:
            self._reports.popitem(last=False)


async def _stamp(store: Store) -> tuple[int, int]:
    async def _query() -> tuple[int, int]:
        async with store.engine.connect() as conn:
            audit = (await conn.execute(select(func.max(AuditEntry.id)))).scalar_one()
            reading = (await conn.execute(select(func.max(ReadingRow.id)))).scalar_one()
        return int(audit or 0), int(reading or 0)

    return await store.guard(_query(), "check the report cache")
