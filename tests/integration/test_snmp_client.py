"""The SNMP client against snmpsim serving recordings of real printers."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from collectors.snmp.client import SnmpClient, SnmpTarget
from collectors.snmp.text import display_text
from daemon.demo import fleet_dir
from daemon.demo.simulator import SnmpSimulator
from daemon.kernel.errors import DeviceTimeoutError, ProtocolError
from tests.conftest import free_port
from tests.integration.conftest import WALKS, Simulator

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SUPPLY_DESCRIPTIONS = "1.3.6.1.2.1.43.11.1.1.6"
EXPECTED_FILES = sorted(p.name for p in (WALKS / "librenms").glob("*.snmprec"))


def _text(value: object) -> str:
    assert isinstance(value, bytes)
    return display_text(value)


@pytest.mark.parametrize("recording", EXPECTED_FILES)
async def test_every_recording_answers_its_sysdescr(snmpsim: Simulator, recording: str) -> None:
    expected = snmpsim.expected["files"][recording]
    async with SnmpClient() as client:
        answer = await client.get(snmpsim.target(expected["community"]), [SYS_DESCR])
    assert _text(answer[SYS_DESCR]) == expected["sysDescr"].strip()


@pytest.mark.parametrize("recording", EXPECTED_FILES)
async def test_every_recording_lists_its_toner_in_the_supplies_table(snmpsim: Simulator, recording: str) -> None:
    expected = snmpsim.expected["files"][recording]
    async with SnmpClient() as client:
        column = await client.walk(snmpsim.target(expected["community"]), SUPPLY_DESCRIPTIONS)
    names = [_text(v) for v in column.values()]
    assert all(oid.startswith(SUPPLY_DESCRIPTIONS + ".") for oid in column)
    for toner in expected["toner"]:
        assert toner["name"].strip() in names


async def test_v1_getnext_walk_equals_v2c_getbulk_walk(snmpsim: Simulator) -> None:
    async with SnmpClient() as client:
        bulk = await client.walk(snmpsim.target("konica_c250i"), SUPPLY_DESCRIPTIONS)
        walked = await client.walk(snmpsim.target("konica_c250i", version="1"), SUPPLY_DESCRIPTIONS)
    assert bulk == walked
    assert len(bulk) >= 4


async def test_missing_oids_are_left_out_not_padded(snmpsim: Simulator) -> None:
    async with SnmpClient() as client:
        answer = await client.get(
            snmpsim.target("jetdirect_m130nw"), [SYS_DESCR, "1.3.6.1.2.1.1.99.0", "1.3.6.1.2.1.43.10.2.1.4.1.1"]
        )
    assert set(answer) == {SYS_DESCR, "1.3.6.1.2.1.43.10.2.1.4.1.1"}
    assert answer["1.3.6.1.2.1.43.10.2.1.4.1.1"] == 15232


async def test_communities_are_tried_in_order_until_one_answers(snmpsim: Simulator) -> None:
    target = SnmpTarget("127.0.0.1", snmpsim.port, communities=("wrong", "konica_c250i"), timeout_s=0.3, retries=0)
    async with SnmpClient() as client:
        answer = await client.get(target, [SYS_DESCR])
        started = time.monotonic()
        await client.get(target, [SYS_DESCR])  # the working community is remembered: no timeout first
        second = time.monotonic() - started
    assert _text(answer[SYS_DESCR]) == "KONICA MINOLTA bizhub C250i"
    assert second < 0.3


async def test_unknown_community_times_out_with_a_clear_error(snmpsim: Simulator) -> None:
    target = SnmpTarget("127.0.0.1", snmpsim.port, communities=("nobody-has-this",), timeout_s=0.2, retries=0)
    async with SnmpClient() as client:
        with pytest.raises(DeviceTimeoutError, match=r"127\.0\.0\.1:\d+: no SNMP answer \(1 community"):
            await client.get(target, [SYS_DESCR])


async def test_dead_host_times_out_within_its_budget() -> None:
    target = SnmpTarget("127.0.0.1", free_port(), communities=("public",), timeout_s=0.2, retries=1)
    started = time.monotonic()
    async with SnmpClient() as client:
        with pytest.raises(DeviceTimeoutError):
            await client.get(target, [SYS_DESCR])
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_columns_walked_side_by_side_equal_each_walked_alone(snmpsim: Simulator, version: str) -> None:
    # Columns of different lengths (hrDeviceDescr, the supplies table's, the marker table's) and one the
    # device lacks: each ends in its own answer while the others go on.
    columns = [
        "1.3.6.1.2.1.25.3.2.1.3",
        SUPPLY_DESCRIPTIONS,
        "1.3.6.1.2.1.43.11.1.1.9",
        "1.3.6.1.2.1.43.10.2.1.4",
        "1.3.6.1.2.1.43.99.1",
    ]
    target = snmpsim.target("konica_c250i", version=version)
    async with SnmpClient() as client:
        together = await client.walk_columns(target, columns)
        alone = {column: await client.walk(target, column) for column in columns}
    assert together == alone
    assert together["1.3.6.1.2.1.43.99.1"] == {}
    assert len(together[SUPPLY_DESCRIPTIONS]) >= 4
    assert len({len(rows) for rows in together.values()}) > 2  # the columns really differ in length


async def test_a_host_name_is_resolved(snmpsim: Simulator) -> None:
    # snmpsim listens on 127.0.0.1 only; where "localhost" also resolves to ::1, IPv4 must be tried.
    target = SnmpTarget("localhost", snmpsim.port, communities=("konica_c250i",), timeout_s=0.5, retries=0)
    async with SnmpClient() as client:
        answer = await client.get(target, [SYS_DESCR])
    assert _text(answer[SYS_DESCR]) == "KONICA MINOLTA bizhub C250i"


async def test_a_name_that_does_not_resolve_is_a_clear_error() -> None:
    target = SnmpTarget("printer.invalid", 161, timeout_s=0.2, retries=0)
    async with SnmpClient() as client:
        with pytest.raises(ProtocolError, match=r"printer\.invalid:161: cannot reach printer\.invalid"):
            await client.get(target, [SYS_DESCR])


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
async def test_a_printer_on_ipv6_is_polled(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_DGRAM)
    simulator = SnmpSimulator(
        [fleet_dir()], port, tmp_path / "snmpsim.log", engine_args=[f"--agent-udpv6-endpoint=[::1]:{port}"]
    )
    simulator.start()
    try:
        await simulator.wait_ready("konica_c300i")  # over IPv4: the simulator is up
        target = SnmpTarget("::1", port, communities=("konica_c300i",), timeout_s=1.0, retries=1)
        async with SnmpClient() as client:
            answer = await client.get(target, [SYS_DESCR])
    finally:
        simulator.stop()
    assert _text(answer[SYS_DESCR]) == "KONICA MINOLTA bizhub C300i"


def test_an_ipv6_target_shows_its_address_in_brackets() -> None:
    """What logs and the meterd_device_up label show: the port must not read as part of the address."""
    assert SnmpTarget("::1", 161).address == "[::1]:161"
    assert SnmpTarget("fe80::1%eth0", 1161).address == "[fe80::1%eth0]:1161"
    assert SnmpTarget("10.0.4.21", 161).address == "10.0.4.21:161"
    assert SnmpTarget("printer.example", 161).address == "printer.example:161"
