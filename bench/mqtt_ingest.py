"""MQTT ingest throughput and lag, against a bare subscriber measured in the same run.

    .venv/bin/python bench/mqtt_ingest.py [--readings 20000] [--postgres URL]

A Mosquitto of its own (free port, unlimited queues). For each consumer, a persistent
session is created, the consumer goes away, a separate process publishes M readings
(QoS 1) that the broker queues, and the consumer comes back and drains the backlog:
1. a bare aiomqtt subscriber that does nothing with the messages (the reference);
2. meterd's hub ingest (decode, validate, batch commit, then PUBACK) into SQLite;
3. the same into PostgreSQL (with --postgres);
4. `meterd ingest` of M other readings (an NDJSON file of the same payloads) into each
   of those stores, timed from the file's bytes to the last commit, and its ratio to the
   hub's rate on that store (issue 19: at least 0.8).
Then the live lag: readings published at 2,000/s for 10 s into a running SQLite hub,
lag = commit time - taken_at, from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

# A script, run from anywhere: the repository's test helpers (its own broker) are imported too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiomqtt
from sqlalchemy import text

from collectors.mqtt.connection import BrokerOptions
from collectors.mqtt.ingest import IngestOptions, MqttIngest
from daemon.cli.main import ingest_file
from daemon.services.metrics import Metrics
from daemon.services.mqtt import IngestMetrics
from daemon.services.pipeline import Pipeline
from daemon.settings import Settings
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.mosquitto import OwnBroker

SITE = "bench"


def _payload(n: int, taken_at: datetime) -> bytes:
    return json.dumps(
        {
            "schema": "meterd.reading/1",
            "id": f"b-{uuid.uuid4().hex}",
            "site": SITE,
            "taken_at": taken_at.isoformat().replace("+00:00", "Z"),
            "device": {"serial": f"SER{n % 500}", "vendor": "HP", "model": "LaserJet", "address": "10.0.4.21"},
            "meters": [
                {"meter": "total", "value": 100_000 + n, "unit": "impressions"},
                {"meter": "mono", "value": 60_000 + n, "unit": "impressions"},
                {"meter": "color", "value": 40_000, "unit": "impressions"},
            ],
        },
        separators=(",", ":"),
    ).encode()


async def publisher(port: int, count: int, rate: float) -> None:
    """Runs in its own process (--publish): publish ``count`` readings, paced at ``rate``/s (0: flat out)."""
    started = time.perf_counter()
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"pub-{uuid.uuid4().hex[:6]}", max_inflight_messages=1000
    ) as c:
        c.pending_calls_threshold = 10_000
        window = asyncio.Semaphore(1000)

        async def one(n: int) -> None:
            try:
                await c.publish(f"meterd/v1/{SITE}/SER{n % 500}/reading", _payload(n, datetime.now(UTC)), qos=1)
            finally:
                window.release()

        async with asyncio.TaskGroup() as tasks:
            for n in range(count):
                if rate:
                    await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
                await window.acquire()
                tasks.create_task(one(n))


def _publish(port: int, count: int, rate: float = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--publish", str(count), "--port", str(port), "--rate", str(rate)]
    )


async def _bare_drain(port: int, count: int) -> float:
    client_id = f"bare-{uuid.uuid4().hex[:6]}"
    options = BrokerOptions("127.0.0.1", port, client_id, session_expiry_s=600)
    async with options.client() as c:
        await c.subscribe(f"meterd/v1/{SITE}/+/reading", qos=1)
    _publish(port, count).wait()
    async with options.client() as c:
        started, got = time.perf_counter(), 0
        async for _message in c.messages:
            got += 1
            if got == count:
                return count / (time.perf_counter() - started)
    return 0.0


class _Counting(IngestMetrics):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__(metrics)
        self.count = 0

    def received(self, count: int) -> None:
        super().received(count)
        self.count += count


async def _hub_drain(port: int, count: int, store_url: str) -> float:
    client_id = f"hub-{uuid.uuid4().hex[:6]}"
    broker = BrokerOptions("127.0.0.1", port, client_id, session_expiry_s=600)
    options = IngestOptions(sites=(SITE,), batch_max=1000, batch_wait_s=0.05)
    async with Store.open(store_url) as store:
        metrics = Metrics()
        pipeline = Pipeline(store, metrics)
        events = _Counting(metrics)
        ingest = MqttIngest(broker, options, events)
        task = asyncio.create_task(ingest.run(pipeline))
        while metrics.registry.get_sample_value("meterd_broker_connected") != 1:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        _publish(port, count).wait()
        started = time.perf_counter()
        task = asyncio.create_task(ingest.run(pipeline))
        while (metrics.registry.get_sample_value("meterd_readings_stored_total", {"source": "mqtt"}) or 0) < count:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return count / elapsed


async def _cli_ingest(count: int, store_url: str, workdir: Path) -> float:
    """``meterd ingest FILE`` (its code, in this process) with the hub's batch size, on the hub's store."""
    path = workdir / "ingest.ndjson"
    now = datetime.now(UTC)
    path.write_bytes(b"\n".join(_payload(n, now + timedelta(milliseconds=n)) for n in range(count)))
    settings = Settings(mqtt={"batch_max": 1000})
    async with Store.open(store_url) as store:
        started = time.perf_counter()
        counts = await ingest_file(store, settings, path.read_bytes(), str(path), progress=False)
        elapsed = time.perf_counter() - started
    assert counts.stored == count, counts
    return count / elapsed


async def _live_lag(port: int, workdir: Path) -> tuple[float, float, int]:
    rate, seconds = 2000, 10
    broker = BrokerOptions("127.0.0.1", port, f"hub-{uuid.uuid4().hex[:6]}", session_expiry_s=600)
    url = f"sqlite:///{workdir / 'lag' / 'meterd.db'}"
    async with Store.open(url) as store:
        metrics = Metrics()
        ingest = MqttIngest(broker, IngestOptions(sites=(SITE,), batch_wait_s=0.05), IngestMetrics(metrics))
        task = asyncio.create_task(ingest.run(Pipeline(store, metrics)))
        while metrics.registry.get_sample_value("meterd_broker_connected") != 1:
            await asyncio.sleep(0.05)
        publishing = _publish(port, rate * seconds, rate)
        await asyncio.get_running_loop().run_in_executor(None, publishing.wait)
        while (
            metrics.registry.get_sample_value("meterd_readings_stored_total", {"source": "mqtt"}) or 0
        ) < rate * seconds:
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with store.engine.connect() as conn:
            rows = await conn.execute(text("SELECT DISTINCT reading_id, taken_at, received_at FROM readings"))
            lags = sorted(_seconds(received) - _seconds(taken) for _id, taken, received in rows)
    return lags[len(lags) // 2], lags[int(len(lags) * 0.99)], len(lags)


def _seconds(value: object) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


async def main(count: int, postgres: str | None) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="meterd-mqtt-bench-"))
    broker = OwnBroker(workdir, free_port(), ("max_queued_messages 0", "max_inflight_messages 0", "persistence false"))
    broker.config.write_text(broker.config.read_text().replace("persistence true\n", ""))
    broker.start()
    try:
        bare = await _bare_drain(broker.port, count)
        print(f"bare aiomqtt subscriber drains   {bare:9.0f} msg/s")
        sqlite_url = f"sqlite:///{workdir / 'hub' / 'meterd.db'}"
        sqlite = await _hub_drain(broker.port, count, sqlite_url)
        print(f"meterd hub -> SQLite commits     {sqlite:9.0f} readings/s   ratio to bare {sqlite / bare:.2f}")
        ingest = await _cli_ingest(count, sqlite_url, workdir)
        print(f"meterd ingest -> SQLite commits  {ingest:9.0f} readings/s   ratio to the hub {ingest / sqlite:.2f}")
        if postgres:
            pg = await _hub_drain(broker.port, count, postgres)
            print(f"meterd hub -> PostgreSQL commits {pg:9.0f} readings/s   ratio to bare {pg / bare:.2f}")
            ingest = await _cli_ingest(count, postgres, workdir)
            print(f"meterd ingest -> PostgreSQL      {ingest:9.0f} readings/s   ratio to the hub {ingest / pg:.2f}")
        p50, p99, n = await _live_lag(broker.port, workdir)
        print(f"live at 2,000 readings/s for 10 s: {n} readings, lag p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    finally:
        broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--postgres", metavar="URL", help="also measure a hub committing into this database")
    parser.add_argument("--publish", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        asyncio.run(publisher(args.port, args.publish, args.rate))
    else:
        asyncio.run(main(args.readings, args.postgres))
