"""The standard objects every printer is asked for: MIB-II system, HOST-RESOURCES, Printer-MIB (RFC 3805)."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Final

from daemon.kernel.reading import Meter, Supply, Unit

SYS_DESCR: Final = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID: Final = "1.3.6.1.2.1.1.2.0"
HR_DEVICE_DESCR: Final = "1.3.6.1.2.1.25.3.2.1.3.1"
IF_PHYS_ADDRESSES: Final = ("1.3.6.1.2.1.2.2.1.6.1", "1.3.6.1.2.1.2.2.1.6.2")
PRT_SERIAL: Final = "1.3.6.1.2.1.43.5.1.1.17.1"
PRT_GENERAL_PRINTER_NAME: Final = "1.3.6.1.2.1.43.5.1.1.16.1"
PRT_MARKER_LIFE_COUNT: Final = "1.3.6.1.2.1.43.10.2.1.4.1.1"
PRT_MARKER_COUNTER_UNIT: Final = "1.3.6.1.2.1.43.10.2.1.3.1.1"
# prtMarkerProcessColorants: 1 on a black-only marker (every mono device in ../shared/walks), 4 on colour ones.
PRT_MARKER_PROCESS_COLORANTS: Final = "1.3.6.1.2.1.43.10.2.1.6.1.1"

IDENTITY_OIDS: Final = (
    SYS_DESCR,
    SYS_OBJECT_ID,
    HR_DEVICE_DESCR,
    PRT_GENERAL_PRINTER_NAME,
    PRT_SERIAL,
    PRT_MARKER_LIFE_COUNT,
    PRT_MARKER_COUNTER_UNIT,
    PRT_MARKER_PROCESS_COLORANTS,
    *IF_PHYS_ADDRESSES,
)
# Strings a profile's patterns are tried on, in this order, when sysObjectID names no profile.
IDENTIFYING_STRINGS: Final = (
    ("sysDescr", SYS_DESCR),
    ("hrDeviceDescr", HR_DEVICE_DESCR),
    ("prtGeneralPrinterName", PRT_GENERAL_PRINTER_NAME),
)

SUPPLY_TYPE: Final = "1.3.6.1.2.1.43.11.1.1.5"
SUPPLY_DESCRIPTION: Final = "1.3.6.1.2.1.43.11.1.1.6"
SUPPLY_MAX_CAPACITY: Final = "1.3.6.1.2.1.43.11.1.1.8"
SUPPLY_LEVEL: Final = "1.3.6.1.2.1.43.11.1.1.9"
SUPPLY_COLUMNS: Final = (SUPPLY_TYPE, SUPPLY_DESCRIPTION, SUPPLY_MAX_CAPACITY, SUPPLY_LEVEL)

# prtMarkerCounterUnit -> (meter, unit, multiplier, divisor). Pages become `total`; a length
# counter (label and roll printers) becomes `length` in whole inches or centimetres.
COUNTER_UNITS: Final[dict[int, tuple[Meter, Unit, int, int]]] = {
    7: (Meter.TOTAL, Unit.IMPRESSIONS, 1, 1),
    8: (Meter.TOTAL, Unit.SHEETS, 1, 1),
    3: (Meter.LENGTH, Unit.INCHES, 1, 10_000),  # tenThousandthsOfInches
    4: (Meter.LENGTH, Unit.CM, 1, 10_000),  # micrometers
    16: (Meter.LENGTH, Unit.INCHES, 12, 1),  # feet
    17: (Meter.LENGTH, Unit.CM, 100, 1),  # meters
}
COUNTER_UNIT_NAMES: Final = {5: "characters", 6: "lines", 9: "dot rows", 11: "hours"}

# prtMarkerSuppliesTypeTC -> the word meterd uses.
_SUPPLY_KINDS: Final = {
    3: "toner",
    4: "waste_toner",
    5: "ink",
    6: "ink",
    7: "ribbon",
    8: "waste_ink",
    9: "drum",
    10: "developer",
    15: "fuser",
    20: "transfer",
    21: "toner",
    32: "staples",
}
_KIND_WORDS: Final = (
    ("waste", "waste"),
    ("toner", "toner"),
    ("ink", "ink"),
    ("drum", "drum"),
    ("imaging", "drum"),
    ("developer", "developer"),
    ("fuser", "fuser"),
    ("transfer", "transfer"),
    ("staple", "staples"),
    ("cartridge", "toner"),
)
_COLORS: Final = re.compile(r"\b(black|cyan|magenta|yellow)\b", re.IGNORECASE)
# Printer-MIB sentinels: -1 other, -2 unknown, -3 "some remaining". None of them is a level.
_LEVEL_SENTINELS: Final = frozenset({-1, -2, -3})


@lru_cache(maxsize=8192)
def supply(description: str, supply_type: int | None, max_capacity: int | None, level: int | None) -> Supply:
    """One prtMarkerSuppliesTable row as a Supply, its level in percent of capacity or None.

    Cached: a Supply is immutable, and rows repeat from poll to poll and printer to printer.
    """
    kind = _SUPPLY_KINDS.get(supply_type or 0) or _kind_from_words(description)
    color = _COLORS.search(description)
    return Supply(
        name=description,
        kind=kind,
        color=color.group(1).lower() if color else None,
        level_percent=level_percent(max_capacity, level),
    )


def level_percent(max_capacity: int | None, level: int | None) -> int | None:
    if max_capacity is None or level is None or max_capacity <= 0 or level in _LEVEL_SENTINELS or level < 0:
        return None
    percent = (Decimal(100) * level / max_capacity).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(0, min(100, int(percent)))


def _kind_from_words(description: str) -> str:
    lowered = description.lower()
    return next((kind for word, kind in _KIND_WORDS if word in lowered), "other")
