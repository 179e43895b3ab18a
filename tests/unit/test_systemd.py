"""The shipped unit file is valid for systemd."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.settings import SchedulerSettings

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "meterd.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    # verify checks that ExecStart exists: point it at this environment's meterd.
    meterd = Path(sys.prefix) / "bin" / "meterd"
    unit = tmp_path / "meterd.service"
    unit.write_text(UNIT.read_text().replace("/opt/meterd/venv/bin/meterd", str(meterd)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr


def test_stop_timeout_outlasts_the_default_grace_period() -> None:
    timeout = next(line for line in UNIT.read_text().splitlines() if line.startswith("TimeoutStopSec="))
    assert float(timeout.split("=", 1)[1].rstrip("s")) > SchedulerSettings().shutdown_grace_s
