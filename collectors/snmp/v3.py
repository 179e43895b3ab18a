"""SNMPv3 (USM) requests on pysnmp's v3arch engine, kept apart from the v1/v2c hot path.

v3arch costs more CPU per request and a lot per new target (engine tables), so it is
used only for targets configured as version 3, on one engine created at first use.
This is the one module that imports pysnmp, and the client imports it at the first v3
request: a site without v3 printers never loads it (~35 MB resident).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pyasn1.type import univ
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    ContextData,
    SnmpEngine,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
    next_cmd,
    usmAesCfb128Protocol,
    usmAesCfb256Protocol,
    usmHMAC192SHA256AuthProtocol,
    usmHMACSHAAuthProtocol,
    usmNoAuthProtocol,
    usmNoPrivProtocol,
)
from pysnmp.proto import rfc1905
from pysnmp.proto.rfc1902 import ObjectName

from collectors.snmp.ber import Value
from collectors.snmp.usm import UsmCredentials

_AUTH: Final = {"none": usmNoAuthProtocol, "sha": usmHMACSHAAuthProtocol, "sha256": usmHMAC192SHA256AuthProtocol}
_PRIV: Final = {"none": usmNoPrivProtocol, "aes128": usmAesCfb128Protocol, "aes256": usmAesCfb256Protocol}
_COMMANDS: Final[dict[str, Any]] = {"get": get_cmd, "next": next_cmd, "bulk": bulk_cmd}
_V3_HINTS: Final = {
    "unknownuser": "the device does not know this SNMPv3 user",
    "digest": "SNMPv3 authentication failed: check the auth protocol and key",
    "decrypt": "SNMPv3 decryption failed: check the privacy protocol and key",
    "securitylevel": "the device does not accept this security level for the user",
    "timewindow": "the device's SNMPv3 clock (engine time) is out of step; retry",
}


@dataclass(frozen=True, slots=True)
class V3Answer:
    """pysnmp's answer in plain terms: an error indication (with what to check), or status and bindings."""

    error: str | None
    timed_out: bool = False
    status: int = 0
    index: int = 0
    var_binds: list[tuple[str, Value | None]] = field(default_factory=list)


def _usm_user(credentials: UsmCredentials) -> UsmUserData:
    return UsmUserData(
        credentials.user,
        authKey=credentials.auth_key or None,
        privKey=credentials.priv_key or None,
        authProtocol=_AUTH[credentials.auth_protocol],
        privProtocol=_PRIV[credentials.priv_protocol],
    )


class V3Requester:
    """Sends v3 requests; the engine (and its engine-ID discovery per peer) lives as long as this."""

    def __init__(self) -> None:
        self._engine: SnmpEngine | None = None
        self._transports: dict[tuple[str, int, float, int], UdpTransportTarget] = {}
        self._users: dict[UsmCredentials, UsmUserData] = {}

    async def request(
        self,
        peer: tuple[str, int, float, int],
        credentials: UsmCredentials,
        *,
        kind: Literal["get", "next", "bulk"],
        oids: Sequence[str],
        repetitions: int,
    ) -> V3Answer:
        """One request to ``peer`` (host, port, timeout_s, retries); pysnmp's errors come back as text."""
        _host, _port, timeout_s, retries = peer
        # GETBULK's non-repeaters and max-repetitions come before the bindings.
        bulk_head = (0, repetitions) if kind == "bulk" else ()
        var_binds = [(ObjectName(oid), univ.Null()) for oid in oids]
        try:
            async with asyncio.timeout(timeout_s * (retries + 1) + 1.0):  # pysnmp's own timer, bounded once more
                engine, user, transport = await self._session(peer, credentials)
                context = ContextData(contextName=credentials.context)
                error, status, index, answer = await _COMMANDS[kind](
                    engine, user, transport, context, *bulk_head, *var_binds, lookupMib=False
                )
        except TimeoutError:
            return V3Answer(None, timed_out=True)
        except PySnmpError as err:
            return V3Answer(f"SNMP failure: {err}")
        if error is not None:
            text = str(error)
            return V3Answer(_explain(text), timed_out="timeout" in text.lower())
        return V3Answer(
            None,
            status=int(status),
            index=int(index),
            var_binds=[(str(oid), _python_value(value)) for oid, value in answer],
        )

    async def _session(
        self, peer: tuple[str, int, float, int], credentials: UsmCredentials
    ) -> tuple[SnmpEngine, UsmUserData, UdpTransportTarget]:
        """The engine, user and transport target for ``peer``, made once and kept."""
        if self._engine is None:
            self._engine = SnmpEngine()
        transport = self._transports.get(peer)
        if transport is None:
            host, port, timeout_s, retries = peer
            transport = await UdpTransportTarget.create((host, port), timeout=timeout_s, retries=retries)
            self._transports[peer] = transport
        user = self._users.get(credentials)
        if user is None:
            user = self._users[credentials] = _usm_user(credentials)
        return self._engine, user, transport

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None


def _explain(error: str) -> str:
    """Pysnmp's v3 error indication, with what to check."""
    squashed = error.replace(" ", "").lower()
    for marker, hint in _V3_HINTS.items():
        if marker in squashed:
            return f"{hint} ({error})"
    return error


def _python_value(value: object) -> Value | None:
    """A pysnmp value as a plain one, as ``ber`` gives for v1/v2c; None where the device has none."""
    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView, univ.Null)):
        return None
    if isinstance(value, univ.ObjectIdentifier):
        return str(value)
    if isinstance(value, univ.OctetString):  # also IpAddress, Opaque
        return bytes(value)
    if isinstance(value, univ.Integer):  # Integer32, Counter32/64, Gauge32, TimeTicks, Unsigned32
        return int(value)
    return None
