"""Supplies: cartridges from a level history, days to empty, replenishment due, yield. Pure functions.

A supply's history is its stored levels (changes plus a daily heartbeat, see
daemon/storage/supplies.py) and its device's total page counter. Levels only fall while a
cartridge is used, also when the device reports them in 10 % steps; a rise of ``REFILL_JUMP``
points or more is another cartridge (a replacement or a refill), dated by the reading that saw it.
A level the device reports as unknown or "some remaining" is NULL and carries no information.

The forecast reads consumption per page off the level's *transitions*: the first reading at a
new level saw the true level cross the boundary between the two reported values within one
poll, so with 10 % steps the level is known exactly there, not only within ±5 %. Percent per
page is the least-squares slope of boundary against pages over the cartridge's transitions
(the previous cartridge's when this one has too few); days to empty divide what is left by
that slope and the device's pages per day over the last four whole weeks (the weekly rhythm
averages out).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Final

REFILL_JUMP: Final = 15  # percentage points a level must rise by to be another cartridge
RATE_WINDOW: Final = timedelta(days=28)  # whole weeks, so weekdays and weekends weigh as they come
_MIN_TRANSITIONS: Final = 2  # boundaries needed for a slope of this cartridge's own ...
_MIN_SPAN: Final = 10  # ... and the points they must span, else the previous cartridge's slope is steadier
_DAY_S: Final = 86_400.0
RELATIVE_FLOOR: Final = 0.12  # the least relative uncertainty of days to empty (bench/supplies_eval.py)
DUE_MARGIN: Final = 3.0  # standard deviations of the empty date a replenishment is due before it


# prtMarkerSuppliesDescription as printers send it (shared/walks, LibreNMS and PrintMaster recordings):
# "Black Cartridge HP CF217A", "TK-3190", "Black Ink Cartridge SJIC35P-BK", "Canon Cartridge 719/719H",
# "Black Toner, PN 006R01509;SN48178080E0000481". A part number is an upper-case token with a digit.
_PN: Final = re.compile(r"\bPN\s*([A-Z0-9][A-Z0-9-]+)")
_TOKEN: Final = re.compile(r"(?<![\w-])(?=[A-Z0-9/-]*\d)(?=[A-Z0-9/-]*[A-Z])[A-Z0-9][A-Z0-9/-]{3,}(?![\w-])")


def part_number(description: str) -> str | None:
    """The part number a supply's description carries, if any ("Black Cartridge HP CF217A" -> "CF217A")."""
    if tagged := _PN.search(description):
        return tagged.group(1)
    found = _TOKEN.findall(description)
    return found[-1] if found else None


@dataclass(frozen=True, slots=True)
class Level:
    at: datetime
    percent: int | None  # None: the device said unknown or "some remaining"


@dataclass(frozen=True, slots=True)
class Cartridge:
    """One cartridge's stretch of a supply's history."""

    installed_at: datetime  # the reading that saw it go in, or the history's first reading
    replaced: bool  # True: we saw it go in (a replacement); False: it was there when the history begins
    levels: tuple[Level, ...]
    level_before: int | None = None  # the last level of the cartridge it replaced


@dataclass(frozen=True, slots=True)
class Forecast:
    level: int | None  # as last reported
    pages_per_day: float | None
    percent_per_page: float | None
    days_left: float | None
    empty_on: date | None
    uncertainty_days: float | None  # one standard deviation of the empty date
    basis: str  # how it was made, or why there is none


@dataclass(frozen=True, slots=True)
class Yield:
    installed_at: datetime
    removed_at: datetime
    pages: int
    used_percent: int  # from its first level to its last: a cartridge taken out early used less
    full_pages: int | None  # the pages the whole cartridge would give at this rate
    nominal: int | None
    short: bool  # far below its nominal yield: leaking, heavy coverage, grey-market


def cartridges(levels: Sequence[Level], *, jump: int = REFILL_JUMP) -> list[Cartridge]:
    """Split a supply's history where its level rises by ``jump`` points or more (oldest first)."""
    ordered = sorted(levels, key=lambda level: level.at)
    if not ordered:
        return []
    out: list[Cartridge] = []
    start, replaced, before = 0, False, None
    last_known: int | None = None
    for index, level in enumerate(ordered):
        if level.percent is None:
            continue
        if last_known is not None and level.percent - last_known >= jump:
            out.append(Cartridge(ordered[start].at, replaced, tuple(ordered[start:index]), before))
            start, replaced, before = index, True, last_known
        last_known = level.percent
    out.append(Cartridge(ordered[start].at, replaced, tuple(ordered[start:]), before))
    return out


