"""The reading-v1 codec: valid readings round-trip; anything else is a PayloadError with a reason."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors import wire
from daemon.kernel.errors import PayloadError
from tests.factories import reading

SPEC_EXAMPLE: dict[str, Any] = {
    "schema": "meterd.reading/1",
    "id": "01JD3Z8W5Q8N3T9V6R2C4K7M1X",
    "site": "acme-hq",
    "taken_at": "2026-11-22T10:00:00Z",
    "device": {"serial": "VNCRC48198", "vendor": "HP", "model": "LaserJet MFP M130nw", "address": "10.0.4.21"},
    "meters": [
        {"meter": "total", "value": 15232, "unit": "impressions"},
        {"meter": "mono", "value": 15232, "unit": "impressions"},
        {"meter": "scan_total", "value": 1190, "unit": "images"},
    ],
    "supplies": [{"name": "Black Cartridge HP CF217A", "kind": "toner", "color": "black", "level_percent": 28}],
}


def _bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_spec_example_round_trips_exactly() -> None:
    decoded = wire.decode(_bytes(SPEC_EXAMPLE), source="mqtt")
    assert wire.encode(decoded) == SPEC_EXAMPLE


def test_a_meter_without_unit_is_in_impressions_as_meters_md_says() -> None:
    # Issue 17 item 18: meters.md calls impressions the default; reading-v1 never says unit is required.
    without = copy.deepcopy(SPEC_EXAMPLE)
    del without["meters"][0]["unit"]
    decoded = wire.decode(_bytes(without), source="mqtt")
    assert wire.encode(decoded) == SPEC_EXAMPLE  # stored and sent on with the unit spelled out


def test_encode_marks_derived_meters_only() -> None:
    encoded = wire.encode(reading())
    assert all("derived" not in m for m in encoded["meters"])
    assert encoded["taken_at"].endswith("Z")


def _mutated(path: list[str | int], value: object) -> bytes:
    obj = copy.deepcopy(SPEC_EXAMPLE)
    node: Any = obj
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return _bytes(obj)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_mutated(["meters", 0, "meter"], "clicks"), "unknown_meter"),
        (_mutated(["taken_at"], "2026-11-22T10:00:00"), "bad_timestamp"),
        (_mutated(["meters", 0, "value"], -1), "bad_value"),
        (_mutated(["meters", 0, "value"], 1.5), "bad_value"),
        (_mutated(["meters", 0, "value"], 2**63), "bad_value"),
        (_mutated(["meters", 0, "value"], "15232"), "bad_value"),
        (_mutated(["supplies", 0, "level_percent"], 101), "bad_value"),
        (_mutated(["schema"], "meterd.reading/2"), "unknown_schema"),
        (_mutated(["device", "colour"], "x"), "schema_mismatch"),
        (_mutated(["meters", 1, "meter"], "total"), "duplicate_meter"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[" * 50_000, "too_deep"),
        (b"[]", "schema_mismatch"),
        (b" " * (wire.DEFAULT_MAX_BYTES + 1), "oversize"),
    ],
)
def test_bad_payloads_are_rejected_with_their_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as caught:
        wire.decode(raw, source="mqtt")
    assert caught.value.reason == reason


def test_unknown_meter_message_names_the_word() -> None:
    with pytest.raises(PayloadError, match="'clicks' is not a meter word"):
        wire.decode(_mutated(["meters", 0, "meter"], "clicks"), source="mqtt")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_escape_as_anything_but_payload_error(raw: bytes) -> None:
    try:
        wire.decode(raw, source="fuzz")
    except PayloadError as err:
        assert err.reason


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["id", "site", "taken_at", "device", "meters", "supplies", "schema"]), _json)
def test_mutated_valid_readings_decode_or_are_rejected(field: str, value: object) -> None:
    try:
        decoded = wire.decode(_mutated([field], value), source="fuzz")
    except PayloadError as err:
        assert err.reason
    else:
        assert wire.encode(decoded)["id"] == decoded.id
