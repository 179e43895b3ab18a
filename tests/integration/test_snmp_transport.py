"""The v1/v2c transport against a scripted UDP peer, for what snmpsim cannot do on purpose:
lose a request, send garbage, answer under another community; and a full send buffer."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import structlog

from collectors.snmp.client import SnmpClient, SnmpTarget
from collectors.snmp.transport import _Endpoint
from daemon.kernel.errors import DeviceTimeoutError
from tests.snmp_messages import V2C, pyasn1_request_header, pyasn1_response

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
# What the peer does with request number n (from 0), given its (community, request-id):
# the datagrams to send back, possibly none.
Script = Callable[[int, bytes, int], list[bytes]]


class _Peer(asyncio.DatagramProtocol):
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[tuple[bytes, int, list[str]]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        community, request_id, names = pyasn1_request_header(data)
        self.requests.append((community, request_id, names))
        assert self.transport is not None
        for answer in self.script(len(self.requests) - 1, community, request_id):
            self.transport.sendto(answer, addr)


@asynccontextmanager
async def _peer(script: Script) -> AsyncIterator[tuple[_Peer, int]]:
    transport, peer = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Peer(script), local_addr=("127.0.0.1", 0)
    )
    try:
        yield peer, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def _answer(community: bytes, request_id: int) -> bytes:
    return pyasn1_response(V2C, community, request_id, [(SYS_DESCR, V2C.OctetString(b"Scripted printer"))])


async def test_a_lost_request_is_resent_with_the_same_request_id() -> None:
    def drop_the_first(n: int, community: bytes, request_id: int) -> list[bytes]:
        return [] if n == 0 else [_answer(community, request_id)]

    async with _peer(drop_the_first) as (peer, port), SnmpClient() as client:
        answer = await client.get(SnmpTarget("127.0.0.1", port, timeout_s=0.2, retries=1), [SYS_DESCR])

    assert answer == {SYS_DESCR: b"Scripted printer"}
    assert len(peer.requests) == 2
    assert peer.requests[0] == peer.requests[1]  # same community, request-id and OIDs


async def test_garbage_before_the_answer_is_logged_and_skipped() -> None:
    def garbage_first(_n: int, community: bytes, request_id: int) -> list[bytes]:
        return [b"\x30\x05\x02\x01\x01\x04\x00", _answer(community, request_id)]

    async with _peer(garbage_first) as (_, port), SnmpClient() as client:
        with structlog.testing.capture_logs() as events:
            answer = await client.get(SnmpTarget("127.0.0.1", port, timeout_s=1.0, retries=0), [SYS_DESCR])

    assert answer == {SYS_DESCR: b"Scripted printer"}
    malformed = [e for e in events if e["event"] == "snmp_malformed_answer"]
    assert len(malformed) == 1
    assert malformed[0]["peer"] == f"127.0.0.1:{port}"


async def test_an_answer_under_another_community_is_not_taken() -> None:
    def wrong_community(_n: int, _community: bytes, request_id: int) -> list[bytes]:
        return [_answer(b"someone-else", request_id)]

    async with _peer(wrong_community) as (peer, port), SnmpClient() as client:
        with pytest.raises(DeviceTimeoutError):
            await client.get(SnmpTarget("127.0.0.1", port, timeout_s=0.2, retries=1), [SYS_DESCR])

    assert len(peer.requests) == 2


async def test_answers_find_their_own_request_among_many_in_flight() -> None:
    def answer_with_its_oid(_n: int, community: bytes, request_id: int) -> list[bytes]:
        return [pyasn1_response(V2C, community, request_id, [(SYS_DESCR, V2C.OctetString(community))])]

    async with _peer(answer_with_its_oid) as (_, port), SnmpClient() as client:
        targets = [SnmpTarget("127.0.0.1", port, communities=(f"c{n}",), timeout_s=2.0) for n in range(200)]
        answers = await asyncio.gather(*(client.get(t, [SYS_DESCR]) for t in targets))

    assert [a[SYS_DESCR] for a in answers] == [f"c{n}".encode() for n in range(200)]


class _FullSendBuffer(socket.socket):
    """A UDP socket whose kernel send buffer is full for its first ``full_for`` sends (EAGAIN)."""

    def __init__(self, full_for: int) -> None:
        super().__init__(socket.AF_INET, socket.SOCK_DGRAM)
        self.setblocking(False)
        self.refused = 0
        self._full_for = full_for

    def sendto(self, data, address):  # type: ignore[no-untyped-def, override]
        if self.refused < self._full_for:
            self.refused += 1
            raise BlockingIOError
        return super().sendto(data, address)


async def test_requests_the_kernel_cannot_take_yet_wait_and_go_out_in_order() -> None:
    def answer_all(_n: int, community: bytes, request_id: int) -> list[bytes]:
        return [_answer(community, request_id)]

    async with _peer(answer_all) as (peer, port), SnmpClient() as client:
        full = _FullSendBuffer(full_for=3)
        client._transport._endpoints[socket.AF_INET] = _Endpoint(full)
        target = SnmpTarget("127.0.0.1", port, timeout_s=5.0, retries=0)  # a request dropped would time out
        answers = await asyncio.gather(*(client.get(target, [SYS_DESCR]) for _ in range(10)))

    assert answers == [{SYS_DESCR: b"Scripted printer"}] * 10
    assert full.refused == 3
    request_ids = [request_id for _community, request_id, _names in peer.requests]
    assert len(request_ids) == 10
    assert request_ids == sorted(request_ids)  # queued sends keep their order
