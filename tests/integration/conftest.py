"""Real SNMP peers: snmpsim serving the shared recordings on a free loopback port."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collectors.snmp.client import SnmpTarget
from daemon.demo import fleet_dir
from daemon.demo.simulator import SimulatorError, SnmpSimulator
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
WALKS = REPO.parent / "shared" / "walks"
CRAFTED = REPO / "tests" / "fixtures" / "snmp"


@dataclass(frozen=True)
class Simulator:
    port: int
    expected: dict[str, Any]  # ../shared/walks/expected.json (librenms/)
    printmaster: dict[str, Any]  # ../shared/walks/printmaster/expected.json

    def target(self, community: str, **kwargs: Any) -> SnmpTarget:
        return SnmpTarget(host="127.0.0.1", port=self.port, communities=(community,), **kwargs)


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """snmpsim serving the shared walks, the demo fleet and the crafted recordings; the community picks the file."""
    data_dirs = [WALKS / "librenms", WALKS / "printmaster", fleet_dir()]
    for data_dir in data_dirs:
        if not data_dir.is_dir():
            pytest.fail(f"{data_dir} is missing: the tests need ../shared beside the checkout")
    log = tmp_path_factory.mktemp("snmpsim") / "snmpsim.log"
    simulator = SnmpSimulator([*data_dirs, CRAFTED], free_port(), log)
    simulator.start()
    try:
        expected = json.loads((WALKS / "expected.json").read_text())
        try:
            asyncio.run(simulator.wait_ready(next(iter(expected["files"].values()))["community"]))
        except SimulatorError as err:
            pytest.fail(str(err))
        printmaster = json.loads((WALKS / "printmaster" / "expected.json").read_text())
        yield Simulator(port=simulator.port, expected=expected, printmaster=printmaster)
    finally:
        simulator.stop()


@pytest.fixture
def wide_issue_date_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stories dated autumn 2026 issue invoices on fixed dates; the issue-date window counts from the real today."""
    monkeypatch.setenv("METERD_BILLING__ISSUE_DATE_WINDOW_DAYS", "3650")
