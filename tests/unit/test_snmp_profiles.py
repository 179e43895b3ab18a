"""Profile files, the Brother decoder and supply levels: pure units."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collectors.snmp import printer_mib as pm
from collectors.snmp.client import Value
from collectors.snmp.collector import _table_rows
from collectors.snmp.decoders import brother_blob, brother_words
from collectors.snmp.mapping import DeviceAnswers, TableRow, build_report
from collectors.snmp.printer_mib import level_percent, supply
from collectors.snmp.profiles import KEY, Profile, builtin_catalog, parse_profile
from daemon.kernel.errors import ConfigError, PayloadError
from daemon.kernel.reading import Meter

REQUIRED_VENDORS = {
    "hp",
    "canon",
    "ricoh",
    "konica_minolta",
    "kyocera",
    "sharp",
    "xerox",
    "fujifilm",
    "brother",
    "lexmark",
    "samsung",
    "epson",
    "oki",
    "toshiba",
}


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
    assert builtin_catalog().identify(sys_object_id, [("sysDescr", sys_descr)]).profile.name == profile


def test_a_bad_profile_names_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"acme\.toml: meters\.0\.oids\.0: .*not a numeric OID"):
        parse_profile("acme", 'vendor = "Acme"\n[[meters]]\nmeter = "total"\noids = ["sysDescr.0"]\n', "acme.toml")


def test_a_profile_with_an_unknown_meter_word_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"meters\.0\.meter"):
        parse_profile("acme", 'vendor = "Acme"\n[[meters]]\nmeter = "pages"\noids = ["1.3.6.1.4.1.1.0"]\n', "acme.toml")


@given(st.dictionaries(st.integers(0, 255), st.integers(0, 2**32 - 1), min_size=1, max_size=20))
def test_brother_words_round_trip(counters: dict[int, int]) -> None:
    assert brother_words(brother_blob(counters)) == counters


def test_brother_words_take_the_real_blob_whatever_its_last_byte() -> None:
    """The bytes bieniu/brother quotes from a real printer (brother/__init__.py, _get_data).

    They end 0xff while the preceding bytes sum to 0x..01: no checksum is kept there.
    """
    real = (
        b'c\x01\x04\x00\x00\x00\x01\x11\x01\x04\x00\x00\x05,A\x01\x04\x00\x00"\xc41\x01\x04\x00\x00\x00\x01'
        b"o\x01\x04\x00\x00\x19\x00\x81\x01\x04\x00\x00\x00F\x86\x01\x04\x00\x00\x00\n\xff"
    )
    assert sum(real[:-1]) & 0xFF != real[-1]
    assert brother_words(real) == {0x63: 1, 0x11: 1324, 0x41: 8900, 0x31: 1, 0x6F: 6400, 0x81: 70, 0x86: 10}


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (brother_blob({0: 5})[:-2], "whole number"),
        (b"\x00\x02\x04\x00\x00\x00\x05\x0b", "word 0 starts 00 02 04"),
    ],
)
def test_brother_words_refuse_damaged_blobs(blob: bytes, match: str) -> None:
    with pytest.raises(PayloadError, match=match):
        brother_words(blob)


@pytest.mark.parametrize(
    ("max_capacity", "level", "percent"),
    [
        (3000, 2400, 80),
        (45000, 22050, 49),
        (100, 1, 1),
        (200, 1, 1),
        (200, 3, 2),
        (100, -3, None),
        (-2, 0, None),
        (100, -2, None),
        (0, 0, None),
        (100, 150, 100),
        (None, 10, None),
    ],
)
def test_level_percent(max_capacity: int | None, level: int | None, percent: int | None) -> None:
    assert level_percent(max_capacity, level) == percent


def test_supply_kind_and_color_without_a_type_column() -> None:
    assert supply("Toner (Magenta)", None, 100, 50) == supply("Toner (Magenta)", 3, 100, 50)
    assert supply("Toner (Magenta)", None, 100, 50).color == "magenta"
    assert supply("Maintenance Kit", None, 10, 5).kind == "other"


def _answers(scalars: dict[str, Value], *tables: dict[str, TableRow]) -> DeviceAnswers:
    return DeviceAnswers(scalars={pm.SYS_DESCR: b"test", **scalars}, tables=list(tables))


def _read(profile: str, answers: DeviceAnswers) -> dict[str, tuple[int, str, bool]]:
    report = build_report(
        builtin_catalog().by_name(profile), answers, site="t", address="192.0.2.1", taken_at=datetime.now(UTC)
    )
    assert report.problems == ()
    return {m.meter.value: (m.value, m.unit.value, m.derived) for m in report.reading.meters}


def _one_key_rows(values: dict[str, int]) -> dict[str, TableRow]:
    """Rows of a one-key table (row key = index or key column), as the probe hands them on."""
    return {key: TableRow(((KEY, key),), value) for key, value in values.items()}


def _walked_rows(profile: str, walked: dict[str, dict[str, Value]]) -> dict[str, TableRow]:
    """The rows of the profile's first table, taken from walked columns as a probe takes them."""
    table = builtin_catalog().by_name(profile).tables[0]
    return {suffix: TableRow(keys, value) for suffix, (keys, _oid, value) in _table_rows(walked, table).items()}


