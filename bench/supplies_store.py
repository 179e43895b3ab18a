"""Store size of a month of supply levels, a row per poll (before issue 23) against changes plus heartbeats;
the CPU of a store round with the cache of last levels against the previous-levels query.

    .venv/bin/python bench/supplies_store.py [--days 30] [--interval-min 15] [--seed 23]
    .venv/bin/python bench/supplies_store.py --round-cpu 10000 [--repeat 4]

The demo fleet (daemon/demo/fleet, 5 printers) is polled once through snmpsim and the real
SNMP collector: its serials, meters and supplies as the recordings have them. From there a
month of 15-minute polls is simulated: each device prints in office hours on weekdays (its
own volume), its counters rise by the pages, each supply with a level sinks by its own
percent per page and is replaced at empty; devices that say "some remaining" stay NULL.
"after" is the SQLite store the daemon writes (Store.store, a day's rounds per batch);
"before" is that store with every poll's supply rows added back, as the old scheme wrote
them. Both are VACUUMed before their size is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector
from daemon.demo import fleet_dir
from daemon.demo.run import fleet_communities
from daemon.demo.simulator import SnmpSimulator
from daemon.kernel.reading import MeterValue, Reading
from daemon.storage.repository import Store

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday


async def _poll_fleet(workdir: Path) -> list[Reading]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    simulator = SnmpSimulator([fleet_dir()], port, workdir / "snmpsim.log")
    simulator.start()
    try:
        communities = fleet_communities()
        await simulator.wait_ready(communities[0])
        async with SnmpCollector(site="demo") as collector:
            return [
                (await collector.poll(SnmpTarget("127.0.0.1", port, communities=(c,), timeout_s=2.0))).reading
                for c in communities
            ]
    finally:
        simulator.stop()


def _month(fleet: list[Reading], days: int, step_min: int, rng: np.random.Generator) -> list[list[Reading]]:
    """Each day's rounds of the whole fleet."""
    per_day = 24 * 60 // step_min
    state = []
    for first in fleet:
        levels = [float(s.level_percent) if s.level_percent is not None else None for s in first.supplies]
        per_page = [rng.uniform(100 / 20_000, 100 / 3_000) for _ in first.supplies]  # yields 3k to 20k pages
        state.append((first, levels, per_page, rng.lognormal(np.log(250), 0.6)))
    out: list[list[Reading]] = []
    printed = [0] * len(fleet)
    for day in range(days):
        rounds: list[Reading] = []
        for step in range(per_day):
            at = START + timedelta(days=day, minutes=step * step_min)
            working = at.weekday() < 5 and 8 <= at.hour < 18
            for n, (first, levels, per_page, volume) in enumerate(state):
                pages = int(rng.poisson(volume / (10 * 60 / step_min))) if working else 0
                printed[n] += pages
                for i, level in enumerate(levels):
                    if level is not None:
                        left = level - pages * per_page[i]
                        levels[i] = 100.0 if left <= 0 else left  # replaced at empty
                rounds.append(
                    dataclasses.replace(
                        first,
                        id=f"{first.device.key}-{day}-{step}",
                        taken_at=at,
                        meters=tuple(
                            MeterValue(m.meter, m.value + printed[n], m.unit, m.derived) for m in first.meters
                        ),
                        supplies=tuple(
                            dataclasses.replace(s, level_percent=None if lv is None else max(1, round(lv)))
                            for s, lv in zip(first.supplies, levels, strict=True)
                        ),
                    )
                )
        out.append(rounds)
    return out


