"""An agent's footprint: `meterd run` with role = "agent" polling N simulated printers.

    .venv/bin/python bench/agent_footprint.py [--devices 1000] [--rounds 2] [--responders 2]

Serves N printers with snmpsim: the recordings of ../shared/walks/librenms that carry their
serial (11 models of 9 vendors), one copy per device with its own serial, each device on its
own loopback address (127.1.0.1 …) and community. Then runs, in this order and each as a
child process of its own (the daemon exactly as systemd starts it, `python -m daemon run`):

- a bare `python -c pass`, the floor;
- the agent: a SQLite store brought to the schema's head beforehand (`meterd db upgrade`, as
  after the agent's first start; --fresh-store: an empty one, which Alembic creates),
  anomaly detection off (an agent whose hub detects),
  forwarding to the broker at --mqtt (Mosquitto on loopback; an absent broker only makes
  the forwarder retry), metrics served, API off (the defaults); it runs until --rounds poll
  rounds completed (a cold probe round, then warm ones), then gets SIGTERM;
- the same under tracemalloc (a second store): Python's own allocations by package,
  and whether pandas, pyarrow, numpy or matplotlib were loaded.

Peak RSS and CPU are what `/usr/bin/time -v` prints for each child (GNU time, a small C
program: a child forked from this Python process would count the bench's own pages in its
peak until its exec). Start-up CPU is the agent's user + system time read
from /proc half a second after it logged ``daemon_started``: store open and migrated, jobs
built, metrics listening, the forwarder started; its first poll starts a second after that.
Prints the figures, the targets (peak RSS < 90 MB, start-up < 1 CPU-s) and the ratios to
the bare interpreter measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from daemon.demo.simulator import SnmpSimulator

REPO: Final = Path(__file__).resolve().parents[1]
WALKS: Final = REPO.parent / "shared" / "walks"
PEAK_RSS_TARGET_MB: Final = 90.0
STARTUP_CPU_TARGET_S: Final = 1.0
TIME: Final = "/usr/bin/time"  # GNU time (Debian's `time`; `./dev bench-agent` installs it)
HEAVY: Final = ("pandas", "pyarrow", "numpy", "matplotlib")
_SETTLE_S: Final = 0.5  # after daemon_started: the listeners and the forwarder start; the first poll is at +1 s
_TICKS: Final = os.sysconf("SC_CLK_TCK")

# The traced child: the real command line under tracemalloc, reporting once the daemon stopped.
_TRACED: Final = """
import json, sys, tracemalloc
tracemalloc.start()
from daemon.cli.main import main
code = main(["run", "--config", sys.argv[1]])
current, peak = tracemalloc.get_traced_memory()
by_package = {}
for stat in tracemalloc.take_snapshot().statistics("filename"):
    name = stat.traceback[0].filename
    if "site-packages/" in name:
        key = name.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    elif "<frozen" in name:
        key = "(imported code)"
    elif any(f"/{top}/" in name for top in ("daemon", "collectors", "billing")):
        key = "meterd"
    else:
        key = "(standard library)"
    by_package[key] = by_package.get(key, 0) + stat.size
loaded = sorted({m.split(".")[0] for m in sys.modules})
with open(sys.argv[2], "w") as out:
    json.dump({"code": code, "current": current, "peak": peak, "by_package": by_package, "loaded": loaded}, out)
"""


@dataclass
class Run:
    """One child's figures."""

    peak_rss_mb: float
    cpu_s: float
    startup_cpu_s: float | None = None
    startup_rss_mb: float | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)
    wall_s: float = 0.0


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _loopback_host(n: int) -> str:
    return f"127.1.{n // 250}.{n % 250 + 1}"


def _recordings() -> list[tuple[str, str]]:
    """(text, serial) of each shared recording whose serial is in its text, so a copy can have its own."""
    expected = json.loads((WALKS / "expected.json").read_text())["files"]
    found = []
    for name, facts in sorted(expected.items()):
        serial = facts.get("serial")
        text = (WALKS / "librenms" / name).read_text(encoding="latin-1")
        if serial and serial in text:
            found.append((text, serial))
    return found


def _fleet(workdir: Path, devices: int, responders: int) -> list[tuple[Path, list[int]]]:
    """Each responder's data directory and device numbers; device n answers to community devNNNNN."""
    recordings = _recordings()
    fleet = []
    for r in range(responders):
        data = workdir / f"data{r}"
        data.mkdir()
        numbers = list(range(r, devices, responders))
        for n in numbers:
            text, serial = recordings[n % len(recordings)]
            (data / f"dev{n:05d}.snmprec").write_text(text.replace(serial, f"AGENT{n:06d}"), encoding="latin-1")
        data.chmod(0o755)
        fleet.append((data, numbers))
    return fleet