def test_every_counter_entry_of_every_profile_names_its_evidence() -> None:
    """Evidence is part of the schema: an entry without it does not load (issue 17, item 24)."""
    with pytest.raises(ConfigError, match=r"acme\.toml: meters\.0\.evidence"):
        parse_profile("acme", 'vendor = "A"\n[[meters]]\nmeter = "total"\noids = ["1.3.6.1.4.1.1.0"]\n', "acme.toml")
    for profile in builtin_catalog().profiles:
        entries = [
            *profile.meters,
            *(c for t in profile.tables for c in t.counters),
            *(c for b in profile.blobs for c in b.counters),
        ]
        assert all(entry.evidence in "ABCD" for entry in entries), profile.name


def test_a_derived_meter_must_say_what_it_covers() -> None:
    text = 'vendor = "A"\n[[derived]]\nmeter = "mono"\nsum = ["print_mono", "copy_mono"]\n'
    with pytest.raises(ConfigError, match=r"derived\.0\.covers"):
        parse_profile("acme", text, "acme.toml")


def test_a_table_filter_must_name_a_column_of_its_table() -> None:
    text = (
        'vendor = "A"\n[[tables]]\nvalues = "1.3.6.1.4.1.1.7"\ncolumns = { job = "1.3.6.1.4.1.1.2" }\n'
        '[[tables.counters]]\nmeter = "mono"\nwhere = { colour = "3" }\nevidence = "B"\n'
    )
    with pytest.raises(ConfigError, match=r"filters on \['colour'\], not a column"):
        parse_profile("acme", text, "acme.toml")


SAMSUNG = "1.3.6.1.4.1.236.11.5.11.53.11.2.1"


def test_samsung_meters_are_sums_over_rows_filtered_by_job_type_and_colour() -> None:
    """scmHrDevCountTable (SAMSUNG-HOST-RESOURCES-EXT-MIB): rows per job x size x duplex x colour x unit."""
    rows = [  # (row, job, colour, unit 7 impressions / 8 sheets, value): rows of one job, colour and unit are summed
        ("1.1", 1, 3, 7, 100),
        ("1.2", 1, 3, 7, 20),
        ("1.3", 1, 1, 7, 7),
        ("1.4", 2, 3, 7, 40),
        ("1.5", 2, 1, 7, 3),
        ("1.6", 3, 3, 7, 5),
        ("1.7", 5, 1, 7, 900),
        ("1.8", 6, 3, 7, 2),
        ("1.9", 1, 3, 8, 70),
    ]
    columns = {2: 1, 6: 2, 4: 3, 7: 4}  # column -> position in a row tuple
    walked: dict[str, dict[str, Value]] = {
        f"{SAMSUNG}.{column}": {f"{SAMSUNG}.{column}.{row[0]}": row[at] for row in rows}
        for column, at in columns.items()
    }
    meters = _read("samsung", _answers({}, _walked_rows("samsung", walked)))
    assert meters["print_mono"] == (120, "impressions", True)  # A4 + letter; the sheets row is never added in
    assert meters["print_color"] == (7, "impressions", False)  # one row: the device's own number
    assert meters["copy_mono"] == (40, "impressions", False)
    assert meters["fax_total"] == (5, "impressions", False)
    assert meters["mono"] == (100 + 20 + 40 + 5 + 2, "impressions", True)  # print, copy, fax in, report; not scan
    assert meters["color"] == (7 + 3, "impressions", True)
    assert "color_single" not in meters  # no row has colour 2: no zero padding


