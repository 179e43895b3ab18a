"""A hub's store rate and the bytes a meter value costs, against PostgreSQL's COPY of the same rows.

    .venv/bin/python bench/store_rate.py [--readings 200000] [--postgres URL_OF_A_SERVER]

Decoded readings (three meters each, 500 devices, reading-v1 payloads as the MQTT bench sends
them) go through the hub's own path (`Pipeline.emit`, batches of `mqtt.batch_max` = 500) into a
fresh database: SQLite, and PostgreSQL with --postgres (a database `meterd_store_rate` is
created on that server and dropped first). The reference, in the same run: the same meter rows
COPY'd into a table built LIKE `readings` (same columns, constraints and indexes), PostgreSQL's
fastest bulk path, no idempotence check and no device upserts. Then the table's heap and index
bytes per meter value (docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from bench.mqtt_ingest import _payload
from collectors import wire
from daemon.kernel.reading import Reading
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.storage.repository import Store

BATCH = 500
DATABASE = "meterd_store_rate"


def _readings(count: int) -> list[Reading]:
    start = datetime.now(UTC) - timedelta(days=1)
    return [wire.decode(_payload(n, start + timedelta(seconds=n)), source="mqtt") for n in range(count)]


async def _store(url: str, readings: list[Reading]) -> float:
    """Readings per second through the hub's pipeline."""
    async with Store.open(url) as store:
        pipeline = Pipeline(store, Metrics())
        started = time.perf_counter()
        for start in range(0, len(readings), BATCH):
            await pipeline.emit(readings[start : start + BATCH])
        return len(readings) / (time.perf_counter() - started)


def _copy_reference(url: str) -> float:
    """Readings per second of COPY of the same meter rows into a table like `readings`."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS copy_reference")
        conn.execute("CREATE TABLE copy_reference (LIKE readings INCLUDING ALL)")
        rows = conn.execute(
            "SELECT reading_id, device_id, meter, value, unit, derived, taken_at, received_at, source, address, model"
            " FROM readings"
        ).fetchall()
        readings = len({row[0] for row in rows})
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for offset in range(0, len(rows), BATCH * 3):  # one transaction a batch, as the hub commits
                with (
                    conn.transaction(),
                    cursor.copy(
                        "COPY copy_reference (reading_id, device_id, meter, value, unit, derived, taken_at,"
                        " received_at, source, address, model) FROM STDIN"
                    ) as copy,
                ):
                    for row in rows[offset : offset + BATCH * 3]:
                        copy.write_row(row)
        return readings / (time.perf_counter() - started)


def _bytes_per_value(url: str) -> tuple[int, float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings")
        count, heap, indexes = conn.execute(
            "SELECT count(*), pg_relation_size('readings'), pg_indexes_size('readings') FROM readings"
        ).fetchone() or (0, 0, 0)
    return count, heap / count, indexes / count


def _fresh_database(server: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    return server.rsplit("/", 1)[0] + f"/{DATABASE}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=200_000)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (its database is not touched)")
    args = parser.parse_args()
    readings = _readings(args.readings)
    with tempfile.TemporaryDirectory() as tmp:
        rate = asyncio.run(_store(f"sqlite:///{tmp}/store.db", readings))
        print(f"meterd store -> SQLite        {rate:8.0f} readings/s")
    if args.postgres:
        url = _fresh_database(args.postgres)
        rate = asyncio.run(_store(url, readings))
        reference = _copy_reference(url)
        print(f"meterd store -> PostgreSQL    {rate:8.0f} readings/s")
        print(f"COPY of the same rows         {reference:8.0f} readings/s   ratio {rate / reference:.2f}")
        count, heap, indexes = _bytes_per_value(url)
        print(f"readings: {count} meter values, {heap:.0f} B heap + {indexes:.0f} B indexes each")


if __name__ == "__main__":
    main()
