"""Vendor profiles: data files saying which OIDs carry which canonical meter.

One TOML file per vendor in this directory. A profile names numeric OIDs only (no MIBs
are loaded), and may call one of the named decoders in ``collectors.snmp.decoders``;
that is the only code a profile can reach. The Printer-MIB baseline is not a profile:
every device gets it (``collectors.snmp.printer_mib``), a profile adds to it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources
from typing import Annotated, Final, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from daemon.kernel.errors import ConfigError
from daemon.kernel.reading import Meter, Unit

ENTERPRISES: Final = "1.3.6.1.4.1."
_OID = re.compile(r"^1\.3\.6\.1(\.\d+)+$")


def _numeric_oid(value: str) -> str:
    if not _OID.match(value):
        msg = f"{value!r} is not a numeric OID under 1.3.6.1"
        raise ValueError(msg)
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        msg = f"{value!r} is not a regular expression: {err}"
        raise ValueError(msg) from err
    return value


Oid = Annotated[str, AfterValidator(_numeric_oid)]
Regex = Annotated[str, AfterValidator(_regex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# How far an entry was checked (../shared/walks/vendor-oids.md): A a real walk or reading with
# known values, B the object's description in the vendor's MIB, C independent templates agree,
# D sources contradict each other. Every counter entry names one, so a dealer can tell which
# numbers were checked against a real device.
Evidence = Literal["A", "B", "C", "D"]


class Match(_Strict):
    """How a device is recognised: sysObjectID prefix first, then these patterns.

    The patterns are tried on sysDescr, then on hrDeviceDescr and the Printer-MIB's own
    strings: a printer behind a print server (ZebraNet, OkiLAN) often names itself only there.
    """

    sys_object_id: list[Oid] = Field(default_factory=list)
    sys_descr: list[Regex] = Field(default_factory=list)


class Brand(_Strict):
    """An OEM brand sold under another name (UTAX, TA Triumph-Adler on Kyocera engines)."""

    sys_descr: Regex
    vendor: str


class Identity(_Strict):
    """Where serial and model live; tried in order after the standard Printer-MIB / HR-MIB ones."""

    serial: list[Oid] = Field(default_factory=list)
    model: list[Oid] = Field(default_factory=list)
    # IEEE 1284 device-ID strings ("MFG:HP;MDL:LaserJet …;"): the model is read off MDL/MODEL.
    device_id: list[Oid] = Field(default_factory=list)
    model_prefix: list[Regex] = Field(default_factory=list, description="stripped from the model")
    # Some devices (FUJIFILM) name their model only in sysDescr.
    model_from_sys_descr: bool = False


class ScalarMeter(_Strict):
    """A meter read from one OID; the first OID in ``oids`` that answers wins."""

    meter: Meter
    oids: list[Oid] = Field(min_length=1)
    unit: Unit = Unit.IMPRESSIONS
    evidence: Evidence


# The column name a one-key table's key goes by (its ``keys`` column, or the row index).
KEY: Final = "key"
# A table counter's filter: column name -> the values a row may hold there.
Filter = dict[str, frozenset[str]]


class TableCounter(_Strict):
    """A meter read from the rows of a counter table that pass a filter; several rows are summed.

    ``key`` names the row of a table with one key column: ``key = "101"`` is
    ``where = { key = "101" }``. ``where`` filters on the table's named ``columns`` (Samsung:
    job type x colour; a one-key table's column is ``key``): a row passes when each named
    column holds one of the listed values, and whichever rows pass are added up
    (``where = { key = ["1.1", "2.1"] }`` adds up whichever of those rows the model has, so
    a printer without copier still gets mono). A meter summed over more than one row is
    reported marked ``derived``.
    """

    key: str | None = None
    where: dict[str, str | list[str]] | None = None
    meter: Meter
    unit: Unit = Unit.IMPRESSIONS
    evidence: Evidence
    # For a sum: which of the device's functions it holds (and leaves out), as for [[derived]].
    covers: str | None = None

    @model_validator(mode="after")
    def _one_filter(self) -> TableCounter:
        if (self.key is None) == (self.where is None):
            msg = "give either key (one-key table) or where (named columns), not both or neither"
            raise ValueError(msg)
        return self

    def filter(self) -> Filter:
        """Column name -> accepted values (casefolded by the caller's table when it matches so)."""
        wanted = {KEY: self.key} if self.key is not None else dict(self.where or {})
        return {column: frozenset([v] if isinstance(v, str) else v) for column, v in wanted.items()}


class CounterTable(_Strict):
    """A vendor counter table; rows named (Sharp, Ricoh), numbered (Canon) or told apart by several columns.

    ``keys`` is the column holding each row's name or type code; without it (and without
    ``columns``) the row's index (the OID suffix) is the key. ``columns`` names several key
    columns for ``where`` filters. ``values`` is the column holding the counts. Rows are
    matched by what they hold, never by position, so models with other row layouts still read right.
    """

    values: Oid
    keys: Oid | None = None
    columns: dict[str, Oid] = Field(default_factory=dict)
    match: Literal["exact", "casefold"] = "casefold"
    counters: list[TableCounter] = Field(min_length=1)

    @model_validator(mode="after")
    def _filters_name_columns(self) -> CounterTable:
        if self.keys is not None and self.columns:
            msg = "give keys (one key column) or columns (named key columns), not both"
            raise ValueError(msg)
        known = set(self.columns) if self.columns else {KEY}
        for counter in self.counters:
            unknown = set(counter.filter()) - known
            if unknown:
                msg = f"{counter.meter}: filters on {sorted(unknown)}, not a column of this table ({sorted(known)})"
                raise ValueError(msg)
        return self

    def key_columns(self) -> dict[str, str]:
        """Column name -> OID of every key column to walk (none when the row index is the key)."""
        if self.columns:
            return dict(self.columns)
        return {KEY: self.keys} if self.keys else {}

    def _norm(self, text: str) -> str:
        return text.strip().casefold() if self.match == "casefold" else text

    @cached_property
    def filters(self) -> tuple[tuple[TableCounter, Filter], ...]:
        """Each counter with its filter, the accepted values normalised once: rows are matched every poll."""
        return tuple(
            (counter, {column: frozenset(map(self._norm, values)) for column, values in counter.filter().items()})
            for counter in self.counters
        )

    def passes(self, accepted: Filter, row: Mapping[str, str]) -> bool:
        """Whether a row (column name -> text) passes a filter of :attr:`filters`."""
        return all(column in row and self._norm(row[column]) in values for column, values in accepted.items())

    def wanted(self, row: Mapping[str, str]) -> bool:
        """Whether any counter reads this row (the rest are not polled again)."""
        return any(self.passes(accepted, row) for _counter, accepted in self.filters)


class BlobCounter(_Strict):
    code: int = Field(ge=0, le=255)
    meter: Meter
    unit: Unit = Unit.IMPRESSIONS
    evidence: Evidence


class CounterBlob(_Strict):
    """Counters packed into one OCTET STRING, taken apart by a named decoder."""

    oid: Oid
    decoder: Literal["brother_words"]
    counters: list[BlobCounter] = Field(min_length=1)


class Derived(_Strict):
    """A meter computed as the sum of others; reported marked ``derived``, only when all parts are there.

    ``covers`` says which of the device's functions the sum counts (and what it leaves
    out), so whoever bills it knows what the number is.
    """

    meter: Meter
    sum: list[Meter] = Field(min_length=2)
    covers: str = Field(min_length=1)


class Borrowed(_Strict):
    """Another profile's counter entries (meters, tables, blobs, derived), read by this one too.

    FUJIFILM devices carry Xerox's counter MIB. Each borrowed entry's evidence is at best
    ``evidence``, the strength of the source that says this vendor shares them. Resolved
    when the catalog is built.
    """

    profile: str
    evidence: Evidence


class Profile(_Strict):
    name: str
    vendor: str
    match: Match = Field(default_factory=Match)
    brands: list[Brand] = Field(default_factory=list)
    identity: Identity = Field(default_factory=Identity)
    meters: list[ScalarMeter] = Field(default_factory=list)
    tables: list[CounterTable] = Field(default_factory=list)
    blobs: list[CounterBlob] = Field(default_factory=list)
    derived: list[Derived] = Field(default_factory=list)
    counters_from: Borrowed | None = None

    def scalar_oids(self) -> list[str]:
        """Every fixed OID this profile may read in a GET."""
        oids = [*self.identity.serial, *self.identity.model, *self.identity.device_id]
        oids += [oid for meter in self.meters for oid in meter.oids]
        oids += [blob.oid for blob in self.blobs]
        return oids

    def vendor_for(self, sys_descr: str) -> str:
        for brand in self.brands:
            if re.search(brand.sys_descr, sys_descr, re.IGNORECASE):
                return brand.vendor
        return self.vendor


_Entry = TypeVar("_Entry", ScalarMeter, TableCounter, BlobCounter)

GENERIC: Final = Profile(name="generic", vendor="")


@dataclass(frozen=True, slots=True)
class Identified:
    """The profile a device got and the rule that chose it ("sysObjectID 1.3.6.1.4.1.2435", …)."""

    profile: Profile
    rule: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """All profiles, matched most-specific first."""

    profiles: tuple[Profile, ...]

    def identify(self, sys_object_id: str | None, strings: Sequence[tuple[str, str | None]]) -> Identified:
        """The device's profile and the rule that chose it.

        By sysObjectID prefix (longest wins); else by the first of ``strings`` (name, text)
        a profile's patterns match, in the order given (sysDescr, hrDeviceDescr, the
        Printer-MIB's strings); else generic. A print server's own sysObjectID (ZebraNet's is
        enterprise 683) names no printer vendor, so the strings still get their turn.
        """
        by_oid = self._by_sys_object_id(sys_object_id) if sys_object_id else None
        if by_oid is not None:
            return by_oid
        for name, text in strings:
            for profile, pattern in self._patterns:
                if text and re.search(pattern, text, re.IGNORECASE):
                    return Identified(profile, f"{name} {text!r} matches {pattern!r}")
        return Identified(GENERIC, "no rule matched (sysObjectID, sysDescr, hrDeviceDescr, Printer-MIB)")

    def _by_sys_object_id(self, sys_object_id: str) -> Identified | None:
        best: tuple[str, Profile] | None = None
        for profile in self.profiles:
            for prefix in profile.match.sys_object_id:
                under = sys_object_id == prefix or sys_object_id.startswith(prefix + ".")
                if under and (best is None or len(prefix) > len(best[0])):
                    best = (prefix, profile)
        return None if best is None else Identified(best[1], f"sysObjectID {sys_object_id} under {best[0]}")

    @property
    def _patterns(self) -> list[tuple[Profile, str]]:
        return [(profile, pattern) for profile in self.profiles for pattern in profile.match.sys_descr]

    def by_name(self, name: str) -> Profile:
        for profile in self.profiles:
            if profile.name == name:
                return profile
        msg = f"no vendor profile named {name!r}"
        raise KeyError(msg)


def parse_profile(name: str, text: str, origin: str) -> Profile:
    """One profile file's text as a validated Profile.

    Raises:
        ConfigError: the file is not TOML or does not fit the profile schema (key named).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(origin, "(file)", f"not valid TOML: {err}") from err
    try:
        return Profile.model_validate({"name": name, **data})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(origin, key, first["msg"]) from err


@cache
def builtin_catalog() -> Catalog:
    """The profiles shipped in this package."""
    folder = resources.files(__name__)
    profiles = {
        entry.name.removesuffix(".toml"): parse_profile(
            entry.name.removesuffix(".toml"), entry.read_text(encoding="utf-8"), f"profiles/{entry.name}"
        )
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    }
    return Catalog(tuple(_with_borrowed_counters(profile, profiles) for profile in profiles.values()))


def _with_borrowed_counters(profile: Profile, profiles: Mapping[str, Profile]) -> Profile:
    """``profile`` with the counter entries of its ``counters_from`` profile appended.

    Raises:
        ConfigError: ``counters_from`` names no profile.
    """
    borrowed = profile.counters_from
    if borrowed is None:
        return profile
    lender = profiles.get(borrowed.profile)
    if lender is None:
        file = f"profiles/{profile.name}.toml"
        raise ConfigError(file, "counters_from.profile", f"no profile named {borrowed.profile!r}")

    weakest = borrowed.evidence

    def capped(entry: _Entry) -> _Entry:
        return entry.model_copy(update={"evidence": max(entry.evidence, weakest)})  # "A" < "B" < …

    tables = [
        table.model_copy(update={"counters": [capped(counter) for counter in table.counters]})
        for table in lender.tables
    ]
    blobs = [
        blob.model_copy(update={"counters": [capped(counter) for counter in blob.counters]}) for blob in lender.blobs
    ]
    return profile.model_copy(
        update={
            "meters": [*profile.meters, *(capped(meter) for meter in lender.meters)],
            "tables": [*profile.tables, *tables],
            "blobs": [*profile.blobs, *blobs],
            "derived": [*profile.derived, *lender.derived],
        }
    )
