"""`meterd run`: jobs, /metrics and /healthz, and a graceful stop that flushes the store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from daemon.runtime import app as app_module
from daemon.runtime.app import Daemon
from daemon.runtime.http import Health
from daemon.runtime.scheduler import Job
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import Settings, load
from daemon.storage.repository import Store
from tests.factories import reading

METERD = [sys.executable, "-m", "daemon"]


def _settings(write_config: Callable[[str], Path], tmp_path: Path, *, grace: float = 5.0) -> Settings:
    path = write_config(
        f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[metrics]\nlisten = "127.0.0.1:0"\n[scheduler]\nshutdown_grace_s = {grace}\n'
    )
    return load(path, {})


async def _run_job_then_stop(
    monkeypatch: pytest.MonkeyPatch,
    daemon: Daemon,
    name: str,
    body: Callable[[Pipeline], Awaitable[None]],
    *,
    while_running: Callable[[asyncio.Task[None]], Awaitable[None]] | None = None,
) -> list[MutableMapping[str, Any]]:
    """Run the daemon with one job, request a stop once the job has started; return the log events."""
    started = asyncio.Event()

    def build(
        _settings: Settings, _store: Store, pipeline: Pipeline, _metrics: Metrics, *_: object, **__: object
    ) -> list[Job]:
        async def run() -> None:
            started.set()
            await body(pipeline)

        return [Job(name, 3600, run)]

    monkeypatch.setattr(app_module, "build_jobs", build)
    with capture_logs() as logs:
        task = asyncio.create_task(daemon.run())
        async with asyncio.timeout(10):
            await started.wait()
        if while_running is not None:
            await while_running(task)
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
    return logs


async def test_stop_lets_a_running_job_finish_and_its_readings_are_stored(
    monkeypatch: pytest.MonkeyPatch, write_config, tmp_path: Path, metrics: Metrics
) -> None:
    async def slow_poll(pipeline: Pipeline) -> None:
        await asyncio.sleep(0.3)
        await pipeline.emit([reading(reading_id="in-flight")])

    settings = _settings(write_config, tmp_path)
    logs = await _run_job_then_stop(monkeypatch, Daemon(settings, metrics=metrics), "poll", slow_poll)
    events = [(e["event"], e.get("outcome")) for e in logs]
    assert ("job_completed", "success") in events
    assert events.index(("stop_requested", None)) < events.index(("job_completed", "success"))
    assert events[-1] == ("daemon_stopped", None)
    async with Store.open(settings.database_url) as store:
        assert [r.id for r in await store.readings()] == ["in-flight"]
    assert metrics.registry.get_sample_value("meterd_job_runs_total", {"task": "poll", "outcome": "success"}) == 1


async def test_a_job_past_the_grace_period_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, write_config, tmp_path: Path, metrics: Metrics
) -> None:
    async def stuck(_pipeline: Pipeline) -> None:
        await asyncio.sleep(3600)

    daemon = Daemon(_settings(write_config, tmp_path, grace=0.2), metrics=metrics)
    logs = await _run_job_then_stop(monkeypatch, daemon, "stuck", stuck)
    cancelled = next(e for e in logs if e["event"] == "jobs_cancelled_at_stop")
    assert (cancelled["in_flight"], cancelled["log_level"]) == (1, "warning")
    assert metrics.registry.get_sample_value("meterd_job_runs_total", {"task": "stuck", "outcome": "cancelled"}) == 1


async def test_a_failing_job_is_counted_and_the_daemon_keeps_going(
    monkeypatch: pytest.MonkeyPatch, write_config, tmp_path: Path, metrics: Metrics
) -> None:
    async def broken(_pipeline: Pipeline) -> None:
        raise RuntimeError("bug")

    daemon = Daemon(_settings(write_config, tmp_path), metrics=metrics)
    health: list[Health] = []

    async def still_up(task: asyncio.Task[None]) -> None:
        await asyncio.sleep(0.05)
        assert not task.done()
        health.append(await daemon.health())

    logs = await _run_job_then_stop(monkeypatch, daemon, "broken", broken, while_running=still_up)
    assert health[0].ok, health[0].checks
    assert any(e["event"] == "job_crashed" and e["job"] == "broken" for e in logs)
    assert metrics.registry.get_sample_value("meterd_job_runs_total", {"task": "broken", "outcome": "error"}) == 1


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def wait_for_port(stderr_path: Path, proc: subprocess.Popen[bytes], event_name: str = "metrics_listening") -> int:
    """The port a `meterd run` subprocess logged (JSON on stderr) with ``event_name``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"meterd exited early: {stderr_path.read_text()}")
        for line in stderr_path.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == event_name:
                return int(event["address"].rsplit(":", 1)[1])
        time.sleep(0.05)
    pytest.fail(f"meterd did not log {event_name}: {stderr_path.read_text()}")


