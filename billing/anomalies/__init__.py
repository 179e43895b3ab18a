"""Anomalies in meter readings: what the detectors find, and the knobs they take.

A finding is pure data; the engine stores it as an anomaly (open -> acknowledged ->
resolved) and the readings named in its evidence are held from usage while it is open
and of a billing-relevant kind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final


class Kind(StrEnum):
    WRAP = "wrap"  # Counter32 rolled over: usage continues across it
    RESET = "reset"  # counter went back (board, firmware): a new segment starts
    SWAP = "swap"  # another device now answers at the same address
    MOVED = "moved"  # the same serial turned up at another site
    JUMP = "jump"  # a step no engine can print in the time between two readings
    SPIKE = "spike"  # a short excursion: one day far above the device's own level, back the day after
    LEVEL_SHIFT = "level_shift"  # days far above the device's level that stay up: a busy spell, not a fault
    STALE = "stale"  # no reading for too long
    FROZEN = "frozen"  # a device that answers but whose total does not move for weeks
    INCONSISTENT = "inconsistent"  # meters that contradict each other
    UNCOUNTED = "uncounted"  # toner or ink used up while the total stood still: pages printed but not counted
    OVER_ALLOWANCE = "over_allowance"  # the cycle's forecast outgrows what the contract includes


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY: Final[dict[Kind, Severity]] = {
    Kind.WRAP: Severity.INFO,
    Kind.RESET: Severity.CRITICAL,
    Kind.SWAP: Severity.CRITICAL,
    Kind.MOVED: Severity.WARNING,
    Kind.JUMP: Severity.CRITICAL,
    Kind.SPIKE: Severity.WARNING,
    Kind.LEVEL_SHIFT: Severity.INFO,
    Kind.STALE: Severity.WARNING,
    Kind.FROZEN: Severity.WARNING,
    Kind.INCONSISTENT: Severity.CRITICAL,
    Kind.UNCOUNTED: Severity.WARNING,
    Kind.OVER_ALLOWANCE: Severity.WARNING,
}

# Kinds whose readings must not be billed until a person decides.
HOLDS_READINGS: Final = frozenset({Kind.RESET, Kind.SWAP, Kind.MOVED, Kind.JUMP, Kind.SPIKE, Kind.INCONSISTENT})

COUNTER32: Final = 2**32


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """Defaults chosen for office fleets; all documented in config/README.md under [anomalies]."""

    # Fastest plausible engine, pages per minute: a wrap's implied step must fit in it, a
    # forward step beyond it is a jump. Production presses print ~300 ppm.
    max_pages_per_minute: float = 500.0
    spike_window_days: int = 28
    spike_min_history_days: int = 14
    spike_mads: float = 8.0  # how many robust deviations above the median
    spike_min_ratio: float = 3.0  # and at least this many times the median
    spike_min_pages: int = 200  # and at least this many pages above it
    spike_history_days: int = 35  # the busy spells (a month-end rush) a device's level remembers
    spike_return: float = 0.5  # the days either side are back below this share of the excursion
    stale_intervals: int = 3  # missed poll intervals before a device is stale
    stale_margin: float = 1.1  # and silent this much longer than its own longest recent gap
    stale_close_days: float = 3.0  # this close to a month's end …
    stale_close_hours: float = 72.0  # … this much silence is stale, however long the device usually sleeps
    frozen_days: int = 14
    inconsistent_tolerance: float = 0.01  # of what the total counted over the interval
    inconsistent_min_pages: int = 5
    inconsistent_interval_hours: float = 24.0  # meters are compared on what they counted over this long
    uncounted_supply_drop: int = 5  # percentage points of toner or ink used while the total stood still
    uncounted_min_hours: float = 6.0  # over at least this long (counters and levels update at their own pace)
    allowance_margin: float = 0.10  # a forecast this far beyond the included pages is worth a call
    allowance_rate_days: int = 14  # the recent days the daily rate is taken from
    allowance_min_days: float = 3.0  # fewer days of reads than this give no rate (too little to go on)


class KindTraits:
    """What a finding's (or an episode's) kind implies: how severe it is, whether it holds readings."""

    __slots__ = ()
    kind: Kind

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.kind]

    @property
    def holds(self) -> bool:
        return self.kind in HOLDS_READINGS


@dataclass(frozen=True, slots=True)
class Finding(KindTraits):
    kind: Kind
    device: str
    meter: str | None
    window_start: datetime
    window_end: datetime
    evidence: dict[str, Any] = field(default_factory=dict)


def by_settings(
    devices: Iterable[str], default: DetectorSettings, tuned: Mapping[str, DetectorSettings] | None
) -> dict[DetectorSettings, list[str]]:
    """``devices`` grouped by the settings that judge them: their own (site or contract knobs), else ``default``.

    Detectors are vectorised over a group; a fleet tuned nowhere is one group.
    """
    groups: dict[DetectorSettings, list[str]] = {}
    for device in devices:
        groups.setdefault((tuned or {}).get(device, default), []).append(device)
    return groups
