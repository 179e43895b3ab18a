"""`meterd demo`: the README's main command must run on a fresh checkout and read every simulated printer."""

from __future__ import annotations

import re
import subprocess
import sys

from daemon.demo.run import fleet_communities


def test_demo_reads_every_simulated_printer_and_counters_advance() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--duration", "22"],
        capture_output=True,
        check=False,
        timeout=120,
    )
    out = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "metrics: http://127.0.0.1:" in out
    final = out.rsplit("meterd demo: simulated fleet", 1)[-1]
    for serial in ("DEMOHP0001", "A8Y1DEMO0002", "DEMOSH0003", "DEMOKY0004", "DEMOZB0005"):
        assert serial[:7] in final
    assert len(fleet_communities()) == 5
    # Three rounds in 22 s at the 10 s minimum interval; every printer's total moved.
    grown = [int(n.replace(",", "")) for n in re.findall(r"\+([\d,]+)", final)]
    assert len(grown) == 5
    assert all(n > 0 for n in grown)
