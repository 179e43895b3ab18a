"""Every shared recording, polled for real through snmpsim, must give what expected.json says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collectors import wire
from collectors.snmp.collector import SnmpCollector
from daemon.cli.main import main
from daemon.demo.run import fleet_communities
from daemon.kernel.reading import Reading
from tests.conftest import free_port
from tests.integration.conftest import WALKS, Simulator

RECORDINGS = sorted(p.name for p in (WALKS / "librenms").glob("*.snmprec"))
PRINTMASTER = sorted(p.name for p in (WALKS / "printmaster").glob("*.snmprec"))
# A function split by colour needs the all-function colour meter beside it, or a contract
# that bills mono / color bills nothing (issue 17, item 1).
SPLITS = {"mono": ("print_mono", "copy_mono"), "color": ("print_color", "copy_color")}


async def _poll(snmpsim: Simulator, community: str, version: str) -> Reading:
    async with SnmpCollector(site="test") as collector:
        return (await collector.poll(snmpsim.target(community, version=version))).reading


def _check_against_expected(reading: Reading, expected: dict[str, Any]) -> None:
    assert reading.device.vendor == expected["vendor"]
    if expected["serial"] is not None:
        assert reading.device.key == expected["serial"]
    if expected["model"] is not None:
        assert reading.device.model is not None
        assert reading.device.model in expected["model"] or expected["model"] in reading.device.model
    meters = {m.meter.value: (m.value, m.unit.value) for m in reading.meters}
    for name, want in expected["meters"].items():
        assert meters.get(name) == (want["value"], want["unit"]), f"meter {name}"
    supplies: dict[str, list[int | None]] = {}
    for supply in reading.supplies:
        supplies.setdefault(supply.name, []).append(supply.level_percent)
    for toner in expected["toner"]:
        assert toner["level_percent"] in supplies.get(toner["name"].strip(), []), toner["name"]


def _check_billable_colour_meters(reading: Reading) -> None:
    meters = {m.meter.value for m in reading.meters}
    for billed, parts in SPLITS.items():
        if meters & set(parts):
            assert billed in meters, f"{reading.device.vendor} reports {sorted(meters & set(parts))} but no {billed}"


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("recording", RECORDINGS)
async def test_recording_reads_as_expected(snmpsim: Simulator, recording: str, version: str) -> None:
    expected = snmpsim.expected["files"][recording]
    reading = await _poll(snmpsim, expected["community"], version)
    _check_against_expected(reading, expected)
    _check_billable_colour_meters(reading)


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("recording", PRINTMASTER)
async def test_printmaster_walk_reads_as_expected(snmpsim: Simulator, recording: str, version: str) -> None:
    """Full walks of real devices: every meter printmaster/expected.json lists, in an accepted value and unit."""
    expected = snmpsim.printmaster["files"][recording]
    reading = await _poll(snmpsim, expected["community"], version)
    assert reading.device.vendor == expected["vendor"]
    assert reading.device.key == expected["serial"]
    if "model" in expected:
        assert reading.device.model == expected["model"]
    meters = {m.meter.value: m for m in reading.meters}
    units = expected.get("units", {})
    for name, accepted in expected["meters"].items():
        assert name in meters, f"meter {name} missing; read {sorted(meters)}"
        assert meters[name].value in accepted, f"meter {name}: {meters[name].value} not in {accepted}"
        assert meters[name].unit.value == units.get(name, "impressions"), f"meter {name} unit"
    _check_billable_colour_meters(reading)


@pytest.mark.parametrize("community", fleet_communities())
async def test_demo_fleet_reports_what_its_profile_reads(snmpsim: Simulator, community: str) -> None:
    reading = await _poll(snmpsim, community, "2c")
    _check_billable_colour_meters(reading)
    if reading.device.vendor == "Kyocera":  # per-function totals at 1347.42.3.1.1.1.1.<function>
        assert {m.meter.value for m in reading.meters} >= {"print_total", "copy_total", "fax_total", "mono"}


@pytest.mark.parametrize(
    ("community", "mono", "derived"),
    [
        ("brother_hl5370dw", 7792, True),  # Printer-MIB total only, prtMarkerProcessColorants 1
        ("kyocera_p2040dw", 7342, True),  # Kyocera's own total; no 42.3 subtree on this mono ECOSYS
        ("jetdirect_m130nw", 15232, False),  # the device's own mono counter wins, and equals its total
    ],
)
async def test_a_black_only_printer_reports_its_total_as_mono(
    snmpsim: Simulator, community: str, mono: int, derived: bool
) -> None:
    reading = await _poll(snmpsim, community, "2c")
    meters = {m.meter.value: m for m in reading.meters}
    assert (meters["mono"].value, meters["mono"].derived) == (mono, derived)
    assert meters["mono"].value == meters["total"].value
    assert "color" not in meters


@pytest.mark.parametrize("recording", PRINTMASTER)
async def test_printmaster_walk_second_poll_from_the_plan_reads_the_same(snmpsim: Simulator, recording: str) -> None:
    """The warm poll GETs only the cells the probe kept (Kyocera's function x colour rows among them)."""
    target = snmpsim.target(snmpsim.printmaster["files"][recording]["community"])
    async with SnmpCollector(site="test") as collector:
        first = (await collector.poll(target)).reading
        second = (await collector.poll(target)).reading
    assert (second.device, second.meters, second.supplies) == (first.device, first.meters, first.supplies)


async def test_konica_bills_print_plus_copy_as_derived_mono_and_color(snmpsim: Simulator) -> None:
    """The C250i splits by function only: mono / color are the declared sums, marked derived.

    22,876 + 3,672 = 26,548 mono and 6,711 + 544 = 7,255 colour: 33,803, which is 7 short of
    the device's total 33,810 (reports and lists it prints on its own, in `total` only).
    """
    reading = await _poll(snmpsim, "konica_c250i", "2c")
    meters = {m.meter.value: (m.value, m.derived) for m in reading.meters}
    assert meters["mono"] == (22876 + 3672, True)
    assert meters["color"] == (6711 + 544, True)
    assert meters["total"] == (33810, False)


async def test_one_collector_for_every_recording_keeps_each_plan_its_own(snmpsim: Simulator) -> None:
    """Plans share what devices answer alike; each device must still read back only its own answers."""
    files = [snmpsim.expected["files"][recording] for recording in RECORDINGS]
    targets = [snmpsim.target(expected["community"]) for expected in files]
    async with SnmpCollector(site="test") as collector:
        probed = [(await collector.poll(target)).reading for target in targets]
        warm = [(await collector.poll(target)).reading for target in targets]
    for first, second, expected in zip(probed, warm, files, strict=True):
        assert (second.device, second.meters, second.supplies) == (first.device, first.meters, first.supplies)
        _check_against_expected(second, expected)


@pytest.mark.parametrize("recording", RECORDINGS)
async def test_second_poll_from_the_plan_reads_the_same(snmpsim: Simulator, recording: str) -> None:
    expected = snmpsim.expected["files"][recording]
    async with SnmpCollector(site="test") as collector:
        first = (await collector.poll(snmpsim.target(expected["community"]))).reading
        second = (await collector.poll(snmpsim.target(expected["community"]))).reading
    assert (second.device, second.meters, second.supplies) == (first.device, first.meters, first.supplies)
    _check_against_expected(second, expected)


@pytest.mark.parametrize("recording", RECORDINGS)
def test_meterd_poll_json_is_reading_v1_and_as_expected(
    snmpsim: Simulator, recording: str, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = snmpsim.expected["files"][recording]
    code = main(["poll", f"127.0.0.1:{snmpsim.port}", "--community", expected["community"], "--format", "json"])
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert len(printed) == 1
    reading = wire.decode(json.dumps(printed[0]).encode(), source="test")  # the wire schema, strictly
    _check_against_expected(reading, expected)


def test_meterd_poll_table_names_device_meters_and_supplies(
    snmpsim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["poll", f"127.0.0.1:{snmpsim.port}", "--community", "konica_c250i"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Konica Minolta bizhub C250i  serial AA2M021115700" in out
    assert "print_color" in out
    assert "6,711" in out
    assert "Toner (Black)" in out
    assert "86 %" in out
    # The real walk's hrDeviceStatus 3 and error state 0100: the technician sees it on the spot.
    assert "status warning (printer not reported)  errors: serviceRequested" in out


def test_meterd_poll_of_a_silent_host_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["poll", f"127.0.0.1:{free_port()}", "--timeout", "0.2", "--retries", "0", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out) == []
    assert captured.err.count("\n") == 1
    assert "no SNMP answer" in captured.err
