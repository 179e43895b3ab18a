"""A listener for Printer-MIB alert traps (RFC 3805): printerV2Alert (SNMPv2c) and printerV1Alert (SNMPv1).

A trap only says "look at me now": the caller polls the device, so its status and alert table are
read the usual way; nothing in the trap is trusted beyond the sender's address and community.
printerV2Alert is 1.3.6.1.2.1.43.18.2.0.1; printerV1Alert is its SNMPv1 form, enterprise
1.3.6.1.2.1.43.18.2 with specific-trap 1 (RFC 3584's mapping).

Decoding uses pysnmp's protocol API (pyasn1): traps are rare, so the speed of the poll codec is not needed,
and pysnmp (~35 MB resident) is imported at the first trap, not by every v1/v2c agent that listens.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

import structlog

from daemon.kernel.errors import CollectorError, PayloadError

PRINTER_V2_ALERT: Final = "1.3.6.1.2.1.43.18.2.0.1"
PRINTER_V1_ENTERPRISE: Final = "1.3.6.1.2.1.43.18.2"
_SNMP_TRAP_OID: Final = "1.3.6.1.6.3.1.1.4.1.0"
_ENTERPRISE_SPECIFIC: Final = 6
_MAX_DATAGRAM: Final = 65_535

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Trap:
    version: str  # "1" or "2c"
    community: str
    trap_oid: str  # the SNMPv2 form, for v1 traps too

    @property
    def is_printer_alert(self) -> bool:
        return self.trap_oid == PRINTER_V2_ALERT


def decode_trap(datagram: bytes) -> Trap:
    """A v1 Trap-PDU or v2c SNMPv2-Trap-PDU.

    Raises:
        PayloadError: ``bad_trap``: not BER, not v1/v2c, or not a trap.
    """
    from pyasn1.codec.ber import decoder  # noqa: PLC0415 - pysnmp is loaded only where a trap arrives
    from pyasn1.error import PyAsn1Error  # noqa: PLC0415
    from pysnmp.proto import api  # noqa: PLC0415

    try:
        version = api.decodeMessageVersion(datagram)
        module: Any = api.PROTOCOL_MODULES[version]
        message, _rest = decoder.decode(datagram, asn1Spec=module.Message())
        pdu = module.apiMessage.get_pdu(message)
        community = bytes(module.apiMessage.get_community(message)).decode("utf-8", "replace")
        if version == api.SNMP_VERSION_1 and pdu.isSameTypeWith(module.TrapPDU()):
            enterprise = str(module.apiTrapPDU.get_enterprise(pdu).prettyPrint())
            generic = int(module.apiTrapPDU.get_generic_trap(pdu))
            specific = int(module.apiTrapPDU.get_specific_trap(pdu))
            # RFC 3584: an enterprise-specific v1 trap is enterprise.0.specific in SNMPv2.
            oid = f"{enterprise}.0.{specific}" if generic == _ENTERPRISE_SPECIFIC else f"generic:{generic}"
            return Trap("1", community, oid)
        if version == api.SNMP_VERSION_2C and pdu.isSameTypeWith(module.TrapPDU()):
            binds = {str(name.prettyPrint()): value for name, value in module.apiPDU.get_varbinds(pdu)}
            trap_oid = binds.get(_SNMP_TRAP_OID)
            return Trap("2c", community, str(trap_oid.prettyPrint()) if trap_oid is not None else "")
    except (PyAsn1Error, KeyError, ValueError) as err:
        raise PayloadError("bad_trap", f"not an SNMPv1/v2c message ({err})") from err
    raise PayloadError("bad_trap", "an SNMP message, but not a trap")


OnTrap = Callable[[str, Trap], Coroutine[Any, Any, None]]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, received: Callable[[bytes, str], None]) -> None:
        self._received = received

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._received(data[:_MAX_DATAGRAM], str(addr[0]))


class TrapListener:
    """UDP on ``host:port``; each printer-alert trap with a known community is handed to ``on_trap(sender, trap)``.

    Enter with ``async with``; the handlers still running at exit are cancelled. Anything else
    (garbage, another trap, a wrong community) is logged and dropped.
    """

    def __init__(self, host: str, port: int, communities: Sequence[str], on_trap: OnTrap) -> None:
        self._host = host
        self._port = port
        self._communities = [c.encode() for c in communities]
        self._on_trap = on_trap
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.bound_port: int | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Protocol(self._received), local_addr=(self._host, self._port)
            )
        except OSError as err:
            msg = f"cannot listen for traps on {self._host}:{self._port} ({err}); pick another snmp.traps.port"
            raise CollectorError(f"{self._host}:{self._port}", msg) from err
        self._transport = transport
        self.bound_port = int(transport.get_extra_info("sockname")[1])
        log.info("trap_listener_started", host=self._host, port=self.bound_port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _received(self, data: bytes, sender: str) -> None:
        try:
            trap = decode_trap(data)
        except PayloadError as err:
            log.warning("trap_ignored", sender=sender, reason=err.detail)
            return
        # Compared in constant time: the community is the only secret a v2c trap carries.
        if not any(hmac.compare_digest(trap.community.encode(), known) for known in self._communities):
            log.warning("trap_ignored", sender=sender, reason="unknown community")
            return
        if not trap.is_printer_alert:
            log.info("trap_ignored", sender=sender, reason=f"not a printer alert ({trap.trap_oid})")
            return
        task = asyncio.get_running_loop().create_task(self._on_trap(sender, trap))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("trap_poll_failed", error=str(task.exception()))