def _size(path: Path) -> tuple[int, int, int]:
    """The store's bytes, the supplies table's bytes (with its indexes) and its rows, after VACUUM."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT count(*) FROM supplies").fetchone()[0]
        db.execute("VACUUM")
        table = db.execute(
            "SELECT sum(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name = 'supplies')"
        ).fetchone()[0]
    return path.stat().st_size, table, rows


def _add_every_poll(path: Path, month: list[list[Reading]]) -> None:
    with sqlite3.connect(path) as db:
        ids = dict(db.execute("SELECT key, id FROM devices").fetchall())
        db.executemany(
            "INSERT INTO supplies (reading_id, device_id, taken_at, name, kind, color, level_percent) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                (
                    r.id,
                    ids[r.device.key],
                    r.taken_at_utc.strftime("%Y-%m-%d %H:%M:%S.%f"),
                    s.name,
                    s.kind,
                    s.color,
                    s.level_percent,
                )
                for rounds in month
                for r in rounds
                for s in r.supplies
            ],
        )


def _fleet_round(template: Reading, devices: int, at: datetime) -> list[Reading]:
    """``devices`` printers shaped like ``template`` (meters, supplies), each its own serial, polled at ``at``."""
    return [
        dataclasses.replace(
            template,
            id=f"{n}-{at:%H%M}",
            taken_at=at,
            device=dataclasses.replace(template.device, key=f"BENCH{n:07d}"),
        )
        for n in range(devices)
    ]


async def round_cpu(fleet: list[Reading], workdir: Path, devices: int, repeat: int) -> None:
    """CPU of store rounds of ``devices`` colour printers whose levels did not move (the common round).

    "query": the cache emptied before the round, so every supply is compared with the rows
    the store holds for the last day (what every round did before the cache); "cache": the
    cache as the daemon keeps it (on SQLite checked against the rows other writers added since).
    Alternated in one process, the SQLite store of the daemon, rounds 15 minutes apart.
    """
    template = max(fleet, key=lambda r: len(r.supplies))
    figures: dict[str, list[float]] = {"query": [], "cache": []}
    async with Store.open(f"sqlite:///{workdir / 'rounds.db'}") as store:
        await store.store(_fleet_round(template, devices, START), now=START)  # the cold round: every row new
        for n in range(1, 2 * repeat + 1):
            at = START + timedelta(minutes=15 * n)
            readings = _fleet_round(template, devices, at)
            label = "query" if n % 2 else "cache"
            if label == "query":
                store.last_levels.clear()
            cpu = time.process_time()
            await store.store(readings, now=at)
            figures[label].append(time.process_time() - cpu)
    print(
        f"store rounds of {devices} readings ({len(template.meters)} meters, {len(template.supplies)} supplies each):"
    )
    for label, seconds in figures.items():
        print(f"  {label:<6} " + "  ".join(f"{s:5.2f}" for s in seconds) + " CPU-s per round")


async def main(options: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="meterd-supplies-bench-"))
    try:
        fleet = await _poll_fleet(workdir)
        if options.round_cpu:
            await round_cpu(fleet, workdir, options.round_cpu, options.repeat)
            return
        month = _month(fleet, options.days, options.interval_min, np.random.default_rng(options.seed))
        after = workdir / "after.db"
        async with Store.open(f"sqlite:///{after}") as store:
            for rounds in month:
                await store.store(rounds, now=rounds[-1].taken_at_utc)
        before = workdir / "before.db"
        shutil.copy(after, before)
        _add_every_poll(before, month)
        (before_bytes, before_table, before_rows), (after_bytes, after_table, after_rows) = _size(before), _size(after)
        polls = sum(len(rounds) for rounds in month)
        supplies = sum(len(r.supplies) for rounds in month for r in rounds)
        print(
            f"{len(fleet)} printers, {options.days} days of {options.interval_min}-minute polls: {polls} readings, "
            f"{supplies} supply levels"
        )
        for label, rows, table, whole in (
            ("before (a row per poll)", before_rows, before_table, before_bytes),
            ("after (changes + daily beat)", after_rows, after_table, after_bytes),
        ):
            print(
                f"{label:<30} {rows:>7} supply rows   supplies table {table / 1e6:6.2f} MB   "
                f"whole store {whole / 1e6:6.2f} MB"
            )
        print(
            f"after/before: supply rows {after_rows / before_rows:.3f}   "
            f"supplies table {after_table / before_table:.3f}   "
            f"whole store {after_bytes / before_bytes:.3f}"
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--interval-min", type=int, default=15)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--round-cpu", type=int, metavar="DEVICES", help="measure store rounds' CPU instead")
    parser.add_argument("--repeat", type=int, default=4, help="rounds of each kind (with --round-cpu)")
    asyncio.run(main(parser.parse_args()))