def test_samsung_counting_only_sheets_reports_sheets() -> None:
    walked: dict[str, dict[str, Value]] = {
        f"{SAMSUNG}.2": {f"{SAMSUNG}.2.1.1": 1},
        f"{SAMSUNG}.6": {f"{SAMSUNG}.6.1.1": 3},
        f"{SAMSUNG}.4": {f"{SAMSUNG}.4.1.1": 8},
        f"{SAMSUNG}.7": {f"{SAMSUNG}.7.1.1": 55},
    }
    assert _read("samsung", _answers({}, _walked_rows("samsung", walked)))["print_mono"] == (55, "sheets", False)


LEXMARK_MPS = "1.3.6.1.4.1.641.6.4.2.1.1"


def test_lexmark_mps_table_is_read_in_sides_never_sheets() -> None:
    """paperGeneralCountTable: one row per type and unit (UnitsTC 4 sides, 5 sheets); sides are impressions."""
    rows = [("1.1", 3, 4, 400), ("1.2", 3, 5, 300), ("1.3", 4, 4, 210), ("1.4", 4, 5, 150), ("1.5", 17, 4, 390)]
    walked: dict[str, dict[str, Value]] = {
        f"{LEXMARK_MPS}.2": {f"{LEXMARK_MPS}.2.{row}": kind for row, kind, _u, _v in rows},
        f"{LEXMARK_MPS}.3": {f"{LEXMARK_MPS}.3.{row}": unit for row, _k, unit, _v in rows},
        f"{LEXMARK_MPS}.4": {f"{LEXMARK_MPS}.4.{row}": value for row, _k, _u, value in rows},
    }
    meters = _read("lexmark", _answers({}, _walked_rows("lexmark", walked)))
    assert meters["mono"] == (400, "impressions", False)
    assert meters["color"] == (210, "impressions", False)
    assert meters["print_mono"] == (390, "impressions", False)


@pytest.mark.parametrize(
    ("profile", "rows"),
    [
        ("kyocera", {"1.1": 500, "1.2": 0, "1.3": 300}),  # 1347.42.3.1.2.1.1.<function>.<mode>: print rows only
        ("konica_minolta", {"1.2": 500, "2.2": 300}),  # 5.7.2.2.1.5.<colour>.<function>: print rows only
        ("ricoh", {"401": 500, "403": 300}),  # ricohEngCounterType print B&W / full colour only
    ],
)
def test_a_printer_without_copier_still_reports_the_billed_mono_and_color(profile: str, rows: dict[str, int]) -> None:
    """The sums take whichever function rows the model has: print-only models bill too (issue 17, item 1)."""
    meters = _read(profile, _answers({}, _one_key_rows(rows)))
    assert (meters["mono"], meters["color"]) == ((500, "impressions", False), (300, "impressions", False))


def test_canon_reads_the_display_table_only_for_what_the_full_table_lacks() -> None:
    full = _one_key_rows({"101": 500})
    display = _one_key_rows({"101": 1, "112": 40, "113": 400, "122": 30})
    meters = _read("canon", _answers({}, full, display))
    assert meters["total"] == (500, "impressions", False)
    assert meters["mono"] == (440, "impressions", True)  # 112 + 113: the display table has no 108
    assert meters["large_color"] == (30, "impressions", False)
    assert meters["color"] == (30, "impressions", False)  # a model without counter 123: 122 is all its colour


def test_xerox_rows_are_read_by_their_label_before_their_number() -> None:
    """xcmHrDevDetailLabel names the row; a firmware that numbers rows otherwise still reads right."""
    by_label = {
        "40": TableRow(((KEY, "Black Impressions"),), 519),
        "34": TableRow(((KEY, "Black Printed Impressions"),), 7),
    }
    by_number = _one_key_rows({"40": 519, "34": 7})
    meters = _read("xerox", _answers({}, by_label, by_number))
    assert meters["mono"] == (519, "impressions", False)


