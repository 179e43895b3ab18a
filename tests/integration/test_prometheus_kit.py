"""The Prometheus kit in config/: the rules pass promtool's check and its unit tests, and every meterd metric a
rule or a dashboard panel asks for is one a live /metrics really exports."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.runtime.http import Health, OpsServer
from daemon.services.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "prometheus" / "meterd-rules.yml"
RULE_TESTS = REPO / "config" / "prometheus" / "meterd-rules.test.yml"
DASHBOARD = REPO / "config" / "grafana" / "meterd-dashboard.json"
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "summary": ("_sum", "_count", "_created"),
}


def _promtool(*argv: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: install Debian's 'prometheus' package (./dev test does)")
    return subprocess.run([promtool, *argv], capture_output=True, text=True, timeout=120, check=False, cwd=RULES.parent)


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    checked = _promtool("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 17 rules found" in checked.stdout
    tested = _promtool("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr


async def _live_metric_names() -> set[str]:
    async def healthy() -> Health:
        return Health(ok=True, checks={})

    server = OpsServer(Metrics(), healthy, "127.0.0.1", 0)
    async with server.serving():
        url = f"http://127.0.0.1:{server.bound_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())
    names = set()
    for family in text_string_to_metric_families(body):
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


async def test_every_metric_the_rules_and_the_dashboard_use_is_exported() -> None:
    exported = await _live_metric_names()
    recorded = set(re.findall(r"record: (meterd:[a-z0-9_:]+)", RULES.read_text()))
    exprs = re.findall(r"expr: (.+)", RULES.read_text())
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs += [target["expr"] for panel in panels for target in panel.get("targets", [])]
    used = {name for expr in exprs for name in re.findall(r"\b(meterd_[a-z0-9_]+)", expr)}
    used_recorded = {name for expr in exprs for name in re.findall(r"\b(meterd:[a-z0-9_:]+)", expr)}
    assert len(used) >= 15
    assert sorted(used - exported) == []  # a renamed or removed metric breaks a rule or a panel: caught here
    assert sorted(used_recorded - recorded) == []
    # And the other way round: no metric an operator might miss is left out of both.
    unwatched = {n for n in exported if n.startswith("meterd_") and not n.endswith(("_created", "_sum", "_count"))}
    unwatched -= used
    assert unwatched <= {
        "meterd_build_info",
        "meterd_meter_values_stored_total",
        "meterd_readings_duplicate_total",
        "meterd_scheduler_running",
        "meterd_mqtt_messages_received_total",
        "meterd_outbox_dropped_total",
        "meterd_forwarded_total",
        "meterd_anomaly_notifications_total",
        "meterd_udp_receive_errors_total",
        "meterd_job_runs_total",
        "meterd_ingest_lag_seconds_bucket",
        "meterd_job_duration_seconds_bucket",
        "meterd_readings_stored_total",
        "meterd_mail_sent_total",
        "meterd_service_alerts_total",
        "meterd_meter_values_pruned_total",  # housekeeping, counted for the curious: no alert needed
    }, sorted(unwatched)
