"""The reading model every collector emits and billing, the store and the services read."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from daemon.kernel.errors import PayloadError


class Meter(StrEnum):
    """Canonical meter words (../shared/spec/meters.md)."""

    TOTAL = "total"
    MONO = "mono"
    COLOR = "color"
    COLOR_SINGLE = "color_single"
    COLOR_TWO = "color_two"
    PRINT_TOTAL = "print_total"
    PRINT_MONO = "print_mono"
    PRINT_COLOR = "print_color"
    COPY_TOTAL = "copy_total"
    COPY_MONO = "copy_mono"
    COPY_COLOR = "copy_color"
    FAX_TOTAL = "fax_total"
    SCAN_TOTAL = "scan_total"
    SCAN_MONO = "scan_mono"
    SCAN_COLOR = "scan_color"
    DUPLEX = "duplex"
    LARGE_TOTAL = "large_total"
    LARGE_MONO = "large_mono"
    LARGE_COLOR = "large_color"
    LENGTH = "length"


# Stored as a signed 64-bit integer; no real counter comes near it.
MAX_COUNTER: Final = 2**63 - 1


class Unit(StrEnum):
    """Units a meter value travels with (meters.md)."""

    IMPRESSIONS = "impressions"
    IMAGES = "images"
    SHEETS = "sheets"
    INCHES = "inches"
    CM = "cm"


@dataclass(frozen=True, slots=True)
class MeterValue:
    meter: Meter
    value: int
    unit: Unit = Unit.IMPRESSIONS
    derived: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.value <= MAX_COUNTER:
            raise PayloadError("bad_value", f"meter {self.meter} value {self.value} is outside 0..2^63-1")


@dataclass(frozen=True, slots=True)
class Supply:
    name: str
    kind: str
    color: str | None = None
    level_percent: int | None = None  # None: the device said "unknown" or "some remaining"


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """Who answered. ``key`` is the serial, else ``mac:…``, else ``addr:…`` (reading-v1)."""

    key: str
    vendor: str | None = None
    model: str | None = None
    address: str | None = None


def new_reading_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Reading:
    """One device answering at one moment: its meters and, optionally, its supplies."""

    site: str
    taken_at: datetime
    device: DeviceInfo
    meters: tuple[MeterValue, ...]
    supplies: tuple[Supply, ...] = ()
    id: str = field(default_factory=new_reading_id)
    source: str = "unknown"

    def __post_init__(self) -> None:
        if self.taken_at.tzinfo is None or self.taken_at.utcoffset() is None:
            raise PayloadError("bad_timestamp", "taken_at has no time zone")
        seen: set[Meter] = set()
        for value in self.meters:
            if value.meter in seen:
                raise PayloadError("duplicate_meter", f"meter {value.meter} appears twice")
            seen.add(value.meter)

    @property
    def taken_at_utc(self) -> datetime:
        return self.taken_at.astimezone(UTC)
