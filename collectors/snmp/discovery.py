"""Find printers in an address range without flooding it.

Every address gets one small GET (sysObjectID, sysDescr, a Printer-MIB object), started
at no more than ``rate`` per second; only what answers with the Printer-MIB is then
probed in full through the collector (vendor, model, serial, profile).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Final

from collectors.snmp import printer_mib as pm
from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.mapping import DeviceReport
from daemon.kernel.errors import CollectorError, DeviceTimeoutError

# prtGeneralConfigChanges: every Printer-MIB agent has it; a router or a PC does not.
_PRINTER_MIB_PROBE: Final = "1.3.6.1.2.1.43.5.1.1.1.1"
_SWEEP_OIDS: Final = (pm.SYS_OBJECT_ID, pm.SYS_DESCR, _PRINTER_MIB_PROBE, pm.PRT_MARKER_LIFE_COUNT)


def addresses(network: str) -> list[str]:
    """The host addresses of a CIDR range (a single address is a /32)."""
    net = ipaddress.ip_network(network, strict=False)
    return [str(a) for a in (net.hosts() if net.num_addresses > 2 else net)]  # noqa: PLR2004 - /31 and /32


@dataclass(frozen=True, slots=True)
class Found:
    """A printer found, and the target that reached it: with the one community (or the v3 user) that answered."""

    report: DeviceReport
    target: SnmpTarget


async def discover(
    collector: SnmpCollector, candidates: Iterable[SnmpTarget], *, rate: float, concurrency: int
) -> list[Found]:
    """Printers among ``candidates``: swept at most ``rate`` new addresses per second."""
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def check(index: int, target: SnmpTarget) -> Found | None:
        await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
        async with gate:
            # One community at a time, as the client would try them, to learn which one answered:
            # the target written for the daemon must carry it, or it polls with the default and hears nothing.
            # (A v3 target has its one user: no communities to tell apart.)
            for single in [target] if target.usm else [replace(target, communities=(c,)) for c in target.communities]:
                try:
                    answer = await collector.client.get(single, _SWEEP_OIDS)
                    if _PRINTER_MIB_PROBE not in answer and pm.PRT_MARKER_LIFE_COUNT not in answer:
                        return None  # speaks SNMP, but is not a printer
                    return Found(await collector.poll(single), single)
                except DeviceTimeoutError:
                    continue
                except CollectorError:
                    return None
            return None

    found = await asyncio.gather(*(check(i, t) for i, t in enumerate(candidates)))
    return [printer for printer in found if printer is not None]
