"""Run the daemon against the simulated fleet and show what it reads, live."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import Final

from rich.console import Console
from rich.live import Live
from rich.table import Table

from daemon.demo import fleet_dir
from daemon.demo.simulator import SnmpSimulator
from daemon.kernel.reading import Reading
from daemon.runtime.app import Daemon
from daemon.services.accounts import accounts_for
from daemon.settings import Settings
from daemon.storage.repository import Store

_REFRESH_S: Final = 1.0
_POLL_INTERVAL_S: Final = 10  # the scheduler's minimum: the counters visibly move between rounds


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def fleet_communities() -> list[str]:
    return sorted(p.stem for p in fleet_dir().glob("*.snmprec"))


def fleet_hosts() -> list[str]:
    """One loopback address per simulated printer (Linux answers on all of 127/8)."""
    return [f"127.0.0.{n}" for n in range(1, len(fleet_communities()) + 1)]


def demo_settings(workdir: Path, port: int, metrics_listen: str) -> Settings:
    targets = [
        {"host": host, "port": port, "communities": [community]}
        for host, community in zip(fleet_hosts(), fleet_communities(), strict=True)
    ]
    return Settings.model_validate(
        {
            "site": "demo",
            "state_dir": str(workdir / "state"),
            "metrics": {"listen": metrics_listen},
            # The web console and API on a free loopback port; the demo's throwaway user needs no second factor.
            "api": {"enabled": True, "listen": "127.0.0.1:0", "totp_required_for": []},
            "scheduler": {"poll_interval_s": _POLL_INTERVAL_S},
            "snmp": {
                "timeout_s": 1.0,
                "targets": targets,
            },
        }
    )


async def run_demo(*, duration_s: float, metrics_listen: str, keep: bool, console: Console) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="meterd-demo-"))
    simulator = SnmpSimulator([fleet_dir()], _free_udp_port(), workdir / "snmpsim.log", hosts=fleet_hosts())
    simulator.start()
    try:
        settings = demo_settings(workdir, simulator.port, metrics_listen)
        await simulator.wait_ready(fleet_communities()[0])
        daemon = Daemon(settings)
        task = asyncio.create_task(daemon.run(), name="meterd-demo")
        started = time.monotonic()
        while daemon.api_port is None and not task.done():  # noqa: ASYNC110 - set once serving (after ops_port)
            await asyncio.sleep(0.1)
        if daemon.ops_port is not None:
            host = settings.metrics.host
            console.print(f"metrics: http://{host}:{daemon.ops_port}/metrics   store: {settings.database_url}")
            printers = len(settings.snmp.targets)
            console.print(f"{printers} simulated printers on 127.0.0.1-{printers}, port {simulator.port}; Ctrl-C stops")
        async with Store.open(settings.database_url, upgrade=False) as store:
            if daemon.api_port is not None:
                password = secrets.token_urlsafe(12)
                await accounts_for(settings, store).add_user("demo", "Demo clerk", "billing", password, actor="demo")
                console.print(f"web console: http://127.0.0.1:{daemon.api_port}/   login: demo   password: {password}")
            with Live(Table(), console=console, refresh_per_second=2) as live:
                while not task.done() and time.monotonic() - started < duration_s:
                    live.update(await _fleet_table(store, daemon, simulator.port))
                    await asyncio.wait({task}, timeout=_REFRESH_S)
                live.update(await _fleet_table(store, daemon, simulator.port))
        daemon.request_stop()
        await task
    finally:
        simulator.stop()
        if keep:
            console.print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _fleet_table(store: Store, daemon: Daemon, port: int) -> Table:
    table = Table(title="meterd demo: simulated fleet", title_justify="left")
    for name, justify in (
        ("device", "left"),
        ("serial", "left"),
        ("total / length", "right"),
        ("mono", "right"),
        ("color", "right"),
        ("since start", "right"),
        ("readings", "right"),
        ("up", "left"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for device in await store.devices():
        readings = await store.readings(device=device.key)
        if not readings:
            continue
        first, last = readings[0], readings[-1]
        headline = _value(last, "total") or _value(last, "length")
        grown = (_count(last, "total") or _count(last, "length")) - (_count(first, "total") or _count(first, "length"))
        up = daemon.metrics.registry.get_sample_value("meterd_device_up", {"address": f"{device.address}:{port}"})
        table.add_row(
            " ".join(p for p in (device.vendor, device.model) if p),
            device.key,
            headline,
            _value(last, "mono"),
            _value(last, "color"),
            f"+{grown:,}",
            str(len(readings)),
            "yes" if up != 0 else "no",
        )
    return table


def _count(reading: Reading, meter: str) -> int:
    return next((m.value for m in reading.meters if m.meter.value == meter), 0)


def _value(reading: Reading, meter: str) -> str:
    found = next((m for m in reading.meters if m.meter.value == meter), None)
    if found is None:
        return ""
    return f"{found.value:,} {found.unit.value}" + (" (derived)" if found.derived else "")
