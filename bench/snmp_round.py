"""SNMP poll rounds through the real pipeline, against simulated printers, with a C baseline.

    .venv/bin/python bench/snmp_round.py [--devices 1000] [--responders 4]

Serves N printers with snmpsim (several responder processes, one community per
device), then measures in this process: a cold round (probe: identity, profile,
table and supply walks), a warm round (one GET per device from the plan), both
through decode, profile mapping and the SQLite store; a warm round with 20% dead
targets (timeout 1 s, 1 retry); and the same warm GETs done with ezsnmp (net-snmp's
C library) in the same run. Prints CPU-seconds per 1,000 device polls, polls per
second, peak RSS, live devices missed, and meterd's CPU ratio to ezsnmp.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.mapping import DeviceReport
from daemon.demo.run import fleet_dir
from daemon.demo.simulator import SnmpSimulator
from daemon.metrics import Metrics
from daemon.pipeline import Pipeline
from daemon.polling import udp_receive_errors
from daemon.storage.repository import Store

MODEL = "konica_c300i"  # a colour MFP: private counters, four toners


@dataclass
class Figures:
    label: str
    polls: int
    cpu_s: float
    wall_s: float
    missed: int = 0
    kernel_drops: int = 0

    def line(self) -> str:
        per_k = self.cpu_s / self.polls * 1000 if self.polls else float("nan")
        return (
            f"{self.label:<34} {self.polls:>6} polls  {per_k:6.2f} CPU-s/1k  "
            f"{self.polls / self.wall_s:8.0f} polls/s  wall {self.wall_s:6.2f} s  missed live {self.missed:>4}  "
            f"UDP drops {self.kernel_drops}"
        )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _round(
    label: str, collector: SnmpCollector, pipeline: Pipeline, targets: list[SnmpTarget], live: set[SnmpTarget]
) -> Figures:
    cpu, wall, drops = time.process_time(), time.perf_counter(), udp_receive_errors()
    results = await poll_many(collector, targets, concurrency=256)
    reports = [r for r in results if isinstance(r, DeviceReport)]
    await pipeline.emit([r.reading for r in reports])
    answered = {t for t, r in zip(targets, results, strict=True) if isinstance(r, DeviceReport)}
    return Figures(
        label,
        len(targets),
        time.process_time() - cpu,
        time.perf_counter() - wall,
        len(live - answered),
        udp_receive_errors() - drops,
    )


def _ezsnmp_round(targets: list[SnmpTarget], oids: list[str]) -> Figures:
    from ezsnmp import Session  # noqa: PLC0415 - optional 'bench' dependency

    cpu, wall = time.process_time(), time.perf_counter()
    for target in targets:
        session = Session(
            hostname=target.host,
            port_number=target.port,
            version="2c",
            community=target.communities[0],
            timeout=2,
            retries=1,
        )
        session.get(oids)
    return Figures("ezsnmp (C), same warm GETs, serial", len(targets), time.process_time() - cpu,
                   time.perf_counter() - wall)  # fmt: skip


def _recordings(devices: int) -> tuple[Path, Path]:
    """One copy of the model's recording per device, readable by snmpsim's unprivileged user."""
    workdir = Path(tempfile.mkdtemp(prefix="meterd-bench-"))
    data = workdir / "data"
    data.mkdir()
    recording = (fleet_dir() / f"{MODEL}.snmprec").read_bytes()
    for n in range(devices):
        (data / f"dev{n:05d}.snmprec").write_bytes(recording)
    data.chmod(0o755)
    workdir.chmod(0o755)
    return workdir, data


def _target(port: int, community: str) -> SnmpTarget:
    return SnmpTarget("127.0.0.1", port, communities=(community,), timeout_s=1.0, retries=1)


async def main(devices: int, responders: int) -> None:
    workdir, data = _recordings(devices)
    sims = [SnmpSimulator([data], _free_udp_port(), workdir / f"snmpsim{i}.log") for i in range(responders)]
    for sim in sims:
        sim.start()
    try:
        started = time.perf_counter()
        for sim in sims:
            await sim.wait_ready("dev00000", timeout_s=600)
        ready_s = time.perf_counter() - started
        print(f"{responders} snmpsim responders serving {devices} devices, ready in {ready_s:.0f} s")
        targets = [_target(sims[n % responders].port, f"dev{n:05d}") for n in range(devices)]
        live = set(targets)
        dead_ports = [_free_udp_port() for _ in range(max(1, devices // 50))]
        # A quarter of the live count: 20% of the mixed round.
        dead = [_target(dead_ports[n % len(dead_ports)], f"dead{n}") for n in range(devices // 4)]
        async with Store.open(f"sqlite:///{workdir / 'state' / 'bench.db'}") as store:
            pipeline = Pipeline(store, Metrics())
            async with SnmpCollector(site="bench") as collector:
                results = [
                    await _round("meterd cold round (probe)", collector, pipeline, targets, live),
                    await _round("meterd second round (re-probes)", collector, pipeline, targets, live),
                    await _round("meterd warm round (1 GET/device)", collector, pipeline, targets, live),
                    await _round("meterd warm round, 20% dead", collector, pipeline, targets + dead, live),
                ]
                probe = await collector.poll(targets[0])
                del probe
                plan_oids = collector._plans[targets[0]].oids()  # noqa: SLF001 - the bench mirrors the warm GET
        baseline = _ezsnmp_round(targets, plan_oids)
        for figures in [*results, baseline]:
            print(figures.line())
        warm = results[2]
        print(f"peak RSS {_peak_rss_mb():.0f} MB")
        ratio = warm.cpu_s / baseline.cpu_s
        print(f"meterd warm CPU / ezsnmp CPU = {ratio:.2f} (meterd's includes mapping and the SQLite store)")
    finally:
        for sim in sims:
            sim.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--responders", type=int, default=4)
    options = parser.parse_args()
    asyncio.run(main(options.devices, options.responders))
