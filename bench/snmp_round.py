"""SNMP poll rounds through the real pipeline, against simulated printers, with a C baseline.

    .venv/bin/python bench/snmp_round.py [--devices 1000] [--responders 4] [--responder snmpd|snmpsim]

Serves N printers (one community per device, several responder processes) with
net-snmp's ``snmpd`` (C; ``apt-get install snmpd``; the default when installed) or
snmpsim, then measures in this process: a cold round (probe: identity, profile,
table and supply walks), a warm round (one GET per device from the plan), both
through decode, profile mapping and the SQLite store; a warm round with 20% dead
targets (timeout 1 s, 1 retry); and the same warm GETs done with ezsnmp (net-snmp's
C library) in the same run. Prints CPU-seconds per 1,000 device polls, polls per
second, peak RSS, live devices missed, and meterd's CPU ratio to ezsnmp.

snmpd serves one data set under every community (the recording's values as
``override`` lines, counters standing still), so the bench gives each reading its
device's own serial before storing it, as a fleet of distinct printers would have;
snmpsim gets one recording per device with its own serial.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.util
import os
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.mapping import DeviceReport
from daemon.demo import fleet_dir
from daemon.demo.simulator import SnmpSimulator
from daemon.kernel.reading import Reading
from daemon.runtime import logging as meterd_logging
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.services.polling import udp_receive_errors
from daemon.storage.repository import Store

MODEL: Final = "konica_c300i"  # a colour MFP: private counters, four toners
SERIAL: Final = "A8Y1DEMO0002"  # the recording's; each simulated device gets its own
SNMPD_COMMUNITY: Final = "bench"  # snmpd answers every device under this one community (devices differ by address)
# snmprec type tags -> snmpd.conf `override` types
_OVERRIDE_TYPES: Final = {
    "2": "integer",
    "4": "octet_str",
    "6": "object_id",
    "65": "counter",
    "66": "uinteger",
    "67": "timeticks",
}


@dataclass
class Figures:
    label: str
    polls: int
    cpu_s: float
    wall_s: float
    missed: int = 0
    kernel_drops: int = 0
    rss_mb: float = 0.0

    def line(self) -> str:
        per_k = self.cpu_s / self.polls * 1000 if self.polls else float("nan")
        return (
            f"{self.label:<34} {self.polls:>6} polls  {per_k:6.2f} CPU-s/1k  "
            f"{self.polls / self.wall_s:8.0f} polls/s  wall {self.wall_s:6.2f} s  missed live {self.missed:>4}  "
            f"UDP drops {self.kernel_drops:>4}  RSS {self.rss_mb:4.0f} MB"
        )


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_mb() -> float:
    """Resident set size now (Linux), after the round's garbage is gone."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _round(
    label: str,
    collector: SnmpCollector,
    pipeline: Pipeline,
    targets: list[SnmpTarget],
    live: set[SnmpTarget],
    *,
    concurrency: int,
    serials: dict[SnmpTarget, str] | None,
) -> Figures:
    cpu, wall, drops = time.process_time(), time.perf_counter(), udp_receive_errors()
    results = await poll_many(collector, targets, concurrency=concurrency)
    readings = [
        _own_serial(result.reading, serials[target]) if serials else result.reading
        for target, result in zip(targets, results, strict=True)
        if isinstance(result, DeviceReport)
    ]
    await pipeline.emit(readings)
    answered = {t for t, r in zip(targets, results, strict=True) if isinstance(r, DeviceReport)}
    return Figures(
        label,
        len(targets),
        time.process_time() - cpu,
        time.perf_counter() - wall,
        len(live - answered),
        udp_receive_errors() - drops,
        _rss_mb(),
    )