def replacements(levels: Sequence[Level], *, jump: int = REFILL_JUMP) -> list[Cartridge]:
    """The cartridges seen going in: each one's ``installed_at`` is its replacement's date."""
    return [c for c in cartridges(levels, jump=jump) if c.replaced]


class PageCounter:
    """A device's total page counter as a function of time (linear between readings)."""

    def __init__(self, readings: Sequence[tuple[datetime, int]]) -> None:
        ordered = sorted(readings)
        self.times = [at.timestamp() for at, _ in ordered]
        self.values = [float(value) for _, value in ordered]

    def __bool__(self) -> bool:
        return len(self.times) >= 2  # noqa: PLR2004 - a rate needs two readings

    def at(self, moment: datetime) -> float:
        t = moment.timestamp()
        times, values = self.times, self.values
        if t <= times[0]:
            return values[0]
        if t >= times[-1]:
            return values[-1]
        hi = bisect_left(times, t)
        lo = hi - 1
        share = (t - times[lo]) / (times[hi] - times[lo]) if times[hi] > times[lo] else 1.0
        return values[lo] + share * (values[hi] - values[lo])

    def per_day(self, now: datetime) -> PageRate | None:
        """Pages per day over the last RATE_WINDOW (or what history there is), per weekday when two weeks are there."""
        first = datetime.fromtimestamp(self.times[0], tz=now.tzinfo)
        start = max(now - RATE_WINDOW, first)
        days = (now - start).total_seconds() / _DAY_S
        if days < 1:
            return None
        rate = (self.at(now) - self.at(start)) / days
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        whole = [
            midnight - timedelta(days=d)
            for d in range(1, RATE_WINDOW.days + 1)
            if midnight - timedelta(days=d) >= first
        ]
        daily = {day: self.at(day + timedelta(days=1)) - self.at(day) for day in whole}
        weekly = len(whole) >= 2 * 7
        by_weekday = [[pages for day, pages in daily.items() if day.weekday() == w] for w in range(7)]
        profile = tuple(sum(p) / len(p) if weekly and p else rate for p in by_weekday)
        residuals = [pages - profile[day.weekday()] for day, pages in daily.items()]
        spread = math.sqrt(sum(r * r for r in residuals) / max(len(residuals) - 1, 1)) / rate if rate > 0 else 0.0
        return PageRate(rate, spread, profile)


