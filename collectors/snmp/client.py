"""A thin SNMP v1/v2c client on pysnmp 7's v1arch API; pysnmp errors are translated here, once.

v1arch, not v3arch: measured on this project's targets, v3arch costs about 1.5x the
CPU warm and 20x on a cold round (per-target engine set-up), so v3arch is kept for
SNMPv3 targets only. No MIBs are loaded: profiles name numeric OIDs.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Self

import structlog
from pyasn1.type import univ
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v1arch.asyncio import (
    CommunityData,
    SnmpDispatcher,
    UdpTransportTarget,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from pysnmp.proto import rfc1905
from pysnmp.proto.rfc1902 import ObjectName

from collectors.snmp.v3 import UsmCredentials, V3Requester
from daemon.errors import DeviceTimeoutError, ProtocolError

_log = structlog.get_logger(__name__)

Value = int | bytes | str  # str only for OBJECT IDENTIFIER values, in dotted form
_MP_MODEL: Final = {"1": 0, "2c": 1}
_BULK_REPETITIONS: Final = 16
_MAX_WALK_ROWS: Final = 10_000  # a printer table is tens of rows; more means a looping agent
# Well under the 484-octet minimum message size every agent must accept for short OIDs;
# devices that take less answer tooBig and get half.
_MAX_OIDS_PER_PDU: Final = 24
# The kernel caps this at net.core.rmem_max unless raised there too (see bench/README.md).
_RECEIVE_BUFFER_BYTES: Final = 8 * 1024 * 1024
_TOO_BIG: Final = 1
_NO_SUCH_NAME: Final = 2


class _ErrorStatus(Exception):  # noqa: N818 - internal signal, never leaves this module
    """An answer with a non-zero error-status; the callers decide what it means."""

    def __init__(self, code: int, index: int, name: str) -> None:
        super().__init__(name)
        self.code = code
        self.index = index
        self.name = name

    def describe(self) -> str:
        return f"device answered error status {self.name} (index {self.index})"


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    """One device to ask: address, version and the communities to try in order."""

    host: str
    port: int = 161
    version: Literal["1", "2c", "3"] = "2c"
    communities: tuple[str, ...] = ("public",)
    timeout_s: float = 2.0
    retries: int = 1
    usm: UsmCredentials | None = None  # version "3" only

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class SnmpClient:
    """GET and table walks over one UDP dispatcher. Enter it with ``async with``; no I/O before."""

    def __init__(self) -> None:
        self._dispatcher: SnmpDispatcher | None = None
        # The community that answered last, per address: tried first next time.
        self._working_community: dict[str, str] = {}
        # Resolving and building a transport target costs more than the request itself.
        self._transports: dict[tuple[str, int, float, int], UdpTransportTarget] = {}
        self._receive_buffer_set = False
        self._v3 = V3Requester()

    async def __aenter__(self) -> Self:
        self._dispatcher = SnmpDispatcher()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._dispatcher is not None:
            self._dispatcher.transport_dispatcher.close_dispatcher()
            self._dispatcher = None
        self._v3.close()

    async def get(self, target: SnmpTarget, oids: Sequence[str]) -> dict[str, Value]:
        """GET ``oids`` in as few PDUs as the device takes; OIDs it lacks are left out.

        Requests carry at most ``_MAX_OIDS_PER_PDU`` OIDs; a device that answers tooBig gets
        the half-size request, down to one OID. On SNMPv1 a missing OID fails the whole PDU
        (noSuchName): that OID is dropped and the rest asked again.

        Raises:
            DeviceTimeoutError: no community got an answer in time.
            ProtocolError: the device answered with another error status.
        """
        found: dict[str, Value] = {}
        unique = list(dict.fromkeys(oids))
        for start in range(0, len(unique), _MAX_OIDS_PER_PDU):
            found |= await self._get_batch(target, unique[start : start + _MAX_OIDS_PER_PDU])
        return found

    async def _get_batch(self, target: SnmpTarget, oids: list[str]) -> dict[str, Value]:
        pending = list(oids)
        while pending:
            try:
                answer = await self._get_answered(target, pending)
            except _ErrorStatus as status:
                if status.code == _TOO_BIG and len(pending) > 1:
                    half = len(pending) // 2
                    return await self._get_batch(target, pending[:half]) | await self._get_batch(target, pending[half:])
                if status.code == _TOO_BIG:  # one value too big to send: the device cannot give it at all
                    _log.warning("snmp_value_too_big", address=target.address, oid=pending[0])
                    return {}
                if status.code == _NO_SUCH_NAME and 0 < status.index <= len(pending):
                    del pending[status.index - 1]
                    continue
                raise ProtocolError(target.address, status.describe()) from None
            return {oid: value for oid, value in answer if value is not None}
        return {}

    async def _get_answered(self, target: SnmpTarget, oids: Sequence[str]) -> list[tuple[str, Value | None]]:
        """One GET, trying the communities in order (the one that answered last first)."""
        for community in self._communities(target):
            answer = await self._request(target, community, "get", oids)
            if answer is not None:
                self._working_community[target.address] = community
                return answer
        raise DeviceTimeoutError(target.address, len(target.communities))

    async def walk(self, target: SnmpTarget, column: str) -> dict[str, Value]:
        """Every instance under ``column`` (GETBULK on v2c, GETNEXT on v1), keyed by full OID.

        Raises:
            DeviceTimeoutError: no answer in time.
            ProtocolError: an error status, or an agent that returns OIDs out of order.
        """
        prefix = column.rstrip(".") + "."
        found: dict[str, Value] = {}
        cursor = column
        community = next(iter(self._communities(target)))
        kind: Literal["bulk", "next"] = "next" if target.version == "1" else "bulk"
        repetitions = _BULK_REPETITIONS
        while len(found) < _MAX_WALK_ROWS:
            try:
                answer = await self._request(target, community, kind, [cursor], repetitions)
            except _ErrorStatus as status:
                if status.code == _TOO_BIG and kind == "bulk" and repetitions > 1:
                    repetitions //= 2  # fewer rows per answer, as RFC 3416 asks of the manager
                    continue
                if status.code in {_NO_SUCH_NAME, _TOO_BIG}:  # v1's end of view; a next value never sendable
                    return found
                raise ProtocolError(target.address, status.describe()) from None
            if answer is None:
                raise DeviceTimeoutError(target.address, 1)
            if not answer:
                return found
            for oid, value in answer:
                if not oid.startswith(prefix) or value is None:
                    return found
                if _oid_key(oid) <= _oid_key(cursor):
                    raise ProtocolError(target.address, f"agent returned {oid} after {cursor} (not increasing)")
                found[oid] = value
                cursor = oid
        raise ProtocolError(target.address, f"table {column} has more than {_MAX_WALK_ROWS} rows")

    def _communities(self, target: SnmpTarget) -> list[str]:
        if target.version == "3":
            return [""]  # a v3 target has its user instead
        remembered = self._working_community.get(target.address)
        if remembered in target.communities:
            return [remembered, *(c for c in target.communities if c != remembered)]
        return list(target.communities)

    def _enlarge_receive_buffer(self) -> None:
        """Give pysnmp's one UDP socket room for a round's answers arriving at once.

        At hundreds of requests in flight the default buffer overflows, the kernel drops
        answers (UdpRcvbufErrors) and healthy printers look dead. The socket exists only
        after the first send, so this runs after the first request.
        """
        if self._dispatcher is None:
            return
        try:
            carrier = self._dispatcher.transport_dispatcher.get_transport(udp.DOMAIN_NAME)
        except PySnmpError:
            return  # no request sent yet
        datagram_transport = getattr(carrier, "transport", None)
        sock = datagram_transport.get_extra_info("socket") if datagram_transport is not None else None
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
        except OSError as err:
            _log.warning("snmp_receive_buffer_not_set", error=str(err))
        self._receive_buffer_set = True

    async def _transport(self, target: SnmpTarget) -> UdpTransportTarget:
        key = (target.host, target.port, target.timeout_s, target.retries)
        transport = self._transports.get(key)
        if transport is None:
            transport = await UdpTransportTarget.create(
                (target.host, target.port), timeout=target.timeout_s, retries=target.retries
            )
            self._transports[key] = transport
        return transport

    async def _request(
        self,
        target: SnmpTarget,
        community: str,
        kind: Literal["get", "next", "bulk"],
        oids: Sequence[str],
        repetitions: int = _BULK_REPETITIONS,
    ) -> list[tuple[str, Value | None]] | None:
        """One request; None on timeout, (oid, None) for an OID the device lacks."""
        if self._dispatcher is None:
            msg = "SnmpClient used outside `async with`"
            raise RuntimeError(msg)
        budget = target.timeout_s * (target.retries + 1) + 1.0
        try:
            async with asyncio.timeout(budget):
                if target.version == "3":
                    if target.usm is None:
                        raise ProtocolError(target.address, "SNMPv3 target without a user; set its v3 settings")
                    peer = (target.host, target.port, target.timeout_s, target.retries)
                    error, status, index, answer = await self._v3.request(
                        peer, target.usm, kind=kind, oids=oids, repetitions=repetitions
                    )
                else:
                    error, status, index, answer = await self._v1_request(target, community, kind, oids, repetitions)
        except TimeoutError:
            return None
        except PySnmpError as err:
            raise ProtocolError(target.address, f"SNMP failure: {err}") from err
        if not self._receive_buffer_set and target.version != "3":
            self._enlarge_receive_buffer()
        if error is not None:
            if "timeout" in str(error).lower():
                return None
            raise ProtocolError(target.address, _explain(str(error), target))
        if int(status) != 0:
            raise _ErrorStatus(int(status), int(index), status.prettyPrint())
        return [(str(oid), _python_value(value)) for oid, value in answer]

    async def _v1_request(
        self,
        target: SnmpTarget,
        community: str,
        kind: Literal["get", "next", "bulk"],
        oids: Sequence[str],
        repetitions: int,
    ) -> tuple[Any, Any, Any, Sequence[tuple[Any, Any]]]:
        assert self._dispatcher is not None
        auth = CommunityData(community, mpModel=_MP_MODEL[target.version])
        var_binds = [(ObjectName(oid), univ.Null()) for oid in oids]
        transport = await self._transport(target)
        if kind == "get":
            return await get_cmd(self._dispatcher, auth, transport, *var_binds)  # type: ignore[no-any-return]
        if kind == "next":
            return await next_cmd(self._dispatcher, auth, transport, *var_binds)  # type: ignore[no-any-return]
        return await bulk_cmd(self._dispatcher, auth, transport, 0, repetitions, *var_binds)  # type: ignore[no-any-return]


_V3_HINTS: Final = {
    "unknownuser": "the device does not know this SNMPv3 user",
    "digest": "SNMPv3 authentication failed: check the auth protocol and key",
    "decrypt": "SNMPv3 decryption failed: check the privacy protocol and key",
    "securitylevel": "the device does not accept this security level for the user",
    "timewindow": "the device's SNMPv3 clock (engine time) is out of step; retry",
}


def _explain(error: str, target: SnmpTarget) -> str:
    """Pysnmp's error indication, with what to check for the v3 ones."""
    if target.version == "3":
        squashed = error.replace(" ", "").lower()
        for marker, hint in _V3_HINTS.items():
            if marker in squashed:
                return f"{hint} ({error})"
    return error


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


def _python_value(value: object) -> Value | None:
    """A pysnmp value as a plain one; None for noSuchObject, noSuchInstance and endOfMibView.

    Checked against pyasn1's base types: SNMPv1 answers carry those (and rfc1155 types
    derived from them), v2c answers the rfc1902 subclasses.
    """
    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, univ.Null)):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return bytes(value)
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks, Unsigned32
        return int(value)
    return None
