"""Profile files, the Brother decoder and supply levels: pure units."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.snmp.decoders import brother_blob, brother_words
from collectors.snmp.printer_mib import level_percent, supply
from collectors.snmp.profiles import builtin_catalog, parse_profile
from daemon.errors import ConfigError, PayloadError

REQUIRED_VENDORS = {
    "hp", "canon", "ricoh", "konica_minolta", "kyocera", "sharp", "xerox", "fujifilm",
    "brother", "lexmark", "samsung", "epson", "oki", "toshiba",
}  # fmt: skip


def test_every_required_vendor_has_a_profile_file() -> None:
    assert {profile.name for profile in builtin_catalog().profiles} >= REQUIRED_VENDORS


@pytest.mark.parametrize(
    ("sys_object_id", "sys_descr", "profile"),
    [
        ("1.3.6.1.4.1.18334.1.1.1.2.1.117.2.2", "KONICA MINOLTA bizhub C3110", "konica_minolta"),
        ("1.3.6.1.4.1.2001.1.1.1.1", "", "oki"),
        ("1.3.6.1.4.1.11.2.3.9.1", "", "hp"),
        ("1.3.6.1.4.1.110", "", "generic"),  # 110 is not a prefix of 11.x: whole arcs only
        (None, "UTAX 4006ci", "kyocera"),
        ("1.3.6.1.4.1.10642.1.1", "ZTC ZD420-300dpi ZPL", "zebra"),
        (None, "Zebra ZD421-203dpi ZPL", "zebra"),
        (None, "something else", "generic"),
    ],
)
def test_matching(sys_object_id: str | None, sys_descr: str, profile: str) -> None:
    assert builtin_catalog().match(sys_object_id, sys_descr).name == profile


def test_a_bad_profile_names_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"acme\.toml: meters\.0\.oids\.0: .*not a numeric OID"):
        parse_profile("acme", 'vendor = "Acme"\n[[meters]]\nmeter = "total"\noids = ["sysDescr.0"]\n', "acme.toml")


def test_a_profile_with_an_unknown_meter_word_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"meters\.0\.meter"):
        parse_profile("acme", 'vendor = "Acme"\n[[meters]]\nmeter = "pages"\noids = ["1.3.6.1.4.1.1.0"]\n', "acme.toml")


@given(st.dictionaries(st.integers(0, 255), st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_brother_words_round_trip(counters: dict[int, int]) -> None:
    assert brother_words(brother_blob(counters)) == counters


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (brother_blob({0: 5})[:-1] + b"\x00", "checksum"),
        (brother_blob({0: 5})[:-2], "whole number"),
        (b"\x00\x02\x04\x00\x00\x00\x05\x0b", "word 0 starts 00 02 04"),
    ],
)
def test_brother_words_refuse_damaged_blobs(blob: bytes, match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        brother_words(blob)


@pytest.mark.parametrize(
    ("max_capacity", "level", "percent"),
    [(3000, 2400, 80), (45000, 22050, 49), (100, 1, 1), (200, 1, 1), (200, 3, 2), (100, -3, None), (-2, 0, None),
     (100, -2, None), (0, 0, None), (100, 150, 100), (None, 10, None)],
)  # fmt: skip
def test_level_percent(max_capacity: int | None, level: int | None, percent: int | None) -> None:
    assert level_percent(max_capacity, level) == percent


def test_supply_kind_and_color_without_a_type_column() -> None:
    assert supply("Toner (Magenta)", None, 100, 50) == supply("Toner (Magenta)", 3, 100, 50)
    assert supply("Toner (Magenta)", None, 100, 50).color == "magenta"
    assert supply("Maintenance Kit", None, 10, 5).kind == "other"