@dataclass(frozen=True, slots=True)
class PageRate:
    per_day: float  # the window's mean
    spread: float  # one day's standard deviation around its weekday's mean, relative to per_day
    by_weekday: tuple[float, ...]  # Monday first; all per_day with less than two weeks of history

    def days_for(self, pages: float, now: datetime) -> float:
        """Days from ``now`` until ``pages`` are printed, day by day at each weekday's rate."""
        if pages <= 0:
            return 0.0
        days, moment = 0.0, now
        for _ in range(3 * 366):  # a cartridge that outlasts three years needs no date to the day
            share = 1.0 - (moment - moment.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() / _DAY_S
            today = self.by_weekday[moment.weekday()] * share
            if today >= pages:
                return days + share * pages / today
            pages -= today
            days += share
            moment = moment.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return days + pages / self.per_day


def _transitions(cartridge: Cartridge) -> tuple[list[tuple[datetime, float]], float]:
    """(time, boundary level) where the reported level fell, and the reporting step (1 or 10 …)."""
    known = [(level.at, level.percent) for level in cartridge.levels if level.percent is not None]
    out: list[tuple[datetime, float]] = []
    drops: list[int] = []
    for (_, before), (at, after) in pairwise(known):
        if after < before:
            out.append((at, (before + after) / 2))
            drops.append(before - after)
    return out, float(min(drops)) if drops else 1.0


def _slope(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares level = a - c * x: (c, its relative standard error) or None without a spread in x."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    c = -sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    if c <= 0:
        return None
    residual = sum((y - (mean_y - c * (x - mean_x))) ** 2 for x, y in points)
    standard_error = math.sqrt(residual / (n - 2) / sxx) if n > 2 else 0.0  # noqa: PLR2004 - two points fit exactly
    return c, standard_error / c


def percent_per_page(cartridge: Cartridge, counter: PageCounter) -> tuple[float, float] | None:
    """The cartridge's consumption per page from its transitions, and its relative uncertainty."""
    transitions, step = _transitions(cartridge)
    if len(transitions) < _MIN_TRANSITIONS:
        return None
    fitted = _slope([(counter.at(at), boundary) for at, boundary in transitions])
    if fitted is None:
        return None
    c, relative = fitted
    span = transitions[0][1] - transitions[-1][1]
    return c, max(relative, step / 2 / span / len(transitions))  # a floor: boundaries are exact within a poll


def forecast(
    cartridge: Cartridge, counter: PageCounter, now: datetime, *, previous: Cartridge | None = None
) -> Forecast:
    """When ``cartridge`` runs empty, at ``now``: expected date and one standard deviation, in days."""
    known = [level for level in cartridge.levels if level.percent is not None]
    level = known[-1].percent if known else None
    if level is None:
        return Forecast(None, None, None, None, None, None, "level unknown: the device reports none")
    rate = counter.per_day(now) if counter else None
    if rate is None:
        return Forecast(level, None, None, None, None, None, "too little page history for a rate")
    pages_per_day, rate_spread = rate.per_day, rate.spread
    own = percent_per_page(cartridge, counter)
    basis = "this cartridge's levels and the page rate"
    transitions, step = _transitions(cartridge)
    young = not transitions or transitions[0][1] - transitions[-1][1] < _MIN_SPAN
    if (own is None or young) and previous is not None and (before := percent_per_page(previous, counter)):
        own, basis = before, "the previous cartridge's consumption and the page rate"
    if own is None:
        return Forecast(level, pages_per_day, None, None, None, None, "too few level changes yet")
    c, slope_spread = own
    if level == 0:
        return Forecast(level, pages_per_day, c, 0.0, now.date(), 0.0, "empty")
    if pages_per_day <= 0:
        return Forecast(level, pages_per_day, c, None, None, None, "the device prints nothing lately")
    if transitions:  # exact at the last boundary, less what was printed since
        last_at, boundary = transitions[-1]
        now_level = boundary - c * (counter.at(now) - counter.at(last_at))
        now_level = min(max(now_level, level - step / 2), level + step / 2)
        level_spread = 0.0
    else:
        now_level, level_spread = float(level), step / 2 / level
    days_left = rate.days_for(max(now_level, 0.0) / c, now)
    horizon_days = max(days_left, 1.0)
    rate_error = rate_spread * math.sqrt(1 / (RATE_WINDOW.days) + 1 / horizon_days)
    # Floored: a fortnight's printing strays from the last four weeks' by more than day-to-day noise says.
    relative = max(math.sqrt(rate_error**2 + slope_spread**2 + level_spread**2), RELATIVE_FLOOR)
    sigma = days_left * relative
    empty_on = (now + timedelta(days=days_left)).date()
    return Forecast(level, pages_per_day, c, days_left, empty_on, sigma, basis)


def replenishment_due(
    result: Forecast, today: date, *, lead_days: int, low_percent: int, margin: float = DUE_MARGIN
) -> bool:
    """Due when the level is at or below ``low_percent`` or the empty date's early end is within ``lead_days``.

    The early end is ``margin`` standard deviations before the expected date: a toner shipped a
    few days early costs nothing, one that arrives after the printer stopped costs the customer.
    """
    if result.level is not None and result.level <= low_percent:
        return True
    if result.empty_on is None:
        return False
    early = result.empty_on - timedelta(days=math.ceil(margin * (result.uncertainty_days or 0.0)))
    return (early - today).days <= lead_days


def yields(
    history: Sequence[Cartridge], counter: PageCounter, *, nominal: int | None, short_share: float = 0.6
) -> list[Yield]:
    """Pages printed by each cartridge seen from replacement to replacement.

    A cartridge taken out with toner left is judged by the pages its whole 100 % would have
    given at the rate it went (pages / used share); short below ``short_share`` of ``nominal``.
    """
    out = []
    for cartridge, successor in pairwise(history):
        known = [level.percent for level in cartridge.levels if level.percent is not None]
        if not cartridge.replaced or not known:
            continue  # it went in before the history began: its first pages are unknown
        pages = round(counter.at(successor.installed_at) - counter.at(cartridge.installed_at))
        used = known[0] - (successor.level_before if successor.level_before is not None else known[-1])
        full = round(pages * 100 / used) if used > 0 else None
        short = nominal is not None and full is not None and full < short_share * nominal
        out.append(Yield(cartridge.installed_at, successor.installed_at, pages, used, full, nominal, short))
    return out
