"""Real SNMP peers: snmpsim serving the shared recordings on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collectors.snmp.client import SnmpClient, SnmpTarget
from daemon.errors import DeviceTimeoutError
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
WALKS = REPO.parent / "shared" / "walks"
LAUNCHER = REPO / "tests" / "snmpsim_launcher.py"
CRAFTED = REPO / "tests" / "fixtures" / "snmp"


@dataclass(frozen=True)
class Simulator:
    port: int
    expected: dict[str, Any]

    def target(self, community: str, **kwargs: Any) -> SnmpTarget:
        return SnmpTarget(host="127.0.0.1", port=self.port, communities=(community,), **kwargs)


def _wait_until_answering(port: int, community: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    async def probe() -> bool:
        async with SnmpClient() as client:
            try:
                await client.get(
                    SnmpTarget("127.0.0.1", port, communities=(community,), timeout_s=0.5, retries=0),
                    ["1.3.6.1.2.1.1.1.0"],
                )
            except DeviceTimeoutError:
                return False
            return True

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"snmpsim exited: {log.read_text()[-2000:]}")
        if asyncio.run(probe()):
            return
    pytest.fail(f"snmpsim did not answer within 60 s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """snmpsim serving ../shared/walks/librenms; the community selects the recording."""
    data_dir = WALKS / "librenms"
    if not data_dir.is_dir():
        pytest.fail(f"{data_dir} is missing: the tests need ../shared beside the checkout")
    workdir = tmp_path_factory.mktemp("snmpsim")
    # Not under pytest's tmp root: that is private to root, and snmpsim drops to nobody.
    cache = Path(tempfile.mkdtemp(prefix="meterd-snmpsim-"))
    port = free_port()
    command = [
        sys.executable,
        str(LAUNCHER),
        f"--data-dir={data_dir}",
        f"--data-dir={CRAFTED}",
        f"--cache-dir={cache}",
        f"--agent-udpv4-endpoint=127.0.0.1:{port}",
    ]
    if os.geteuid() == 0:
        shutil.chown(cache, "nobody", "nogroup")
        command += ["--process-user=nobody", "--process-group=nogroup"]
    log = workdir / "snmpsim.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        expected = json.loads((WALKS / "expected.json").read_text())
        _wait_until_answering(port, next(iter(expected["files"].values()))["community"], proc, log)
        yield Simulator(port=port, expected=expected)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(cache, ignore_errors=True)
