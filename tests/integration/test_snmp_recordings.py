"""Every shared recording, polled for real through snmpsim, must give what expected.json says."""

from __future__ import annotations

from typing import Any

import pytest

from collectors.base import Reading
from collectors.snmp.collector import SnmpCollector
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


@pytest.mark.parametrize("recording", RECORDINGS)
async def test_second_poll_from_the_plan_reads_the_same(snmpsim: Simulator, recording: str) -> None:
    expected = snmpsim.expected["files"][recording]
    async with SnmpCollector(site="test") as collector:
        first = (await collector.poll(snmpsim.target(expected["community"]))).reading
        second = (await collector.poll(snmpsim.target(expected["community"]))).reading
    assert (second.device, second.meters, second.supplies) == (first.device, first.meters, first.supplies)
    _check_against_expected(second, expected)
