"""One SNMP exchange (request out, answer matched and decoded) against a bare asyncio UDP loop.

    .venv/bin/python bench/snmp_exchange.py [--exchanges 10000] [--in-flight 256] [--repeat 3]

Two net-snmp ``snmpd`` processes answer (``apt-get install snmpd``), one loopback address
per simulated device as in ``snmp_round.py``. In the same run, alternating:

- **meterd**: ``SnmpClient.get`` of sysObjectID, i.e. encode, send, match by request-id and
  community, decode, with a timer per request (meterd's own transport);
- **bare asyncio**: the same request bytes, encoded once, sent through asyncio's datagram
  transport, each answer only counted (no decode, no matching, no timer, no task per
  request): the floor of an asyncio UDP exchange on this machine.

Prints CPU-seconds per 1,000 exchanges for each and meterd's ratio to the bare loop: what
meterd's request machinery (encode, timers, request-id matching, decode, the coroutine
of the caller) costs over that floor.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Final

from snmp_round import SNMPD_COMMUNITY, _free_udp_port, _loopback_host, _Snmpd, _target

from collectors.snmp import ber
from collectors.snmp.client import SnmpClient, SnmpTarget

SYS_OBJECT_ID: Final = "1.3.6.1.2.1.1.2.0"


async def _meterd(targets: list[SnmpTarget], in_flight: int) -> float:
    pending = iter(targets)
    async with SnmpClient() as client:

        async def worker() -> None:
            for target in pending:
                await client.get(target, [SYS_OBJECT_ID])

        cpu = time.process_time()
        async with asyncio.TaskGroup() as group:
            for _ in range(in_flight):
                group.create_task(worker())
        return time.process_time() - cpu


class _Counter(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answered = 0
        self.slot = asyncio.Semaphore(0)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:  # noqa: ARG002
        self.answered += 1
        self.slot.release()


async def _bare(targets: list[SnmpTarget], in_flight: int) -> tuple[float, int]:
    """CPU of the loop, and how many answers came (a lost one is not resent: its slot frees after 0.5 s)."""
    request = ber.encode_request(
        version=1, community=SNMPD_COMMUNITY.encode(), pdu_type=ber.GET_REQUEST, request_id=1, oids=[SYS_OBJECT_ID]
    )
    addresses = [(target.host, target.port) for target in targets]
    loop = asyncio.get_running_loop()
    transport, counter = await loop.create_datagram_endpoint(_Counter, family=socket.AF_INET)
    try:
        cpu = time.process_time()
        for n, address in enumerate(addresses):
            if n >= in_flight:  # one answer in, one more request out
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await counter.slot.acquire()
            transport.sendto(request, address)
        while counter.answered < len(addresses):  # the last answers, until a second passes without one
            before = counter.answered
            await asyncio.sleep(1.0)
            if counter.answered == before:
                break
        return time.process_time() - cpu, counter.answered
    finally:
        transport.close()


async def main(options: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="meterd-bench-"))
    responders = [_Snmpd(workdir, _free_udp_port()) for _ in range(2)]
    for responder in responders:
        responder.start()
    try:
        for responder in responders:
            await responder.wait_ready(SNMPD_COMMUNITY, timeout_s=60)
        targets = [
            _target(responders[n % 2].port, SNMPD_COMMUNITY, _loopback_host(n)) for n in range(options.exchanges)
        ]
        figures: dict[str, list[float]] = {"meterd": [], "bare asyncio": []}
        lost = 0
        for _ in range(options.repeat):
            figures["meterd"].append(await _meterd(targets, options.in_flight) / options.exchanges * 1000)
            cpu_s, answered = await _bare(targets, options.in_flight)
            figures["bare asyncio"].append(cpu_s / answered * 1000)
            lost += len(targets) - answered
        for label, runs in figures.items():
            shown = "  ".join(f"{run:.3f}" for run in runs)
            print(f"{label:<13} {options.exchanges} exchanges x {options.repeat}: {shown} CPU-s/1k")
        print(f"(bare asyncio: {lost} answers lost in all, not resent; its figure is per answer)")
        ratio = statistics.median(figures["meterd"]) / statistics.median(figures["bare asyncio"])
        print(f"meterd / bare asyncio (medians) = {ratio:.2f} (meterd's includes encode, matching, decode, timers)")
    finally:
        for responder in responders:
            responder.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
