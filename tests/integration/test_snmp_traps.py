"""SNMP traps end to end: a printerV2Alert / printerV1Alert sent by the test makes the running daemon poll
that printer at once, so a jam is stored within seconds; a trap from an address it does not poll, or
with another community, is logged and ignored.

The traps are built with pysnmp's protocol API (as a printer sends them) and sent over UDP from a
socket the test binds, so the sender's address is the test's choice (127.0.0.2 is "unknown").
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import encoder
from pysnmp.proto.api import v1, v2c
from structlog.testing import capture_logs

from collectors.snmp.traps import PRINTER_V1_ENTERPRISE, PRINTER_V2_ALERT, decode_trap
from daemon.kernel.errors import PayloadError
from daemon.runtime.app import Daemon
from daemon.services.faults import faults
from daemon.settings import load
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.conftest import Simulator
from tests.integration.test_device_faults import SEQUENCE, SERIAL, _healthy, _jam

COMMUNITY = "trap-secret"


def v2c_trap(community: str, trap_oid: str = PRINTER_V2_ALERT) -> bytes:
    pdu = v2c.TrapPDU()
    v2c.apiTrapPDU.set_defaults(pdu)
    v2c.apiTrapPDU.set_varbinds(
        pdu,
        [
            (v2c.ObjectIdentifier("1.3.6.1.2.1.1.3.0"), v2c.TimeTicks(4242)),
            (v2c.ObjectIdentifier("1.3.6.1.6.3.1.1.4.1.0"), v2c.ObjectIdentifier(trap_oid)),
            (v2c.ObjectIdentifier("1.3.6.1.2.1.43.18.1.1.7.1.1"), v2c.Integer(8)),  # prtAlertCode: jam
        ],
    )
    message = v2c.Message()
    v2c.apiMessage.set_defaults(message)
    v2c.apiMessage.set_community(message, community)
    v2c.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def v1_trap(community: str) -> bytes:
    pdu = v1.TrapPDU()
    v1.apiTrapPDU.set_defaults(pdu)
    v1.apiTrapPDU.set_enterprise(pdu, tuple(int(arc) for arc in PRINTER_V1_ENTERPRISE.split(".")))
    v1.apiTrapPDU.set_generic_trap(pdu, 6)  # enterpriseSpecific
    v1.apiTrapPDU.set_specific_trap(pdu, 1)
    v1.apiTrapPDU.set_agent_address(pdu, "127.0.0.1")
    message = v1.Message()
    v1.apiMessage.set_defaults(message)
    v1.apiMessage.set_community(message, community)
    v1.apiMessage.set_pdu(message, pdu)
    return bytes(encoder.encode(message))


def _send(datagram: bytes, port: int, source: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.sendto(datagram, ("127.0.0.1", port))


def test_printer_alert_traps_decode_in_both_versions_and_garbage_is_refused() -> None:
    assert decode_trap(v2c_trap("c")).is_printer_alert
    assert decode_trap(v1_trap("c")).trap_oid == PRINTER_V2_ALERT  # RFC 3584: enterprise.0.specific
    assert decode_trap(v1_trap("c")).version == "1"
    assert not decode_trap(v2c_trap("c", "1.3.6.1.6.3.1.1.5.1")).is_printer_alert  # coldStart
    with pytest.raises(PayloadError, match="not an SNMPv1/v2c message"):
        decode_trap(b"\x30\x03\x02\x01")


async def _until(logs: list[MutableMapping[str, Any]], event: str, count: int, timeout_s: float = 15.0) -> float:
    """Seconds until ``count`` ``event`` log lines were seen."""
    start = time.monotonic()
    while sum(1 for e in logs if e["event"] == event) < count:
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"no {count} x {event} within {timeout_s} s: {[e['event'] for e in logs]}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_a_trap_polls_the_printer_at_once_and_a_stranger_is_ignored(
    snmpsim: Simulator, write_config: Callable[[str], Path], tmp_path: Path
) -> None:
    trap_port = free_port(socket.SOCK_DGRAM)
    settings = load(
        write_config(
            f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n[metrics]\nenabled = false\n'
            "[scheduler]\npoll_interval_s = 3600\n[service]\nalert_after_minutes = 0\n"
            f'[snmp]\ncommunities = ["{SEQUENCE}"]\ntimeout_s = 4\nretries = 1\n'
            f'[snmp.traps]\nenabled = true\nhost = "127.0.0.1"\nport = {trap_port}\ncommunities = ["{COMMUNITY}"]\n'
            f'[[snmp.targets]]\nhost = "127.0.0.1"\nport = {snmpsim.port}\n'
        ),
        {},
    )
    await _healthy(snmpsim)
    daemon = Daemon(settings)
    try:
        with capture_logs() as logs:
            task = asyncio.create_task(daemon.run())
            await _until(logs, "trap_listener_started", 1)
            # The round the scheduler runs at start, done before the jam: what follows is the traps' doing.
            await _until(logs, "poll_round_done", 1)
            assert daemon.trap_port == trap_port
            _send(v2c_trap(COMMUNITY), trap_port, source="127.0.0.2")  # not a printer meterd polls
            _send(v2c_trap("guess"), trap_port)  # wrong community
            await _until(logs, "trap_ignored", 2)
            await _jam(snmpsim)
            _send(v2c_trap(COMMUNITY), trap_port)
            jam_seen_after = await _until(logs, "trap_polled", 1)
            await _healthy(snmpsim)
            _send(v1_trap(COMMUNITY), trap_port)
            await _until(logs, "trap_polled", 2)
            daemon.request_stop()
            await asyncio.wait_for(task, 20)
    finally:
        await _healthy(snmpsim)
    ignored = [(e["sender"], e["reason"]) for e in logs if e["event"] == "trap_ignored"]
    assert ("127.0.0.2", "not an address meterd polls") in ignored
    assert ("127.0.0.1", "unknown community") in ignored
    assert jam_seen_after < 10
    polled = [e for e in logs if e["event"] == "trap_polled"]
    assert [(e["sender"], e["version"]) for e in polled] == [("127.0.0.1", "2c"), ("127.0.0.1", "1")]
    assert sum(1 for e in logs if e["event"] == "poll_round_done") == 3  # the start's round and one per trap
    async with Store.open(settings.database_url) as store:
        history = await faults(store, open_only=False)
        alerts = await faults(store, open_only=False, alerts_only=True)
    jam = [f for f in history if f.code in {"jam", "jammed", "down"}]
    assert sorted(f.code for f in jam) == ["down", "jam", "jammed"]
    assert all(f.device == SERIAL and f.ended_at is not None for f in jam)  # the v1 trap's poll saw it cleared
    assert [a.code for a in alerts] == ["down"]  # alert_after_minutes = 0: raised by the trap's poll
