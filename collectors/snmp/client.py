"""The SNMP client the collector and discovery use: GET in few PDUs, table walks, communities in order.

v1/v2c go through meterd's own codec and UDP transport (``ber``, ``transport``): pysnmp's
pyasn1 decoding was most of a warm poll's CPU. SNMPv3 stays on pysnmp's v3arch engine
(``v3``, imported at the first v3 request), whose answers become MeterdErrors here, once.
No MIBs are loaded: profiles name numeric OIDs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Self

import structlog

from collectors.snmp import ber
from collectors.snmp.ber import Value
from collectors.snmp.transport import SnmpTransport, host_port
from collectors.snmp.usm import UsmCredentials
from daemon.kernel.errors import DeviceTimeoutError, ProtocolError

if TYPE_CHECKING:
    from collectors.snmp.v3 import V3Requester

_log = structlog.get_logger(__name__)

__all__ = ["SnmpClient", "SnmpTarget", "Value"]

_MP_MODEL: Final = {"1": 0, "2c": 1}
_PDU_TYPES: Final = {"get": ber.GET_REQUEST, "next": ber.GET_NEXT_REQUEST, "bulk": ber.GET_BULK_REQUEST}
_BULK_REPETITIONS: Final = 16
# Rows past a column's end still have to be decoded: one answer carries at most this many
# bindings, so six columns side by side ask 6 rows each, one column 16.
_BINDS_PER_WALK_ANSWER: Final = 40
_MAX_WALK_ROWS: Final = 10_000  # a printer table is tens of rows; more means a looping agent
# Well under the 484-octet minimum message size every agent must accept for short OIDs;
# devices that take less answer tooBig and get half.
_MAX_OIDS_PER_PDU: Final = 24
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
        return host_port(self.host, self.port)


class SnmpClient:
    """GETs and table walks: v1/v2c through meterd's own transport, v3 through pysnmp. Enter with ``async with``."""

    def __init__(self) -> None:
        self._transport = SnmpTransport()
        # The community that answered last, per address: tried first next time.
        self._working_community: dict[str, str] = {}
        self._v3: V3Requester | None = None  # created, and pysnmp imported, at the first v3 request

    async def __aenter__(self) -> Self:
        await self._transport.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._transport.__aexit__(*exc)
        if self._v3 is not None:
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

    async def _get_answered(self, target: SnmpTarget, oids: list[str]) -> list[tuple[str, Value | None]]:
        """One GET, trying the communities in order (the one that answered last first)."""
        for community in self._communities(target):
            answer = await self._request(target, community, "get", oids)
            if answer is not None:
                self._working_community[target.address] = community
                return answer
        raise DeviceTimeoutError(target.address, len(target.communities))

    async def walk(self, target: SnmpTarget, column: str) -> dict[str, Value]:
        """Every instance under ``column``, keyed by full OID; see :meth:`walk_columns`."""
        return (await self.walk_columns(target, [column]))[column]

    async def walk_columns(self, target: SnmpTarget, columns: Sequence[str]) -> dict[str, dict[str, Value]]:
        """Every instance under each of ``columns``, walked side by side: column -> {OID: value}.

        One GETBULK (v2c/v3) or GETNEXT (v1) carries every column not yet finished, so a
        table of several columns costs the round trips of its longest column, not their sum.

        Raises:
            DeviceTimeoutError: no answer in time.
            ProtocolError: an error status, or an agent that returns OIDs out of order.
        """
        found: dict[str, dict[str, Value]] = {column: {} for column in columns}
        cursors = {column: column for column in found}  # the columns still being walked
        community = next(iter(self._communities(target)))
        kind: Literal["bulk", "next"] = "next" if target.version == "1" else "bulk"
        repetitions = _BULK_REPETITIONS
        while cursors:
            walking = list(cursors)
            rows = min(repetitions, max(1, _BINDS_PER_WALK_ANSWER // len(walking)))
            try:
                answer = await self._request(target, community, kind, list(cursors.values()), rows)
            except _ErrorStatus as status:
                if status.code == _TOO_BIG and kind == "bulk" and rows > 1:
                    repetitions = rows // 2  # fewer rows per answer, as RFC 3416 asks of the manager
                    continue
                if status.code in {_NO_SUCH_NAME, _TOO_BIG}:  # v1's end of view; a next value never sendable
                    if 0 < status.index <= len(walking) and len(walking) > 1:
                        del cursors[walking[status.index - 1]]  # that column ends here; the others go on
                        continue
                    return found
                raise ProtocolError(target.address, status.describe()) from None
            if answer is None:
                raise DeviceTimeoutError(target.address, 1)
            if not answer:
                return found
            _take_rows(target, answer, walking, cursors, found)
        return found

    def _communities(self, target: SnmpTarget) -> list[str]:
        if target.version == "3":
            return [""]  # a v3 target has its user instead
        remembered = self._working_community.get(target.address)
        if remembered in target.communities:
            return [remembered, *(c for c in target.communities if c != remembered)]
        return list(target.communities)

    async def _request(
        self,
        target: SnmpTarget,
        community: str,
        kind: Literal["get", "next", "bulk"],
        oids: list[str],
        repetitions: int = _BULK_REPETITIONS,
    ) -> list[tuple[str, Value | None]] | None:
        """One request; None on timeout, (oid, None) for an OID the device lacks."""
        if target.version == "3":
            return await self._v3_request(target, kind, oids, repetitions)
        try:
            response = await self._transport.exchange(
                target.host,
                target.port,
                version=_MP_MODEL[target.version],
                community=community.encode(),
                pdu_type=_PDU_TYPES[kind],
                oids=oids,
                timeout_s=target.timeout_s,
                retries=target.retries,
                max_repetitions=repetitions if kind == "bulk" else 0,
            )
        except OSError as err:
            raise ProtocolError(target.address, f"cannot reach {target.host}: {err}") from err
        except ValueError as err:  # an OID in the configuration or a profile that is not numeric
            raise ProtocolError(target.address, str(err)) from err
        if response is None:
            return None
        if response.error_status != 0:
            raise _ErrorStatus(response.error_status, response.error_index, response.error_name())
        return response.var_binds

    async def _v3_request(
        self, target: SnmpTarget, kind: Literal["get", "next", "bulk"], oids: list[str], repetitions: int
    ) -> list[tuple[str, Value | None]] | None:
        if target.usm is None:
            raise ProtocolError(target.address, "SNMPv3 target without a user; set its v3 settings")
        if self._v3 is None:
            from collectors.snmp import v3  # noqa: PLC0415 - pysnmp is loaded only where v3 is used

            self._v3 = v3.V3Requester()
        peer = (target.host, target.port, target.timeout_s, target.retries)
        answer = await self._v3.request(peer, target.usm, kind=kind, oids=oids, repetitions=repetitions)
        if answer.timed_out:
            return None
        if answer.error is not None:
            raise ProtocolError(target.address, answer.error)
        if answer.status != 0:
            raise _ErrorStatus(answer.status, answer.index, ber.error_status_name(answer.status))
        return answer.var_binds


def _take_rows(
    target: SnmpTarget,
    answer: list[tuple[str, Value | None]],
    walking: list[str],
    cursors: dict[str, str],
    found: dict[str, dict[str, Value]],
) -> None:
    """File one walk answer under its columns; a column ends at its first bind past it (or without value).

    GETBULK answers row by row: bind i belongs to column i mod len(walking) (RFC 3416 4.2.3).
    """
    for i, (oid, value) in enumerate(answer):
        column = walking[i % len(walking)]
        cursor = cursors.get(column)
        if cursor is None:
            continue  # that column ended earlier in this answer
        if value is None or not oid.startswith(column) or oid[len(column) : len(column) + 1] != ".":
            del cursors[column]
            continue
        # A broken agent can loop; an OID seen before is how that shows, checked in O(1) per row.
        if oid in found[column] or oid == column:
            raise ProtocolError(target.address, f"agent returned {oid} again after {cursor} (a loop)")
        found[column][oid] = value
        cursors[column] = oid
        if len(found[column]) > _MAX_WALK_ROWS:
            raise ProtocolError(target.address, f"table {column} has more than {_MAX_WALK_ROWS} rows")
