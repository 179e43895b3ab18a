"""SNMPv3 (USM) requests on pysnmp's v3arch engine, kept apart from the v1/v2c hot path.

v3arch costs more CPU per request and a lot per new target (engine tables), so it is
used only for targets configured as version 3, on one engine created at first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pyasn1.type import univ
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
from pysnmp.proto.rfc1902 import ObjectName

AuthProtocol = Literal["none", "sha", "sha256"]
PrivProtocol = Literal["none", "aes128", "aes256"]

_AUTH: Final = {"none": usmNoAuthProtocol, "sha": usmHMACSHAAuthProtocol, "sha256": usmHMAC192SHA256AuthProtocol}
_PRIV: Final = {"none": usmNoPrivProtocol, "aes128": usmAesCfb128Protocol, "aes256": usmAesCfb256Protocol}


@dataclass(frozen=True, slots=True)
class UsmCredentials:
    """One SNMPv3 user: noAuthNoPriv, authNoPriv or authPriv. Keys never appear in a repr."""

    user: str
    auth_protocol: AuthProtocol = "none"
    auth_key: str = field(default="", repr=False)
    priv_protocol: PrivProtocol = "none"
    priv_key: str = field(default="", repr=False)
    context: str = ""

    def usm_user(self) -> UsmUserData:
        return UsmUserData(
            self.user,
            authKey=self.auth_key or None,
            privKey=self.priv_key or None,
            authProtocol=_AUTH[self.auth_protocol],
            privProtocol=_PRIV[self.priv_protocol],
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
    ) -> tuple[Any, Any, Any, Sequence[tuple[Any, Any]]]:
        """One request to ``peer`` (host, port, timeout_s, retries): pysnmp's (error, status, index, varBinds)."""
        if self._engine is None:
            self._engine = SnmpEngine()
        transport = self._transports.get(peer)
        if transport is None:
            host, port, timeout_s, retries = peer
            transport = await UdpTransportTarget.create((host, port), timeout=timeout_s, retries=retries)
            self._transports[peer] = transport
        user = self._users.get(credentials)
        if user is None:
            user = self._users[credentials] = credentials.usm_user()
        context = ContextData(contextName=credentials.context)
        var_binds = [(ObjectName(oid), univ.Null()) for oid in oids]
        if kind == "get":
            return await get_cmd(self._engine, user, transport, context, *var_binds, lookupMib=False)  # type: ignore[no-any-return]
        if kind == "next":
            return await next_cmd(self._engine, user, transport, context, *var_binds, lookupMib=False)  # type: ignore[no-any-return]
        return await bulk_cmd(self._engine, user, transport, context, 0, repetitions, *var_binds, lookupMib=False)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None
