"""Every shared recording, polled for real through snmpsim, must give what expected.json says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from collectors import wire
from collectors.base import Reading
from collectors.snmp.collector import SnmpCollector
from daemon.cli import main
from tests.conftest import free_port
from tests.integration.conftest import WALKS, Simulator

RECORDINGS = sorted(p.name for p in (WALKS / "librenms").glob("*.snmprec"))


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


@pytest.mark.parametrize("version", ["1", "2c"])
@pytest.mark.parametrize("recording", RECORDINGS)
async def test_recording_reads_as_expected(snmpsim: Simulator, recording: str, version: str) -> None:
    expected = snmpsim.expected["files"][recording]
    reading = await _poll(snmpsim, expected["community"], version)
    _check_against_expected(reading, expected)


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


def test_meterd_poll_of_a_silent_host_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["poll", f"127.0.0.1:{free_port()}", "--timeout", "0.2", "--retries", "0", "--format", "json"])
    captured = capsys.readouterr()
    assert code == 2
    assert json.loads(captured.out) == []
    assert captured.err.count("\n") == 1
    assert "no SNMP answer" in captured.err
