"""SNMP v1/v2c requests over one UDP socket per address family, matched by request-id.

Why not pysnmp's v1arch dispatcher: with meterd's own codec (``ber``) it only added a
pyasn1 round trip and a timer loop per request. Here a request is one ``sendto``, one
timer handle per attempt and one future; a retry resends the same message with the same
request-id, so a late answer to the first attempt still counts.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import itertools
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Final, Self

import structlog

from collectors.snmp import ber
from daemon.kernel.errors import PayloadError

_log = structlog.get_logger(__name__)

# Room for a round's answers arriving at once: at hundreds of requests in flight the
# default buffer overflows and the kernel drops answers (UdpRcvbufErrors). The kernel caps
# this at net.core.rmem_max unless raised there too (see bench/README.md).
_RECEIVE_BUFFER_BYTES: Final = 8 * 1024 * 1024
# Printers get new addresses from DHCP; a name is looked up again after this long.
_RESOLVED_FOR_S: Final = 600.0
_REQUEST_ID_SPACE: Final = 2**31
_MAX_DATAGRAM: Final = 65535
# Bounded so one busy socket cannot starve the loop's other work.
_READS_PER_WAKEUP: Final = 64
_SocketAddress = tuple[Any, ...]  # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6


def host_port(host: object, port: object) -> str:
    """``host:port``, an IPv6 address in brackets (``[::1]:161``) so the port is not read as part of it."""
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


@dataclass(slots=True)
class _Pending:
    message: bytes
    address: _SocketAddress
    community: bytes
    timeout_s: float
    attempts_left: int
    answer: asyncio.Future[ber.Response | None]
    timer: asyncio.TimerHandle | None = field(default=None)


class _Endpoint:
    """One non-blocking UDP socket, read until empty at each wake-up.

    asyncio's datagram transport reads one datagram per event-loop pass; with hundreds of
    answers in flight that is an epoll call and a callback handle per answer. Reading them
    in one go took a fifth to a half off the CPU of an exchange (bench/snmp_exchange.py, bench/README.md).
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._unsent: collections.deque[tuple[bytes, _SocketAddress]] = collections.deque()
        self.waiting: dict[int, _Pending] = {}
        self._loop.add_reader(sock.fileno(), self._read)

    def close(self) -> None:
        self._loop.remove_reader(self._sock.fileno())
        if self._unsent:
            self._loop.remove_writer(self._sock.fileno())
        self._sock.close()

    def _read(self) -> None:
        for _ in range(_READS_PER_WAKEUP):
            try:
                data, addr = self._sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # unconnected UDP: an error cannot be tied to a request; that request times out
                _log.debug("snmp_socket_error", error=str(err))
                return
            self._received(data, addr)

    def _received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            response = ber.decode_response(data)
        except PayloadError as err:
            _log.warning("snmp_malformed_answer", peer=host_port(addr[0], addr[1]), error=str(err))
            return
        pending = self.waiting.get(response.request_id)
        # The community must match too: a stray answer with a reused id is not this request's.
        if pending is None or pending.community != response.community or pending.answer.done():
            return
        if pending.timer is not None:
            pending.timer.cancel()
        pending.answer.set_result(response)

    def attempt(self, pending: _Pending) -> None:
        """Send (again), or give up with None when no attempts are left."""
        if pending.answer.done():
            return
        if pending.attempts_left == 0 or self._sock.fileno() < 0:
            pending.answer.set_result(None)
            return
        pending.attempts_left -= 1
        self._send(pending.message, pending.address)
        pending.timer = self._loop.call_later(pending.timeout_s, self.attempt, pending)

    def _send(self, message: bytes, address: _SocketAddress) -> None:
        """Send now, or queue behind what the kernel could not take yet (its send buffer was full)."""
        self._unsent.append((message, address))
        if len(self._unsent) == 1 and not self._drain():  # nothing was waiting, and this one could not go
            self._loop.add_writer(self._sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        if self._drain():
            self._loop.remove_writer(self._sock.fileno())

    def _drain(self) -> bool:
        """Send what is queued, in order; False when the kernel's send buffer is full again."""
        while self._unsent:
            message, address = self._unsent[0]
            try:
                self._sock.sendto(message, address)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as err:  # no route to the host, say: as a datagram lost on the way, the request times out
                _log.debug("snmp_socket_error", error=str(err))
            self._unsent.popleft()
        return True


class SnmpTransport:
    """Sends requests and waits for their answers. Enter with ``async with``; sockets open on first use."""

    def __init__(self) -> None:
        self._endpoints: dict[int, _Endpoint] = {}
        self._addresses: dict[tuple[str, int], tuple[int, _SocketAddress, float]] = {}
        self._request_ids = itertools.count(random.randrange(_REQUEST_ID_SPACE))  # noqa: S311 - not a secret

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()

    async def exchange(
        self,
        host: str,
        port: int,
        *,
        version: int,
        community: bytes,
        pdu_type: int,
        oids: list[str],
        timeout_s: float,
        retries: int,
        max_repetitions: int = 0,
    ) -> ber.Response | None:
        """One request, resent up to ``retries`` times; None when no answer came.

        Raises:
            OSError: the host name cannot be resolved.
        """
        family, address = await self._resolve(host, port)
        endpoint = self._endpoints.get(family) or self._open(family)
        request_id = self._free_request_id(endpoint)
        message = ber.encode_request(
            version=version,
            community=community,
            pdu_type=pdu_type,
            request_id=request_id,
            oids=oids,
            max_repetitions=max_repetitions,
        )
        answer: asyncio.Future[ber.Response | None] = asyncio.get_running_loop().create_future()
        pending = _Pending(message, address, community, timeout_s, retries + 1, answer)
        endpoint.waiting[request_id] = pending
        try:
            endpoint.attempt(pending)
            return await answer
        finally:
            del endpoint.waiting[request_id]
            if pending.timer is not None:
                pending.timer.cancel()

    def _free_request_id(self, endpoint: _Endpoint) -> int:
        while True:
            request_id = next(self._request_ids) % _REQUEST_ID_SPACE
            if request_id not in endpoint.waiting:
                return request_id

    async def _resolve(self, host: str, port: int) -> tuple[int, _SocketAddress]:
        known = self._addresses.get((host, port))
        now = time.monotonic()
        if known is not None and now < known[2]:
            return known[0], known[1]
        try:  # an address needs no lookup (and no trip to the resolver's thread), and never expires
            literal = ipaddress.ip_address(host)
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_DGRAM)
            # IPv4 first, as pysnmp's transport did: "localhost" and dual-stack names list ::1 / AAAA
            # first, and a printer's agent is far more often on IPv4 only than on IPv6 only.
            infos.sort(key=lambda info: info[0] != socket.AF_INET)
            family, _type, _proto, _name, address = infos[0]
            expires = now + _RESOLVED_FOR_S
        else:
            family = socket.AF_INET if literal.version == 4 else socket.AF_INET6  # noqa: PLR2004
            address = (host, port) if family == socket.AF_INET else (host, port, 0, 0)
            expires = float("inf")
        self._addresses[(host, port)] = (family, address, expires)
        return family, address

    def _open(self, family: int) -> _Endpoint:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)  # noqa: FBT003 - the socket API
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER_BYTES)
        except OSError as err:
            _log.warning("snmp_receive_buffer_not_set", error=str(err))
        endpoint = self._endpoints[family] = _Endpoint(sock)
        return endpoint
