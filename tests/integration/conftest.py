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
from daemon.demo.simulator import SimulatorError, SnmpSimulator
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
WALKS = REPO.parent / "shared" / "walks"
CRAFTED = REPO / "tests" / "fixtures" / "snmp"


@dataclass(frozen=True)
class Simulator:
    port: int
    expected: dict[str, Any]

    def target(self, community: str, **kwargs: Any) -> SnmpTarget:
        return SnmpTarget(host="127.0.0.1", port=self.port, communities=(community,), **kwargs)


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """snmpsim serving ../shared/walks/librenms and the crafted recordings; the community picks the file."""
    data_dir = WALKS / "librenms"
    if not data_dir.is_dir():
        pytest.fail(f"{data_dir} is missing: the tests need ../shared beside the checkout")
    simulator = SnmpSimulator([data_dir, CRAFTED], free_port(), tmp_path_factory.mktemp("snmpsim") / "snmpsim.log")
    simulator.start()
    try:
        expected = json.loads((WALKS / "expected.json").read_text())
        try:
            asyncio.run(simulator.wait_ready(next(iter(expected["files"].values()))["community"]))
        except SimulatorError as err:
            pytest.fail(str(err))
        yield Simulator(port=simulator.port, expected=expected)
    finally:
        simulator.stop()
