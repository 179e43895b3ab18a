"""Crafted recordings (tests/fixtures/snmp) for what the shared walks lack: private counter
tables, Brother blobs, odd values, error answers, length counters, dead hosts."""

from __future__ import annotations

import pytest
import structlog

from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.mapping import DeviceReport
from daemon.kernel.errors import DeviceTimeoutError
from daemon.kernel.reading import Reading
from tests.conftest import free_port
from tests.integration.conftest import Simulator

pytestmark = pytest.mark.usefixtures("snmpsim")


async def _report(snmpsim: Simulator, community: str, version: str = "2c") -> DeviceReport:
    async with SnmpCollector(site="test") as collector:
        return await collector.poll(snmpsim.target(community, version=version))


def _meters(reading: Reading) -> dict[str, tuple[int, str, bool]]:
    return {m.meter.value: (m.value, m.unit.value, m.derived) for m in reading.meters}


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_canon_counters_are_read_from_the_full_table_by_counter_number(snmpsim: Simulator, version: str) -> None:
    """The C5840's numbers (../shared/walks/vendor-oids.md): mono 108 + colour 122 + 123 = total 101.

    The worked example gives 122 + 123 = 10,381, not the split, so only the sum is asserted.
    """
    report = await _report(snmpsim, "canon_ir_adv", version)
    meters = _meters(report.reading)
    assert report.profile == "canon"
    assert report.reading.device.model == "iR-ADV C5840"
    assert meters["total"] == (213402, "impressions", False)
    assert meters["mono"] == (203021, "impressions", False)
    assert meters["color"] == (10381, "impressions", True)  # summed over two rows: derived
    assert meters["mono"][0] + meters["color"][0] == meters["total"][0]
    assert meters["copy_total"] == (14671, "impressions", False)
    assert meters["print_total"] == (198731, "impressions", False)
    assert meters["large_total"] == (987, "impressions", False)
    assert meters["scan_total"] == (91977, "images", False)
    assert "large_mono" not in meters  # the recording has no counter 112: no zero padding


async def test_ricoh_rows_are_matched_by_type_code_not_position(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "ricoh_mp_c4504")
    meters = _meters(report.reading)
    assert report.reading.device.key == "C4504RICOH1"
    assert meters["total"] == (90000, "impressions", False)
    assert meters["print_mono"] == (41000, "impressions", False)
    assert meters["print_color"] == (30000, "impressions", False)  # type 403 full colour, not 402
    assert meters["copy_mono"] == (12000, "impressions", False)
    assert meters["scan_mono"] == (3000, "images", False)  # type 874
    assert meters["scan_color"] == (1500, "images", False)  # type 873
    assert meters["scan_total"] == (4500, "images", True)  # declared derived; 870 (2,200 sent) is no scan


async def test_ricoh_second_poll_reads_the_rows_it_learnt(snmpsim: Simulator) -> None:
    async with SnmpCollector(site="test") as collector:
        target = snmpsim.target("ricoh_mp_c4504")
        first = await collector.poll(target)
        second = await collector.poll(target)
    assert _meters(second.reading) == _meters(first.reading)


async def test_kyocera_oem_brand_and_derived_mono(snmpsim: Simulator) -> None:
    """A UTAX-badged TASKalfa answering the real CS 4053ci's counters (printmaster/kyocera_cs4053ci)."""
    report = await _report(snmpsim, "kyocera_taskalfa")
    meters = _meters(report.reading)
    assert report.reading.device.vendor == "UTAX"
    assert report.reading.device.key == "W2D8303202"
    assert meters["print_total"] == (40600, "impressions", False)
    assert meters["copy_total"] == (32971, "impressions", False)
    assert meters["fax_total"] == (2493, "impressions", False)
    assert meters["mono"] == (14730 + 19124 + 2493, "impressions", True)
    assert meters["color"] == (25870 + 13847, "impressions", True)
    assert meters["color_single"] == (0, "impressions", True)  # "Mono Color" print + copy rows
    assert meters["total"] == (76064, "impressions", False)  # Kyocera's own total
    assert meters["mono"][0] + meters["color"][0] + meters["color_single"][0] == meters["total"][0]


@pytest.mark.parametrize(
    ("community", "vendor", "expected"),
    [
        # The one real Xerox reading: 20.33 + 20.34 = prtMarkerLifeCount, so they are all colour / all black.
        ("xerox_versalink", "Xerox", {"mono": 19735, "color": 10999, "total": 30734}),
        # A real Phaser 6130N reading, read by the rows' labels: 909 = 519 black + 390 colour.
        ("xerox_phaser_6130n", "Xerox", {"total": 909, "mono": 519, "color": 390}),
        # LEXMARK-PVT-MIB: 5.1.0 pgTotal, 5.2.0 pgMono, 5.3.0 pgColor.
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


async def test_brother_counter_blob_ending_ff_is_decoded(snmpsim: Simulator) -> None:
    """The `brother` library's real DCP-L3550CDW answers; the blob ends 0xff as real ones do."""
    report = await _report(snmpsim, "brother_dcp_l3550cdw")
    meters = _meters(report.reading)
    assert report.reading.device.model == "DCP-L3550CDW"
    assert (meters["total"], meters["mono"], meters["color"]) == (
        (1611, "impressions", False),
        (709, "impressions", False),
        (902, "impressions", False),
    )
    assert report.problems == ()


async def test_brother_blob_with_a_broken_word_is_refused_whole(snmpsim: Simulator) -> None:
    report = await _report(snmpsim, "brother_damaged_blob")
    meters = _meters(report.reading)
    assert meters == {}  # no word is trusted, and this device has no Printer-MIB count
    assert any("not a whole number of 7-byte words" in problem for problem in report.problems)


async def test_zebra_behind_a_zebranet_print_server_is_identified_by_sys_descr(snmpsim: Simulator) -> None:
    """sysObjectID is the print server's (ESI, enterprise 683): the sysDescr rule names the vendor, and is logged."""
    with structlog.testing.capture_logs() as logs:
        report = await _report(snmpsim, "zebranet_print_server")
    assert report.profile == "zebra"
    assert report.reading.device.vendor == "Zebra"
    assert report.reading.device.model is None  # "ZebraNet Wired PS" is the print server, not the printer
    assert report.matched_by.startswith("sysDescr 'ZebraNet Wired PS' matches")
    identified = [entry for entry in logs if entry["event"] == "device_identified"]
    assert [(e["profile"], e["rule"]) for e in identified] == [("zebra", report.matched_by)]


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
