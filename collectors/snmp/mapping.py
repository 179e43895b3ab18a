"""What a device answered, through its profile, into one Reading. Pure: no I/O here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Final

from collectors.snmp import printer_mib as pm
from collectors.snmp.client import Value
from collectors.snmp.decoders import brother_words
from collectors.snmp.profiles import CounterBlob, Profile
from collectors.snmp.status import DeviceStatus
from collectors.snmp.text import display_text
from daemon.kernel.errors import PayloadError
from daemon.kernel.reading import MAX_COUNTER, DeviceInfo, Meter, MeterValue, Reading, Supply, Unit

_SERIAL_IN_DESCR: Final = re.compile(r"\bS/?N\s*[:=]\s*([A-Za-z0-9][A-Za-z0-9-]{3,})")
_SERIES: Final = re.compile(r"\s+series\b", re.IGNORECASE)
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_DIGITS: Final = re.compile(rb"^\s*\d+\s*$")


@dataclass(frozen=True, slots=True)
class TableRow:
    # (column name, text) per key column of the profile's table: ("key", "101"), or ("job", "1"), ("colour", "3").
    keys: tuple[tuple[str, str], ...]
    value: Value

    def label(self) -> str:
        return ", ".join(text for _column, text in self.keys)


@dataclass(slots=True)
class DeviceAnswers:
    """Raw answers of one device: scalars by OID, counter-table rows, supply rows (column -> value)."""

    scalars: dict[str, Value]
    tables: list[dict[str, TableRow]] = field(default_factory=list)
    supplies: dict[str, dict[str, Value]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceReport:
    reading: Reading
    profile: str
    # The identification rule that chose the profile ("sysDescr 'ZebraNet Wired PS' matches …").
    matched_by: str = ""
    # What could not be read, one line each ("print_mono: 1.3.6… answered an OCTET STRING"):
    # logged by the caller; the rest of the reading stands.
    problems: tuple[str, ...] = ()
    # Status and faults as read at this poll (None: the device answers none of them). Not part of the
    # reading: the wire format (reading-v1) has no place for it.
    status: DeviceStatus | None = None


def text_of(value: Value | None) -> str | None:
    """A display string, control characters dropped (HP's PML strings start with a type/length pair)."""
    if isinstance(value, bytes):
        return _clean_text(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


@lru_cache(maxsize=16_384)
def _clean_text(raw: bytes) -> str | None:
    # Model names, serials and supply names come back the same every poll of every printer.
    return _CONTROL.sub("", display_text(raw)).strip() or None


def counter_of(value: Value | None, source: str) -> int:
    """A counter value as a non-negative int.

    Raises:
        PayloadError: ``bad_value``, saying what the device sent instead.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= MAX_COUNTER:
            return value
        raise PayloadError("bad_value", f"{source} answered {value}, outside 0..2^63-1")
    if isinstance(value, bytes) and _DIGITS.match(value):
        return int(value)  # some firmware sends counters as decimal text; that is still the count
    kind = "an OCTET STRING" if isinstance(value, bytes) else "an OBJECT IDENTIFIER"
    shown = display_text(value)[:40] if isinstance(value, bytes) else value
    raise PayloadError("bad_value", f"{source} answered {kind} ({shown!r}), not a counter")


def build_report(
    profile: Profile,
    answers: DeviceAnswers,
    *,
    site: str,
    address: str,
    taken_at: datetime,
    source: str = "snmp",
    matched_by: str = "",
) -> DeviceReport:
    problems: list[str] = []
    meters = _meters(profile, answers, problems)
    sys_descr = text_of(answers.scalars.get(pm.SYS_DESCR)) or ""
    device = DeviceInfo(
        key=_device_key(profile, answers.scalars, sys_descr, address),
        vendor=(profile.vendor_for(sys_descr) or None),
        model=_model(profile, answers.scalars, sys_descr),
        address=address,
    )
    reading = Reading(
        site=site,
        taken_at=taken_at,
        device=device,
        meters=tuple(meters.values()),
        supplies=_supplies(answers.supplies),
        source=source,
    )
    return DeviceReport(reading=reading, profile=profile.name, problems=tuple(problems), matched_by=matched_by)


class _MeterBag:
    """Meters found so far; the first source of a meter wins, a bad value becomes a problem line."""

    def __init__(self, problems: list[str]) -> None:
        self.found: dict[Meter, MeterValue] = {}
        self.problems = problems

    def add(self, meter: Meter, raw: Value, unit: Unit, source: str) -> None:
        self.add_sum(meter, [(raw, source)], unit)

    def add_sum(self, meter: Meter, parts: list[tuple[Value, str]], unit: Unit) -> None:
        """One value, or the sum of several (then marked ``derived``: the device gave no such number)."""
        if meter in self.found or not parts:
            return
        try:
            total = sum(counter_of(raw, source) for raw, source in parts)
        except PayloadError as err:
            self.problems.append(f"{meter}: {err.detail}")
            return
        self.found[meter] = MeterValue(meter, total, unit, derived=len(parts) > 1)


def _meters(profile: Profile, answers: DeviceAnswers, problems: list[str]) -> dict[Meter, MeterValue]:
    bag = _MeterBag(problems)
    scalars = answers.scalars
    for scalar in profile.meters:
        for oid in scalar.oids:  # the first OID that answered
            if oid in scalars:
                bag.add(scalar.meter, scalars[oid], scalar.unit, oid)
                break
    for table, rows in zip(profile.tables, answers.tables, strict=False):
        keyed = [(suffix, row, dict(row.keys)) for suffix, row in rows.items()]
        for counter, accepted in table.filters:
            parts = [
                (row.value, f"{table.values}.{suffix} ({row.label()})")
                for suffix, row, keys in keyed
                if table.passes(accepted, keys)
            ]
            bag.add_sum(counter.meter, parts, counter.unit)
    for blob in profile.blobs:
        _blob_meters(blob, scalars.get(blob.oid), bag)
    _printer_mib_life_count(scalars, bag.found, problems)
    _add_derived(profile, bag.found)
    _black_only_mono(scalars, bag.found)
    return bag.found


def _black_only_mono(scalars: dict[str, Value], found: dict[Meter, MeterValue]) -> None:
    """On a black-only marker every page is mono: `mono` = the page total, marked derived.

    Without it a mono printer reporting only `total` bills nothing on a contract's mono
    line. Real mono devices agree: the M130nw's own mono counter equals its total (15,232),
    so does the MX-M266NV's (90,474); both have prtMarkerProcessColorants 1.
    """
    total = found.get(Meter.TOTAL)
    if scalars.get(pm.PRT_MARKER_PROCESS_COLORANTS) == 1 and total is not None and Meter.MONO not in found:
        found[Meter.MONO] = MeterValue(Meter.MONO, total.value, total.unit, derived=True)


def _add_derived(profile: Profile, found: dict[Meter, MeterValue]) -> None:
    """The profile's declared sums, where every part was read in one unit and the device gave no such meter."""
    for derived in profile.derived:
        if derived.meter in found:
            continue
        parts = [found.get(meter) for meter in derived.sum]
        if all(parts) and len(units := {part.unit for part in parts if part}) == 1:
            total = sum(part.value for part in parts if part)
            found[derived.meter] = MeterValue(derived.meter, total, units.pop(), derived=True)


def _blob_meters(blob: CounterBlob, raw: Value | None, bag: _MeterBag) -> None:
    if raw is None:
        return
    if not isinstance(raw, bytes):
        bag.problems.append(f"{blob.oid}: expected a counter blob (OCTET STRING), got {raw!r}")
        return
    try:
        words = brother_words(raw)
    except PayloadError as err:
        bag.problems.append(f"{blob.oid}: {err.detail}")
        return
    for counter in blob.counters:
        if counter.code in words:
            bag.add(counter.meter, words[counter.code], counter.unit, f"{blob.oid} word {counter.code:#04x}")


def _printer_mib_life_count(scalars: dict[str, Value], found: dict[Meter, MeterValue], problems: list[str]) -> None:
    """The Printer-MIB life count in its prtMarkerCounterUnit: `total` for pages, `length` for roll printers."""
    raw = scalars.get(pm.PRT_MARKER_LIFE_COUNT)
    if raw is None:
        return
    unit_code = scalars.get(pm.PRT_MARKER_COUNTER_UNIT, 7)
    if not isinstance(unit_code, int) or unit_code not in pm.COUNTER_UNITS:
        name = pm.COUNTER_UNIT_NAMES.get(unit_code, str(unit_code)) if isinstance(unit_code, int) else unit_code
        problems.append(f"prtMarkerLifeCount counts {name!r}, not pages or length: not reported")
        return
    meter, unit, multiplier, divisor = pm.COUNTER_UNITS[unit_code]
    if meter in found:
        return
    try:
        value = counter_of(raw, pm.PRT_MARKER_LIFE_COUNT)
    except PayloadError as err:
        problems.append(f"{meter}: {err.detail}")
        return
    found[meter] = MeterValue(meter, value * multiplier // divisor, unit)


def _device_key(profile: Profile, scalars: dict[str, Value], sys_descr: str, address: str) -> str:
    """Serial from prtGeneralSerialNumber, the profile's OIDs, then sysDescr; else MAC; else address."""
    for oid in (pm.PRT_SERIAL, *profile.identity.serial):
        serial = text_of(scalars.get(oid))
        if serial:
            return serial
    in_descr = _SERIAL_IN_DESCR.search(sys_descr)
    if in_descr:
        return in_descr.group(1)
    for oid in pm.IF_PHYS_ADDRESSES:
        mac = scalars.get(oid)
        if isinstance(mac, bytes) and len(mac) == 6 and any(mac):  # noqa: PLR2004 - an Ethernet address
            return "mac:" + ":".join(f"{byte:02x}" for byte in mac)
    return f"addr:{address}"


def _model(profile: Profile, scalars: dict[str, Value], sys_descr: str) -> str | None:
    candidates = [text_of(scalars.get(oid)) for oid in profile.identity.model]
    candidates += [_device_id_model(text_of(scalars.get(oid))) for oid in profile.identity.device_id]
    candidates.append(text_of(scalars.get(pm.HR_DEVICE_DESCR)))
    if profile.identity.model_from_sys_descr:
        candidates.append(sys_descr)
    model = next((c for c in candidates if c), None)
    if model is None:
        return None
    for prefix in profile.identity.model_prefix:
        model = re.sub(prefix, "", model, count=1, flags=re.IGNORECASE)
    return _SERIES.sub("", model).strip() or None


def _device_id_model(device_id: str | None) -> str | None:
    """MDL (or MODEL) out of an IEEE 1284 device ID string."""
    for part in (device_id or "").split(";"):
        key, _, value = part.partition(":")
        if key.strip().upper() in {"MDL", "MODEL"} and value.strip():
            return value.strip()
    return None


def _supplies(rows: dict[str, dict[str, Value]]) -> tuple[Supply, ...]:
    supplies = []
    for row in rows.values():
        description = text_of(row.get(pm.SUPPLY_DESCRIPTION))
        if not description:
            continue
        supplies.append(
            pm.supply(
                description,
                _int_or_none(row.get(pm.SUPPLY_TYPE)),
                _int_or_none(row.get(pm.SUPPLY_MAX_CAPACITY)),
                _int_or_none(row.get(pm.SUPPLY_LEVEL)),
            )
        )
    return tuple(supplies)


def _int_or_none(value: Value | None) -> int | None:
    return value if isinstance(value, int) else None
