"""Crafted recordings (tests/fixtures/snmp) for what the shared walks lack: private counter
tables, Brother blobs, odd values, error answers, length counters, dead hosts."""

from __future__ import annotations

import pytest

from collectors.base import Reading
from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.mapping import DeviceReport
from daemon.errors import DeviceTimeoutError
from tests.conftest import free_port
from tests.integration.conftest import Simulator

pytestmark = pytest.mark.usefixtures("snmpsim")


async def _report(snmpsim: Simulator, community: str, version: str = "2c") -> DeviceReport:
    async with SnmpCollector(site="test") as collector:
        return await collector.poll(snmpsim.target(community, version=version))


def _meters(reading: Reading) -> dict[str, tuple[int, str, bool]]:
    return {m.meter.value: (m.value, m.unit.value, m.derived) for m in reading.meters}


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_canon_counters_are_read_by_counter_number(snmpsim: Simulator, version: str) -> None:
    report = await _report(snmpsim, "canon_ir_adv", version)
    meters = _meters(report.reading)
    assert report.profile == "canon"
    assert report.reading.device.model == "iR-ADV C5535"
    assert meters["total"] == (187654, "impressions", False)  # counter 101 wins over prtMarkerLifeCount
    assert meters["mono"] == (120000, "impressions", False)
    assert meters["color"] == (67654, "impressions", False)
    assert meters["large_mono"] == (4000, "impressions", False)
    assert meters["scan_total"] == (9100, "images", False)
    assert "large_color" not in meters  # the device has no counter 122: no zero padding


async def test_ricoh_rows_are_matched_by_type_code_not_position(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "ricoh_mp_c4504")
    meters = _meters(report.reading)
    assert report.reading.device.key == "C4504RICOH1"
    assert meters["total"] == (90000, "impressions", False)
    assert meters["print_mono"] == (41000, "impressions", False)
    assert meters["print_color"] == (30000, "impressions", False)
    assert meters["copy_mono"] == (12000, "impressions", False)
    assert meters["scan_total"] == (4500, "images", True)  # declared derived: mono + colour scans


async def test_ricoh_second_poll_reads_the_rows_it_learnt(snmpsim: Simulator) -> None:
    async with SnmpCollector(site="test") as collector:
        target = snmpsim.target("ricoh_mp_c4504")
        first = await collector.poll(target)
        second = await collector.poll(target)
    assert _meters(second.reading) == _meters(first.reading)


async def test_kyocera_oem_brand_and_derived_mono(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "kyocera_taskalfa")
    meters = _meters(report.reading)
    assert report.reading.device.vendor == "UTAX"
    assert report.reading.device.key == "W2D8303202"
    assert meters["mono"] == (163915 + 73811 + 3812, "impressions", True)
    assert meters["color"] == (140424 + 42443, "impressions", True)
    assert meters["fax_total"] == (3812, "impressions", False)
    assert meters["total"] == (432951, "impressions", False)


@pytest.mark.parametrize(
    ("community", "vendor", "expected"),
    [
        ("xerox_versalink", "Xerox", {"print_mono": 25000, "print_color": 15000, "copy_total": 12000}),
        ("lexmark_cx725", "Lexmark", {"mono": 40000, "color": 21000, "total": 61000}),
        ("epson_am_c550", "Epson", {"total": 81563, "mono": 39797, "color": 41766, "copy_color": 2313}),
    ],
)
async def test_private_counters(snmpsim: Simulator, community: str, vendor: str, expected: dict[str, int]) -> None:
    report = await _report(snmpsim, community)
    assert report.reading.device.vendor == vendor
    meters = _meters(report.reading)
    assert {name: meters[name][0] for name in expected} == expected
    assert report.problems == ()


async def test_brother_counter_blob_is_decoded(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "brother_mfc_l3770cdw")
    meters = _meters(report.reading)
    assert report.reading.device.model == "MFC-L3770CDW"
    assert (meters["total"], meters["mono"], meters["color"]) == (
        (1611, "impressions", False),
        (709, "impressions", False),
        (902, "impressions", False),
    )


async def test_brother_blob_with_a_bad_checksum_is_refused_whole(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "brother_bad_checksum")
    meters = _meters(report.reading)
    assert "mono" not in meters
    assert "color" not in meters
    assert meters["total"] == (1600, "impressions", False)  # the Printer-MIB count still stands
    assert any("checksum" in problem for problem in report.problems)


async def test_odd_values_give_clear_problems_and_the_rest_is_read(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "hp_odd_values")
    meters = _meters(report.reading)
    assert meters["total"] == (4294967290, "impressions", False)  # a Counter32 near 2^32 is kept as is
    assert meters["color"] == (12345, "impressions", False)  # decimal text is still a count
    assert "mono" not in meters
    assert "duplex" not in meters
    assert "scan_total" not in meters  # that OID answers tooBig alone: dropped, the rest still read
    problems = "\n".join(report.problems)
    assert "mono: 1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.6.0 answered an OCTET STRING ('n/a'), not a counter" in problems
    assert "duplex: 1.3.6.1.4.1.11.2.3.9.4.2.1.4.1.2.22.0 answered an OBJECT IDENTIFIER" in problems
    assert report.reading.device.key == "CNB9ODD001"  # from sysDescr, the last place a serial is looked for
    levels = {s.name: s.level_percent for s in report.reading.supplies}
    assert levels == {"Black Cartridge HP CF287A": None, "Cyan Cartridge": None, "Waste Toner": None}


async def test_label_printer_reports_length_never_total(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "zebra_label")
    assert _meters(report.reading) == {"length": (123456, "inches", False)}
    assert report.profile == "zebra"
    device = report.reading.device
    assert (device.vendor, device.model, device.key) == ("Zebra", "ZD420-300dpi ZPL", "D4J123456789")


async def test_a_round_with_a_dead_host_reads_every_live_one(snmpsim: Simulator) -> None:
    dead = snmpsim.target("canon_ir_adv", timeout_s=0.2, retries=0)
    dead = type(dead)(host=dead.host, port=free_port(), communities=dead.communities, timeout_s=0.2, retries=0)
    targets = [snmpsim.target("canon_ir_adv"), dead, snmpsim.target("kyocera_taskalfa")]
    async with SnmpCollector(site="test") as collector:
        results = await poll_many(collector, targets, concurrency=8)
    assert isinstance(results[0], DeviceReport)
    assert isinstance(results[1], DeviceTimeoutError)
    assert isinstance(results[2], DeviceReport)