def _config(path: Path, state: Path, ports: dict[int, int], mqtt: str, rounds_every_s: int) -> None:
    host, _, port = mqtt.rpartition(":")
    lines = [
        'site = "bench"',
        'role = "agent"',
        f'state_dir = "{state}"',
        "[anomalies]",
        "enabled = false",
        "[metrics]",
        'listen = "127.0.0.1:0"',
        "[scheduler]",
        f"poll_interval_s = {rounds_every_s}",
        "[mqtt]",
        f'host = "{host}"',
        f"port = {port}",
        "[snmp]",
        "timeout_s = 2.0",
        "retries = 1",
    ]
    for n, responder_port in sorted(ports.items()):
        lines += ["[[snmp.targets]]", f'host = "{_loopback_host(n)}"', f"port = {responder_port}"]
        lines.append(f'communities = ["dev{n:05d}"]')
    path.write_text("\n".join(lines) + "\n")


def _cpu_now(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime


def _rss_now(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _timed(command: list[str], report: Path) -> subprocess.Popen[bytes]:
    """``command`` under `/usr/bin/time -v`, its output piped.

    Not this process's own wait4: a child forked from the bench (~30 MB) would count the
    bench's resident pages in its peak until its exec; `time` is a small C program.
    """
    return subprocess.Popen([TIME, "-v", "-o", str(report), *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _read_time(process: subprocess.Popen[bytes], report: Path) -> tuple[float, float]:
    """Wait for `time`; the command's peak RSS (MB) and CPU seconds, as it printed them."""
    process.wait()
    found = dict(line.strip().rsplit(": ", 1) for line in report.read_text().splitlines() if ": " in line)
    cpu = float(found["User time (seconds)"]) + float(found["System time (seconds)"])
    return int(found["Maximum resident set size (kbytes)"]) / 1024, cpu


def _bare(workdir: Path) -> Run:
    report = workdir / "bare.time"
    process = _timed([sys.executable, "-c", "pass"], report)
    process.communicate()
    peak, cpu = _read_time(process, report)
    return Run(peak, cpu)


def _child_of(process: subprocess.Popen[bytes]) -> int:
    """The command `time` started (time itself passes no signal on)."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
    for _ in range(500):
        found = children.read_text().split()
        if found:
            return int(found[0])
        time.sleep(0.01)
    msg = "/usr/bin/time started no command"
    raise SystemExit(msg)


def _agent(command: list[str], report: Path, rounds: int, timeout_s: float) -> Run:
    """Run the daemon until ``rounds`` poll rounds completed, then stop it as systemd does (SIGTERM)."""
    started = time.perf_counter()
    process = _timed(command, report)
    pid = _child_of(process)
    output = process.stdout
    assert output is not None
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in output], daemon=True).start()
    startup: float | None = None
    startup_rss: float | None = None
    done: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < rounds:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                msg = f"the agent did not finish {rounds} poll round(s) within {timeout_s:.0f} s"
                raise SystemExit(msg) from None
            try:
                event = json.loads(line)
            except ValueError:
                print(line.decode(errors="replace").rstrip(), file=sys.stderr)  # not a log line: show it
                continue
            if event.get("event") == "daemon_started" and startup is None:
                time.sleep(_SETTLE_S)
                startup, startup_rss = _cpu_now(pid), _rss_now(pid)
            elif event.get("event") == "poll_round_done":
                done.append(event)
            elif event.get("level") in {"error", "critical"}:
                print(f"agent: {event}", file=sys.stderr)
    finally:
        os.kill(pid, signal.SIGTERM)
    peak, cpu = _read_time(process, report)
    return Run(peak, cpu, startup, startup_rss, done, time.perf_counter() - started)


def _report(name: str, run: Run, bare: Run) -> None:
    print(
        f"{name:<28} peak RSS {run.peak_rss_mb:6.1f} MB ({run.peak_rss_mb / bare.peak_rss_mb:4.1f}x bare)   "
        f"CPU {run.cpu_s:5.2f} s in {run.wall_s:5.1f} s"
    )
    if run.startup_cpu_s is not None:
        print(
            f"{'':<28} start-up CPU {run.startup_cpu_s:4.2f} s ({run.startup_cpu_s / bare.cpu_s:4.1f}x bare), "
            f"RSS then {run.startup_rss_mb:.1f} MB"
        )
    for n, poll in enumerate(run.rounds, 1):
        print(f"{'':<28} round {n}: {poll['answered']} of {poll['targets']} answered")


async def _serve(workdir: Path, devices: int, responders: int) -> tuple[list[SnmpSimulator], dict[int, int]]:
    """The responders, started and answering; each device's responder port."""
    simulators: list[tuple[SnmpSimulator, int]] = []
    ports: dict[int, int] = {}
    for r, (data, numbers) in enumerate(_fleet(workdir, devices, responders)):
        port = _free_udp_port()
        hosts = [_loopback_host(n) for n in numbers]
        simulator = SnmpSimulator([data], port, workdir / f"snmpsim{r}.log", hosts=hosts)
        simulator.start()
        simulators.append((simulator, numbers[0]))
        ports.update(dict.fromkeys(numbers, port))
    for simulator, first in simulators:
        await simulator.wait_ready(f"dev{first:05d}", timeout_s=600)
    return [simulator for simulator, _ in simulators], ports


def main(options: argparse.Namespace) -> None:
    if not Path(TIME).is_file():
        msg = f"{TIME} is missing: apt-get install time (or run ./dev bench-agent)"
        raise SystemExit(msg)
    workdir = Path(tempfile.mkdtemp(prefix="meterd-agent-bench-"))
    workdir.chmod(0o755)  # snmpsim drops to nobody, who must read the recordings
    simulators: list[SnmpSimulator] = []
    try:
        began = time.perf_counter()
        simulators, ports = asyncio.run(_serve(workdir, options.devices, options.responders))
        print(
            f"{options.responders} snmpsim responders serving {options.devices} devices ({len(_recordings())} "
            f"recordings of ../shared/walks/librenms), ready in {time.perf_counter() - began:.0f} s"
        )
        bare = _bare(workdir)
        _report("python -c pass", bare, bare)
        runs = {}
        for name in ("agent", "agent under tracemalloc"):
            state = workdir / name.replace(" ", "-")
            config = workdir / f"{state.name}.toml"
            _config(config, state, ports, options.mqtt, options.interval)
            if not options.fresh_store:  # as after the first start: the store at the head, Alembic not needed
                subprocess.run(
                    [sys.executable, "-m", "daemon", "db", "upgrade", "--config", str(config)],
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            if name == "agent":
                command = [sys.executable, "-m", "daemon", "run", "--config", str(config), "--log-format", "json"]
            else:
                command = [sys.executable, "-c", _TRACED, str(config), str(workdir / "traced.json")]
            runs[name] = _agent(command, workdir / f"{state.name}.time", options.rounds, options.timeout)
            _report(name, runs[name], bare)
        traced = json.loads((workdir / "traced.json").read_text())
        print(
            f"tracemalloc: Python's allocations peak {traced['peak'] / 2**20:.1f} MB, "
            f"{traced['current'] / 2**20:.1f} MB held at the stop; by package:"
        )
        ranked = sorted(traced["by_package"].items(), key=lambda item: -item[1])
        print("  " + ", ".join(f"{name} {size / 2**20:.1f}" for name, size in ranked[:12]))
        heavy = [name for name in HEAVY if name in traced["loaded"]]
        print(f"loaded by the agent: {', '.join(heavy) if heavy else 'none of ' + ', '.join(HEAVY)}")
        agent = runs["agent"]
        assert agent.startup_cpu_s is not None
        rss_ok = agent.peak_rss_mb < PEAK_RSS_TARGET_MB
        cpu_ok = agent.startup_cpu_s < STARTUP_CPU_TARGET_S
        print(
            f"target peak RSS < {PEAK_RSS_TARGET_MB:.0f} MB: {agent.peak_rss_mb:.1f} MB "
            f"{'met' if rss_ok else 'MISSED'}; start-up < {STARTUP_CPU_TARGET_S:.0f} CPU-s: "
            f"{agent.startup_cpu_s:.2f} s {'met' if cpu_ok else 'MISSED'}"
        )
    finally:
        for simulator in simulators:
            simulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="poll rounds before the stop (the first is cold)")
    parser.add_argument("--interval", type=int, default=30, help="scheduler.poll_interval_s (s)")
    parser.add_argument("--responders", type=int, default=2, help="snmpsim processes")
    parser.add_argument("--mqtt", default="127.0.0.1:1883", metavar="HOST:PORT", help="the broker forwarded to")
    parser.add_argument(
        "--fresh-store", action="store_true", help="start on an empty store (the first start: Alembic creates it)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per agent run")
    main(parser.parse_args())
