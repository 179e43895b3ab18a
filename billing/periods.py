"""Billing periods and cycles: half-open date ranges aligned to the calendar year."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Final

from daemon.kernel.errors import MeterdError

CYCLE_MONTHS: Final[dict[str, int]] = {"monthly": 1, "quarterly": 3, "semiannual": 6, "annual": 12}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEARS: Final = (1900, 9998)  # periods reach into the next year: 9999-12 would have no end


class PeriodError(MeterdError):
    """A period that cannot be understood."""


def utc_midnight(day: date) -> datetime:
    """The instant a day starts, in UTC: where billing periods begin and end."""
    return datetime.combine(day, time(), tzinfo=UTC)


def add_months(day: date, months: int) -> date:
    """The first of the month ``months`` after ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, slots=True, order=True)
class Period:
    start: date
    end: date  # exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    @property
    def label(self) -> str:
        months = (self.end.year - self.start.year) * 12 + self.end.month - self.start.month
        if self.start.day == 1 and self.end.day == 1 and months == 1:
            return f"{self.start:%Y-%m}"
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        start = date(year, month, 1)
        return cls(start, add_months(start, 1))

    @classmethod
    def parse_month(cls, text: str) -> Period:
        """``2026-10`` -> October 2026."""
        match = _MONTH.match(text.strip())
        if not match or not 1 <= int(match[2]) <= 12 or not _YEARS[0] <= int(match[1]) <= _YEARS[1]:  # noqa: PLR2004 - months of the year
            msg = f"{text!r} is not a month; write it as YYYY-MM, e.g. 2026-10 (years {_YEARS[0]}-{_YEARS[1]})"
            raise PeriodError(msg)
        return cls.month(int(match[1]), int(match[2]))

    def overlap(self, other: Period) -> Period | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None

    def __contains__(self, day: object) -> bool:
        return isinstance(day, date) and self.start <= day < self.end


def cycle_containing(day: date, cycle: str) -> Period:
    """The billing cycle (calendar-aligned: quarters start in Jan, Apr, Jul, Oct) that holds ``day``."""
    months = CYCLE_MONTHS[cycle]
    start = date(day.year, (day.month - 1) // months * months + 1, 1)
    return Period(start, add_months(start, months))


def cycles_between(period: Period, cycle: str) -> Iterator[Period]:
    """``period`` cut at the cycle boundaries it crosses."""
    day = period.start
    while day < period.end:
        whole = cycle_containing(day, cycle)
        part = whole.overlap(period)
        assert part is not None
        yield part
        day = part.end


def subtract(periods: Iterable[Period], taken: Iterable[Period]) -> list[Period]:
    """What of ``periods`` is not covered by ``taken``."""
    remaining = sorted(periods)
    for cut in sorted(taken):
        next_round: list[Period] = []
        for piece in remaining:
            if piece.overlap(cut) is None:
                next_round.append(piece)
                continue
            if piece.start < cut.start:
                next_round.append(Period(piece.start, cut.start))
            if cut.end < piece.end:
                next_round.append(Period(cut.end, piece.end))
        remaining = next_round
    return remaining


def merge(periods: Iterable[Period]) -> list[Period]:
    """Touching or overlapping periods joined."""
    merged: list[Period] = []
    for piece in sorted(periods):
        if merged and piece.start <= merged[-1].end:
            merged[-1] = Period(merged[-1].start, max(merged[-1].end, piece.end))
        else:
            merged.append(piece)
    return merged
