"""Scheduled SNMP poll rounds: configured targets -> collector -> the one pipeline.

Also keeps each device's up/down state: a device that stops answering is logged once
when it goes down and once when it is back (``meterd_device_up``), and is retried with
back-off rather than hammered every round (sleeping printers wake slowly). In a CIDR
range most addresses hold no printer: one that has never answered is retried the same
way but is no device, so it is neither logged nor gauged as down.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

import structlog

from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.mapping import DeviceReport
from collectors.snmp.usm import UsmCredentials
from daemon.kernel.errors import CollectorError, DeviceTimeoutError
from daemon.services.faults import FaultTracker
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import Settings, SnmpV3User

log = structlog.get_logger(__name__)

_PROC_NET_SNMP: Final = Path("/proc/net/snmp")


class Planned(NamedTuple):
    """A target to poll, and the CIDR range it came from (None: a host listed by itself)."""

    target: SnmpTarget
    subnet: str | None


def expand_targets(settings: Settings) -> list[Planned]:
    """Every address to poll: hosts as given, CIDR ranges as their host addresses minus exclusions."""
    default_communities = tuple(c.get_secret_value() for c in settings.snmp.communities)
    targets: dict[tuple[str, int], Planned] = {}
    for entry in settings.snmp.targets:
        communities = tuple(c.get_secret_value() for c in entry.communities) if entry.communities else None
        subnet = entry.host if "/" in entry.host else None
        for host in _hosts(entry.host, entry.exclude):
            target = SnmpTarget(
                host=host,
                port=entry.port,
                version=entry.version,
                communities=communities or default_communities,
                timeout_s=settings.snmp.timeout_s,
                retries=settings.snmp.retries,
                usm=usm_credentials(entry.v3),
            )
            # A host listed by itself wins over the same address in a range: it is expected to answer.
            known = targets.get((host, entry.port))
            targets[(host, entry.port)] = Planned(target, subnet if known is None or known.subnet else None)
    return list(targets.values())


def usm_credentials(user: SnmpV3User | None) -> UsmCredentials | None:
    if user is None:
        return None
    return UsmCredentials(
        user=user.user,
        auth_protocol=user.auth_protocol,
        auth_key=user.auth_key.get_secret_value() if user.auth_key else "",
        priv_protocol=user.priv_protocol,
        priv_key=user.priv_key.get_secret_value() if user.priv_key else "",
        context=user.context,
    )


def _hosts(host: str, exclude: list[str]) -> Iterator[str]:
    if "/" not in host:
        yield host
        return
    excluded = [ipaddress.ip_network(e, strict=False) for e in exclude]
    network = ipaddress.ip_network(host, strict=False)
    for address in network.hosts() if network.num_addresses > 2 else network:  # noqa: PLR2004 - /31, /32
        if not any(address in net for net in excluded):
            yield str(address)


@dataclass(slots=True)
class _Health:
    # An address of a range that has never answered is no device: its silence is not a device down.
    in_range: bool = False
    up: bool | None = None  # None: not heard from yet
    failures: int = 0
    down_since: float = 0.0
    next_try: float = 0.0
    problems: frozenset[str] = field(default_factory=frozenset)


class PollRound:
    """One configured fleet, polled a round at a time; call :meth:`run` from the scheduler."""

    def __init__(
        self,
        settings: Settings,
        collector: SnmpCollector,
        pipeline: Pipeline,
        metrics: Metrics,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        faults: FaultTracker | None = None,
    ) -> None:
        planned = expand_targets(settings)
        self._faults = faults
        self._targets = [p.target for p in planned]
        self._collector = collector
        self._pipeline = pipeline
        self._metrics = metrics
        self._monotonic = monotonic
        self._concurrency = settings.snmp.max_concurrency
        self._interval_s = settings.scheduler.poll_interval_s
        self._max_backoff_s = settings.snmp.max_backoff_s
        self._health = {p.target.address: _Health(in_range=p.subnet is not None) for p in planned}

    @property
    def targets(self) -> list[SnmpTarget]:
        return list(self._targets)

    async def run(self) -> None:
        now = self._monotonic()
        await self._poll([t for t in self._targets if self._health[t.address].next_try <= now])

    async def poll_now(self, host: str) -> bool:
        """Poll the targets at ``host`` now, out of turn (a trap said something changed); False: none is ours."""
        chosen = [t for t in self._targets if t.host == host]
        if chosen:
            await self._poll(chosen)
        return bool(chosen)

    async def _poll(self, due: list[SnmpTarget]) -> None:
        drops_before = udp_receive_errors()
        results = await poll_many(self._collector, due, concurrency=self._concurrency)
        drops = udp_receive_errors() - drops_before
        if drops > 0:
            self._metrics.udp_receive_errors.inc(drops)
            log.warning("udp_answers_dropped_by_kernel", dropped=drops, hint="lower snmp.max_concurrency")
        reports = []
        for target, result in zip(due, results, strict=True):
            if isinstance(result, DeviceReport):
                reports.append(result)
                self._answered(target, result)
            else:
                self._silent(target, result)
        if reports:
            await self._pipeline.emit([r.reading for r in reports])
            if self._faults is not None:
                await self._faults.record(reports)
        log.info(
            "poll_round_done",
            targets=len(self._targets),
            polled=len(due),
            answered=len(reports),
            skipped_backing_off=len(self._targets) - len(due),
        )

    def _answered(self, target: SnmpTarget, report: DeviceReport) -> None:
        health = self._health[target.address]
        self._metrics.snmp_polls.labels(outcome="ok").inc()
        self._metrics.device_up.labels(address=target.address).set(1)
        if health.up is False:
            log.info("device_up", address=target.address, down_for_s=round(self._monotonic() - health.down_since))
        problems = frozenset(report.problems)
        if problems != health.problems:
            for problem in sorted(problems - health.problems):
                log.warning(
                    "meter_unreadable", address=target.address, device=report.reading.device.key, problem=problem
                )
            health.problems = problems
        health.up, health.failures, health.next_try = True, 0, 0.0

    def _silent(self, target: SnmpTarget, error: CollectorError) -> None:
        health = self._health[target.address]
        outcome = "timeout" if isinstance(error, DeviceTimeoutError) else "error"
        self._metrics.snmp_polls.labels(outcome=outcome).inc()
        now = self._monotonic()
        if not (health.in_range and health.up is None):
            self._metrics.device_up.labels(address=target.address).set(0)
            if health.up is not False:
                log.warning("device_down", address=target.address, reason=error.message)
                health.down_since = now
            health.up = False
        health.failures += 1
        # Next try after 1, 2, 4 … rounds (the first retry is the very next round); half a
        # round of slack so a round that fires a little early still counts.
        delay = min(self._interval_s * 2 ** (health.failures - 1), self._max_backoff_s)
        health.next_try = now + delay - self._interval_s / 2
        if isinstance(error, DeviceTimeoutError):
            self._collector.forget(target)  # whatever answers next at that address is probed afresh


def udp_receive_errors() -> int:
    """The host's UDP receive-buffer drop count (Linux /proc/net/snmp RcvbufErrors); 0 elsewhere."""
    try:
        lines = [line.split() for line in _PROC_NET_SNMP.read_text().splitlines() if line.startswith("Udp:")]
    except OSError:
        return 0
    if len(lines) < 2 or "RcvbufErrors" not in lines[0]:  # noqa: PLR2004 - header line and value line
        return 0
    return int(lines[1][lines[0].index("RcvbufErrors")])
