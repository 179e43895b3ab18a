"""Vendor profiles: data files saying which OIDs carry which canonical meter.

One TOML file per vendor in this directory. A profile names numeric OIDs only (no MIBs
are loaded), and may call one of the named decoders in ``collectors.snmp.decoders``;
that is the only code a profile can reach. The Printer-MIB baseline is not a profile:
every device gets it (``collectors.snmp.printer_mib``), a profile adds to it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from collectors.base import Meter, Unit
from daemon.errors import ConfigError

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


class Match(_Strict):
    """How a device is recognised: sysObjectID prefix first, then a sysDescr pattern."""

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


class TableCounter(_Strict):
    key: str
    meter: Meter
    unit: Unit = Unit.IMPRESSIONS


class CounterTable(_Strict):
    """A vendor table whose rows name their counter (Sharp, Ricoh) or are numbered by it (Canon).

    ``keys`` is the column holding each row's name or type code; without it the row's index
    (the OID suffix) is the key. ``values`` is the column holding the counts. Rows are
    matched by key, never by position, so models with other row layouts still read right.
    """

    values: Oid
    keys: Oid | None = None
    match: Literal["exact", "casefold"] = "casefold"
    counters: list[TableCounter] = Field(min_length=1)

    def lookup(self, key: str) -> TableCounter | None:
        wanted = key.strip().casefold() if self.match == "casefold" else key
        for counter in self.counters:
            have = counter.key.casefold() if self.match == "casefold" else counter.key
            if have == wanted:
                return counter
        return None


class BlobCounter(_Strict):
    code: int = Field(ge=0, le=255)
    meter: Meter
    unit: Unit = Unit.IMPRESSIONS


class CounterBlob(_Strict):
    """Counters packed into one OCTET STRING, taken apart by a named decoder."""

    oid: Oid
    decoder: Literal["brother_words"]
    counters: list[BlobCounter] = Field(min_length=1)


class Derived(_Strict):
    """A meter computed as the sum of others; reported marked ``derived``, only when all parts are there."""

    meter: Meter
    sum: list[Meter] = Field(min_length=2)


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


GENERIC: Final = Profile(name="generic", vendor="")


@dataclass(frozen=True, slots=True)
class Catalog:
    """All profiles, matched most-specific first."""

    profiles: tuple[Profile, ...]

    def match(self, sys_object_id: str | None, sys_descr: str | None) -> Profile:
        if sys_object_id:
            best: tuple[int, Profile] | None = None
            for profile in self.profiles:
                for prefix in profile.match.sys_object_id:
                    if (sys_object_id == prefix or sys_object_id.startswith(prefix + ".")) and (
                        best is None or len(prefix) > best[0]
                    ):
                        best = (len(prefix), profile)
            if best is not None:
                return best[1]
        if sys_descr:
            for profile in self.profiles:
                if any(re.search(pattern, sys_descr, re.IGNORECASE) for pattern in profile.match.sys_descr):
                    return profile
        return GENERIC

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
    profiles = [
        parse_profile(entry.name.removesuffix(".toml"), entry.read_text(encoding="utf-8"), f"profiles/{entry.name}")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".toml")
    ]
    return Catalog(tuple(profiles))
