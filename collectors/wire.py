"""The reading wire format, version 1 (../shared/spec/reading-v1.md): bytes <-> Reading.

Used by everything that prints, publishes or accepts readings, so one
definition decides what is valid.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from collectors.base import ReadingSink
from daemon.kernel.errors import PayloadError
from daemon.kernel.reading import MAX_COUNTER, DeviceInfo, Meter, MeterValue, Reading, Supply, Unit

SCHEMA: Final = "meterd.reading/1"
DEFAULT_MAX_BYTES: Final = 64 * 1024
# A reading is 3 levels deep (object, meters list, meter object); anything far deeper is an attack.
MAX_DEPTH: Final = 8


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _WireDevice(_Strict):
    serial: str = Field(min_length=1, max_length=128)
    vendor: str | None = Field(default=None, max_length=128)
    model: str | None = Field(default=None, max_length=256)
    address: str | None = Field(default=None, max_length=256)


class _WireMeter(_Strict):
    meter: Meter
    value: int = Field(ge=0, le=MAX_COUNTER, strict=True)
    unit: Unit = Unit.IMPRESSIONS  # meters.md: impressions is the default, so a sender may leave it out
    derived: bool = False


class _WireSupply(_Strict):
    name: str = Field(max_length=256)
    kind: str = Field(max_length=64)
    color: str | None = Field(default=None, max_length=64)
    level_percent: int | None = Field(ge=0, le=100, strict=True)


class WireReading(_Strict):
    schema_: Literal["meterd.reading/1"] = Field(alias="schema")
    id: str = Field(min_length=1, max_length=64)
    site: str = Field(min_length=1, max_length=128)
    taken_at: AwareDatetime
    device: _WireDevice
    meters: list[_WireMeter] = Field(max_length=64)
    supplies: list[_WireSupply] = Field(default_factory=list, max_length=64)


def encode(reading: Reading) -> dict[str, Any]:
    """The JSON-ready object for one reading."""
    device: dict[str, Any] = {"serial": reading.device.key}
    for name in ("vendor", "model", "address"):
        if (value := getattr(reading.device, name)) is not None:
            device[name] = value
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "id": reading.id,
        "site": reading.site,
        "taken_at": format_time(reading.taken_at_utc),
        "device": device,
        "meters": [_encode_meter(m) for m in reading.meters],
    }
    if reading.supplies:
        out["supplies"] = [
            {"name": s.name, "kind": s.kind, "color": s.color, "level_percent": s.level_percent}
            for s in reading.supplies
        ]
    return out


def to_bytes(reading: Reading) -> bytes:
    """One reading as compact reading-v1 JSON bytes (what is published and what a dead letter keeps)."""
    return json.dumps(encode(reading), separators=(",", ":")).encode()


def format_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _encode_meter(value: MeterValue) -> dict[str, Any]:
    out: dict[str, Any] = {"meter": str(value.meter), "value": value.value, "unit": str(value.unit)}
    if value.derived:
        out["derived"] = True
    return out


async def decode_batch(
    sink: ReadingSink,
    items: Iterable[tuple[str, bytes]],
    *,
    source: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    check: Callable[[Reading, str], None] | None = None,
) -> tuple[list[Reading], int]:
    """Decode ``(origin, raw)`` pairs the one way every input is decoded (hub and ``meterd ingest``).

    What fails (to decode, or ``check(reading, origin)``, which raises PayloadError) is
    dead-lettered through ``sink``; returns the valid readings, for one ``sink.emit``, and
    how many were rejected.
    """
    readings: list[Reading] = []
    rejected = 0
    for origin, raw in items:
        try:
            reading = decode(raw, source=source, max_bytes=max_bytes)
            if check is not None:
                check(reading, origin)
        except PayloadError as err:
            rejected += 1
            await sink.reject(raw, origin=origin, source=source, error=err)
        else:
            readings.append(reading)
    return readings, rejected


def decode(raw: bytes, *, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Reading:
    """Validate one reading-v1 object.

    Raises:
        PayloadError: with a fixed reason code; the caller dead-letters the raw bytes.
    """
    return from_object(parse_json(raw, max_bytes=max_bytes), source=source)


def parse_json(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:  # noqa: ANN401 - JSON is untyped here
    """Bytes to a JSON value with the size, encoding and nesting checks every input gets."""
    if len(raw) > max_bytes:
        raise PayloadError("oversize", f"{len(raw)} bytes is over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PayloadError("invalid_utf8", f"not UTF-8 at byte {err.start}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise PayloadError("invalid_json", str(err)) from None
    except RecursionError:
        # The size cap bounds the work; the C parser's recursion limit catches the deepest bombs.
        raise PayloadError("too_deep", "JSON nested too deeply") from None
    # Depth can be no more than the number of opening brackets: most readings skip the walk.
    if text.count("{") + text.count("[") > MAX_DEPTH and _nesting(value) > MAX_DEPTH:
        raise PayloadError("too_deep", f"JSON nested deeper than {MAX_DEPTH} levels")
    return value


def _nesting(value: Any) -> int:  # noqa: ANN401 - any JSON value
    """Depth of containers in a parsed JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:  # past the limit the answer is known; stop walking
            stack.extend((child, depth + 1) for child in children)
    return deepest


def from_object(obj: Any, *, source: str) -> Reading:  # noqa: ANN401 - the decoding edge
    """Validate one already-parsed JSON object as a reading."""
    if not isinstance(obj, dict):
        raise PayloadError("schema_mismatch", "a reading must be a JSON object")
    try:
        wire = WireReading.model_validate(obj)
    except ValidationError as err:
        raise _payload_error(err) from None
    return Reading(
        id=wire.id,
        site=wire.site,
        taken_at=wire.taken_at,
        device=DeviceInfo(
            key=wire.device.serial,
            vendor=wire.device.vendor,
            model=wire.device.model,
            address=wire.device.address,
        ),
        meters=tuple(MeterValue(m.meter, m.value, m.unit, m.derived) for m in wire.meters),
        supplies=tuple(Supply(s.name, s.kind, s.color, s.level_percent) for s in wire.supplies),
        source=source,
    )


def _payload_error(err: ValidationError) -> PayloadError:
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    where = ".".join(loc) or "reading"
    detail = f"{where}: {first['msg']}"
    if loc[:1] == ["meters"] and loc[-1:] == ["meter"]:
        return PayloadError("unknown_meter", f"{where}: {first['input']!r} is not a meter word of meters.md")
    if loc[:1] == ["taken_at"]:
        return PayloadError("bad_timestamp", detail)
    if loc[-1:] in (["value"], ["level_percent"]):
        return PayloadError("bad_value", detail)
    if loc[:1] == ["schema"]:
        return PayloadError("unknown_schema", detail)
    return PayloadError("schema_mismatch", detail)
