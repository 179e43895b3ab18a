"""Scheduled poll rounds against snmpsim: readings stored, dead devices logged once and backed off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from collectors.snmp.collector import SnmpCollector
from daemon.runtime.jobs import build_jobs
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.services.polling import PollRound, expand_targets
from daemon.settings import Settings, load
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.conftest import Simulator

METERD = [sys.executable, "-m", "daemon"]


def _settings(write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, dead_port: int) -> Settings:
    return load(
        write_config(
            f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n'
            "[scheduler]\npoll_interval_s = 60\n"
            '[snmp]\ntimeout_s = 0.2\nretries = 0\nmax_backoff_s = 600\ncommunities = ["konica_c250i"]\n'
            f'[[snmp.targets]]\nhost = "127.0.0.1"\nport = {snmpsim.port}\n'
            f'[[snmp.targets]]\nhost = "127.0.0.1"\nport = {dead_port}\n'
        ),
        {},
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_rounds_store_readings_and_back_off_a_silent_device(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, metrics: Metrics
) -> None:
    dead_port = free_port()
    settings = _settings(write_config, tmp_path, snmpsim, dead_port)
    clock = _Clock()
    async with Store.open(settings.database_url) as store, SnmpCollector(site=settings.site) as collector:
        poll_round = PollRound(settings, collector, Pipeline(store, metrics), metrics, monotonic=clock)
        with capture_logs() as logs:
            for _ in range(4):  # rounds at t+0, +60, +120, +180 s
                await poll_round.run()
                clock.now += 60
        stored = await store.readings(device="AA2M021115700")
    rounds = [e for e in logs if e["event"] == "poll_round_done"]
    downs = [e for e in logs if e["event"] == "device_down"]
    assert len(stored) == 4
    assert {m.meter.value for m in stored[0].meters} >= {"total", "print_color", "scan_total"}
    assert len(downs) == 1  # once per outage, not once per round
    assert downs[0]["address"] == f"127.0.0.1:{dead_port}"
    # Tried rounds 1 and 2, then skipped one round (back-off 1, 2, 4 … rounds), tried round 4.
    assert [e["polled"] for e in rounds] == [2, 2, 1, 2]
    up = metrics.registry.get_sample_value
    assert up("meterd_device_up", {"address": f"127.0.0.1:{snmpsim.port}"}) == 1
    assert up("meterd_device_up", {"address": f"127.0.0.1:{dead_port}"}) == 0
    assert up("meterd_snmp_polls_total", {"outcome": "timeout"}) == 3


def test_cidr_targets_expand_minus_exclusions(write_config: Callable[[str], Path]) -> None:
    settings = load(
        write_config(
            '[[snmp.targets]]\nhost = "10.0.4.0/29"\nexclude = ["10.0.4.2", "10.0.4.4/31"]\n'
            '[[snmp.targets]]\nhost = "printer.example"\nport = 1161\ncommunities = ["own"]\n'
        ),
        {},
    )
    planned = expand_targets(settings)
    assert [p.target.address for p in planned] == [
        "10.0.4.1:161",
        "10.0.4.3:161",
        "10.0.4.6:161",
        "printer.example:1161",
    ]
    assert [p.subnet for p in planned] == ["10.0.4.0/29"] * 3 + [None]
    assert planned[0].target.communities == ("public",)
    assert planned[-1].target.communities == ("own",)


async def test_silent_addresses_of_a_range_are_no_devices_down_but_a_listed_host_is(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, metrics: Metrics
) -> None:
    # 127.0.0.0/29: snmpsim answers on 127.0.0.1 only; 127.0.0.2 is also listed by itself.
    settings = load(
        write_config(
            f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n[scheduler]\npoll_interval_s = 60\n'
            '[snmp]\ntimeout_s = 0.2\nretries = 0\ncommunities = ["konica_c250i"]\n'
            f'[[snmp.targets]]\nhost = "127.0.0.0/29"\nport = {snmpsim.port}\n'
            f'[[snmp.targets]]\nhost = "127.0.0.2"\nport = {snmpsim.port}\n'
        ),
        {},
    )
    clock = _Clock()
    async with Store.open(settings.database_url) as store, SnmpCollector(site=settings.site) as collector:
        poll_round = PollRound(settings, collector, Pipeline(store, metrics), metrics, monotonic=clock)
        with capture_logs() as logs:
            for _ in range(2):
                await poll_round.run()
                clock.now += 60
    downs = [e["address"] for e in logs if e["event"] == "device_down"]
    assert downs == [f"127.0.0.2:{snmpsim.port}"]  # the listed host, once; the range's empty addresses never
    up = metrics.registry.get_sample_value
    assert up("meterd_device_up", {"address": f"127.0.0.1:{snmpsim.port}"}) == 1
    assert up("meterd_device_up", {"address": f"127.0.0.2:{snmpsim.port}"}) == 0
    assert up("meterd_device_up", {"address": f"127.0.0.3:{snmpsim.port}"}) is None  # no series for no device
    assert [e["answered"] for e in logs if e["event"] == "poll_round_done"] == [1, 1]


def test_a_range_too_wide_is_refused_with_its_key(write_config: Callable[[str], Path]) -> None:
    with pytest.raises(Exception, match=r"snmp\.targets\[0\]\.host: .*at most a /16"):
        load(write_config('[[snmp.targets]]\nhost = "10.0.0.0/8"\n'), {})


def test_run_once_polls_the_configured_printers(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator
) -> None:
    _settings(write_config, tmp_path, snmpsim, free_port())
    done = subprocess.run(
        [*METERD, "run", "--once", "--log-format", "json", "--config", str(tmp_path / "meterd.toml")],
        capture_output=True,
        check=False,
        timeout=60,
        env={**os.environ, "METERD_METRICS__ENABLED": "false"},
    )
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [*METERD, "readings", "--format", "json", "--config", str(tmp_path / "meterd.toml")],
        capture_output=True,
        check=True,
        timeout=60,
    )
    readings = json.loads(listed.stdout)
    assert [r["device"]["serial"] for r in readings] == ["AA2M021115700"]


async def test_the_scheduled_poll_job_counts_the_printers_it_found(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, metrics: Metrics
) -> None:
    settings = _settings(write_config, tmp_path, snmpsim, free_port())
    async with Store.open(settings.database_url) as store, SnmpCollector(site=settings.site) as collector:
        [poll] = [
            job
            for job in build_jobs(settings, store, Pipeline(store, metrics), metrics, collector)
            if job.name == "snmp_poll"
        ]
        assert metrics.registry.get_sample_value("meterd_devices") == 0
        await poll.run()
    assert metrics.registry.get_sample_value("meterd_devices") == 1  # with the round, not at the next upkeep