@pytest.mark.parametrize(
    ("profile", "scalars", "expected"),
    [
        # OKI usagePrinterUnitCounter is a DisplayString holding the count.
        ("oki", {"1.3.6.1.4.1.2001.1.1.1.1.100.1.1.1.3.1": b"123456"}, {"total": 123456}),
        # Toshiba …21.6.1.<cat>.1.<colour>: cat 2 all output; colour 1 full, 3 black, 4 total.
        (
            "toshiba",
            {
                "1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.2.1.4": 90,
                "1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.2.1.3": 60,
                "1.3.6.1.4.1.1129.2.3.50.1.3.21.6.1.2.1.1": 30,
            },
            {"total": 90, "mono": 60, "color": 30},
        ),
        # Lexmark pgTotal / pgMono / pgColor: 5.1.0 is the total, not colour.
        (
            "lexmark",
            {"1.3.6.1.4.1.641.2.1.5.1.0": 61, "1.3.6.1.4.1.641.2.1.5.2.0": 40, "1.3.6.1.4.1.641.2.1.5.3.0": 21},
            {"total": 61, "mono": 40, "color": 21},
        ),
        # FUJIFILM reads Xerox's counters under 253; copy counters under hrDeviceIndex 103 as well as 11.
        (
            "fujifilm",
            {"1.3.6.1.4.1.253.8.53.13.2.1.6.103.20.3": 20, "1.3.6.1.4.1.253.8.53.13.2.1.6.11.20.25": 4},
            {"copy_mono": 20, "copy_color": 4, "copy_total": 24},
        ),
    ],
)
def test_scalar_counters(profile: str, scalars: dict[str, Value], expected: dict[str, int]) -> None:
    meters = _read(profile, _answers(scalars))
    assert {name: meters[name][0] for name in expected} == expected


def test_borrowed_counters_are_capped_at_the_lenders_evidence() -> None:
    fujifilm, xerox = builtin_catalog().by_name("fujifilm"), builtin_catalog().by_name("xerox")

    def entries(profile: Profile) -> list[tuple[str, str]]:
        counters = [*profile.meters, *(c for t in profile.tables for c in t.counters)]
        return [(c.meter.value, c.evidence) for c in counters]

    assert [meter for meter, _ in entries(fujifilm)] == [meter for meter, _ in entries(xerox)]
    assert {evidence for _, evidence in entries(fujifilm)} == {"C"}
    assert "A" in {evidence for _, evidence in entries(xerox)}


@pytest.mark.parametrize(
    ("sys_object_id", "strings", "profile", "rule"),
    [
        ("1.3.6.1.4.1.683.6", [("sysDescr", "ZebraNet Wired PS")], "zebra", "sysDescr 'ZebraNet Wired PS' matches"),
        (
            "1.3.6.1.4.1.683.6",
            [("sysDescr", "Print Server"), ("hrDeviceDescr", "Brother HL-L8260CDW series")],
            "brother",
            "hrDeviceDescr 'Brother HL-L8260CDW series' matches",
        ),
        (
            None,
            [("sysDescr", None), ("hrDeviceDescr", "x"), ("prtGeneralPrinterName", "KYOCERA ECOSYS P2040dw")],
            "kyocera",
            "prtGeneralPrinterName",
        ),
        ("1.3.6.1.4.1.2435.2.3.9.1", [("sysDescr", "ZebraNet Wired PS")], "brother", "sysObjectID"),
        ("1.3.6.1.4.1.683.6", [("sysDescr", "ExtendNet print server")], "generic", "no rule matched"),
    ],
)
def test_identify_by_sys_object_id_then_by_the_device_strings(
    sys_object_id: str | None, strings: list[tuple[str, str | None]], profile: str, rule: str
) -> None:
    identified = builtin_catalog().identify(sys_object_id, strings)
    assert (identified.profile.name, identified.rule[: len(rule)]) == (profile, rule)


@pytest.mark.parametrize("profile", builtin_catalog().profiles, ids=lambda p: p.name)
def test_a_profile_that_splits_by_function_also_gives_the_billed_mono_and_color(profile: Profile) -> None:
    """Contracts bill mono / color: a profile reading print/copy splits must give those too (issue 17, item 1)."""
    gives = {m.meter for m in profile.meters} | {d.meter for d in profile.derived}
    gives |= {c.meter for t in profile.tables for c in t.counters} | {
        c.meter for b in profile.blobs for c in b.counters
    }
    for billed, parts in {
        Meter.MONO: {Meter.PRINT_MONO, Meter.COPY_MONO},
        Meter.COLOR: {Meter.PRINT_COLOR, Meter.COPY_COLOR},
    }.items():
        if gives & parts:
            assert billed in gives, f"{profile.name} reads {sorted(gives & parts)} but gives no {billed}"