def _interleaved(live: list[SnmpTarget], dead: list[SnmpTarget]) -> list[SnmpTarget]:
    """Every fifth target dead, as they sit among the live ones on a real network (not all at the end)."""
    step = max(1, len(live) // max(1, len(dead)))
    mixed: list[SnmpTarget] = []
    for n, target in enumerate(live):
        mixed.append(target)
        if n % step == step - 1 and n // step < len(dead):
            mixed.append(dead[n // step])
    return mixed + dead[len(live) // step :]


def _own_serial(reading: Reading, serial: str) -> Reading:
    return dataclasses.replace(reading, device=dataclasses.replace(reading.device, key=serial))


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
    return Figures(
        "ezsnmp (C), same warm GETs, serial",
        len(targets),
        time.process_time() - cpu,
        time.perf_counter() - wall,
        rss_mb=_rss_mb(),
    )


def _recordings(devices: int) -> tuple[Path, Path]:
    """One copy of the model's recording per device, readable by snmpsim's unprivileged user."""
    workdir = Path(tempfile.mkdtemp(prefix="meterd-bench-"))
    data = workdir / "data"
    data.mkdir()
    recording = (fleet_dir() / f"{MODEL}.snmprec").read_text()
    for n in range(devices):
        (data / f"{_community(n)}.snmprec").write_text(recording.replace(SERIAL, _serial(n)))
    data.chmod(0o755)
    workdir.chmod(0o755)
    return workdir, data


def _community(n: int) -> str:
    return f"dev{n:05d}"


def _serial(n: int) -> str:
    return f"BENCH{n:07d}"


def _loopback_host(n: int) -> str:
    """Device n's own address: Linux answers on all of 127/8 (127.1.0.1, 127.1.0.2 …)."""
    return f"127.{1 + n // 62_500}.{n // 250 % 250}.{n % 250 + 1}"


class _Snmpd(SnmpSimulator):
    """net-snmp's snmpd answering the recording's values on every loopback address, port ``port``.

    Devices differ by address, not community: snmpd looks communities up in a list, and
    with thousands of them it fell behind and dropped requests (10,000 devices: ~10,000
    kernel drops a round).
    """

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__([], port, workdir / f"snmpd-{port}.log")
        self._workdir = workdir

    def start(self) -> None:
        config = self._workdir / f"snmpd-{self.port}.conf"
        lines = [f"rocommunity {SNMPD_COMMUNITY} 127.0.0.0/8"]
        for line in (fleet_dir() / f"{MODEL}.snmprec").read_text().splitlines():
            oid, tag, value = line.split("|", 2)
            kind = _OVERRIDE_TYPES.get(tag.split(":")[0])
            if kind is None:  # hex strings (the MAC): not needed for a reading
                continue
            if tag.endswith(":numeric"):  # an advancing counter in snmpsim: its initial value here
                value = re.search(r"initial=(\d+)", value).group(1)  # type: ignore[union-attr]
            lines.append(
                f'override .{oid} {kind} "{value}"' if kind == "octet_str" else f"override .{oid} {kind} {value}"
            )
        config.write_text("\n".join(lines) + "\n")
        command = [
            "snmpd",
            "-f",
            "-C",
            "-c",
            str(config),
            "-I",
            "override,vacm_conf",
            "-Lf",
            str(self.log_path),
            f"udp:0.0.0.0:{self.port}",
        ]
        environment = {**os.environ, "SNMP_PERSISTENT_DIR": str(self._workdir), "MIBS": ""}
        self._process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def _target(port: int, community: str, host: str = "127.0.0.1") -> SnmpTarget:
    return SnmpTarget(host, port, communities=(community,), timeout_s=1.0, retries=1)


async def main(options: argparse.Namespace) -> None:
    devices, count = options.devices, options.responders
    baseline_rss = _peak_rss_mb()
    workdir, data = _recordings(devices) if options.responder == "snmpsim" else (Path(tempfile.mkdtemp()), None)
    responders: list[SnmpSimulator] = [
        SnmpSimulator([data], _free_udp_port(), workdir / f"snmpsim{i}.log")
        if data is not None
        else _Snmpd(workdir, _free_udp_port())
        for i in range(count)
    ]
    for responder in responders:
        responder.start()
    try:
        started = time.perf_counter()
        for i, responder in enumerate(responders):
            await responder.wait_ready(_community(i) if data is not None else SNMPD_COMMUNITY, timeout_s=600)
        ready_s = time.perf_counter() - started
        print(f"{count} {options.responder} responders serving {devices} devices, ready in {ready_s:.0f} s")
        targets = [
            _target(responders[n % count].port, _community(n))
            if data is not None
            else _target(responders[n % count].port, SNMPD_COMMUNITY, _loopback_host(n))
            for n in range(devices)
        ]
        live = set(targets)
        serials = {target: _serial(n) for n, target in enumerate(targets)} if data is None else None
        dead_ports = [_free_udp_port() for _ in range(max(1, devices // 50))]
        # A quarter of the live count: 20% of the mixed round.
        dead = [_target(dead_ports[n % len(dead_ports)], f"dead{n}") for n in range(devices // 4)]
        rounds = [
            ("meterd cold round (probe)", targets),
            ("meterd second round (re-probes)", targets),
            ("meterd warm round (1 GET/device)", targets),
            ("meterd warm round, 20% dead", _interleaved(targets, dead)),
        ]
        async with Store.open(f"sqlite:///{workdir / 'state' / 'bench.db'}") as store:
            pipeline = Pipeline(store, Metrics())
            async with SnmpCollector(site="bench") as collector:
                results = [
                    await _round(
                        label, collector, pipeline, polled, live, concurrency=options.concurrency, serials=serials
                    )
                    for label, polled in rounds
                ]
                plan_oids = list(collector._plans[targets[0]].oids)  # noqa: SLF001 - the bench mirrors the warm GET
        for figures in results:
            print(figures.line())
        print(f"peak RSS {_peak_rss_mb():.0f} MB (after imports {baseline_rss:.0f} MB)")
        if importlib.util.find_spec("ezsnmp") is None:
            print("ezsnmp is not installed: no C baseline (pip install -e '.[bench]' brings it from PyPI)")
            return
        # Serial, one session per device as a poller would: the first 1,000 are enough for a per-1k figure.
        baseline = _ezsnmp_round(targets[:1000], plan_oids)
        print(baseline.line())
        warm = results[2]
        ratio = (warm.cpu_s / warm.polls) / (baseline.cpu_s / baseline.polls)
        print(f"meterd warm CPU / ezsnmp CPU = {ratio:.2f} (meterd's includes mapping and the SQLite store)")
    finally:
        for responder in responders:
            responder.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--responders", type=int, default=4)
    parser.add_argument(
        "--responder", choices=["snmpd", "snmpsim"], default="snmpd" if shutil.which("snmpd") else "snmpsim"
    )
    parser.add_argument(
        "--concurrency", type=int, default=256, help="devices polled at once (the daemon's default: 64)"
    )
    meterd_logging.configure("warning", "auto")  # as `meterd` would: a probe's per-device debug lines stay out
    asyncio.run(main(parser.parse_args()))