def test_sigterm_stops_meterd_run_cleanly_with_a_flushed_store(write_config, tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = write_config(
        f'site = "acme-hq"\nstate_dir = "{state}"\n[metrics]\nlisten = "127.0.0.1:0"\n[logging]\nformat = "json"\n'
    )
    stderr_path = tmp_path / "meterd.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen([*METERD, "run", "--config", str(config)], stderr=stderr)
    try:
        port = wait_for_port(stderr_path, proc)
        status, body = _get(f"http://127.0.0.1:{port}/healthz")
        assert status == 200
        assert json.loads(body) == {"status": "ok", "checks": {"scheduler": "running", "database": "ok"}}

        # Readings arrive while the daemon runs (a second process writes to the same store).
        batch = tmp_path / "batch.json"
        batch.write_text(json.dumps([_wire(i) for i in range(50)]))
        ingest = subprocess.run(
            [*METERD, "ingest", str(batch), "--config", str(config)], capture_output=True, check=False
        )
        assert ingest.returncode == 0, ingest.stderr

        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        for name in (
            "meterd_build_info",
            "meterd_job_runs",
            "meterd_job_duration_seconds",
            "meterd_job_last_success_timestamp_seconds",
            "meterd_readings_stored",
            "meterd_readings_duplicate",
            "meterd_dead_letters",
            "meterd_db_errors",
            "meterd_scheduler_running",
            "meterd_devices",
        ):
            assert name in families, f"{name} missing from /metrics"
        running = families["meterd_scheduler_running"].samples[0].value
        assert running == 1

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    events = [json.loads(line)["event"] for line in stderr_path.read_text().splitlines()]
    assert events.index("stop_requested") < events.index("daemon_stopped")
    wal = state / "meterd.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0, "WAL not checkpointed at stop"
    with sqlite3.connect(state / "meterd.db") as db:
        assert db.execute("SELECT count(DISTINCT reading_id) FROM readings").fetchone() == (50,)


def _wire(i: int) -> dict[str, object]:
    return {
        "schema": "meterd.reading/1",
        "id": f"r-{i}",
        "site": "acme-hq",
        "taken_at": f"2026-11-22T10:{i:02d}:00Z",
        "device": {"serial": "VNCRC48198"},
        "meters": [{"meter": "total", "value": 15000 + i, "unit": "impressions"}],
    }


def test_run_once_runs_every_job_and_exits(write_config, tmp_path: Path) -> None:
    config = write_config(f'state_dir = "{tmp_path / "state"}"\n[logging]\nformat = "json"\n')
    done = subprocess.run(
        [*METERD, "run", "--once", "--config", str(config)],
        capture_output=True,
        check=False,
        timeout=60,
        env={**os.environ, "METERD_METRICS__ENABLED": "false"},
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stderr.decode().splitlines()]
    # Every job of a default configuration, once: detection, upkeep, the overdue-invoice reminders.
    assert [e["job"] for e in events if e["event"] == "job_completed"] == [
        "anomalies",
        "supplies",
        "maintenance",
        "reminders",
    ]
