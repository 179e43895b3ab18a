"""`meterd demo`: the README's main command must run on a fresh checkout, read every simulated printer and open
the web console to the user it prints."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import httpx

from daemon.demo.run import fleet_communities


def _open_the_console(line: str) -> None:
    """The demo's printed console address and user log in, and Today lists the demo site."""
    url, password = re.findall(r"web console: (http://\S+)/\s+login: demo\s+password: (\S+)", line)[0]
    with httpx.Client(base_url=url) as client:
        [csrf] = re.findall(r'name="csrf" value="(\w+)"', client.get("/login").text)
        client.post("/login", data={"csrf": csrf, "login": "demo", "password": password})
        # The console is up before the first poll round has stored the fleet: wait for it, boundedly.
        for _ in range(40):
            today = client.get("/")
            assert today.status_code == 200
            if "<td>demo</td>" in today.text:
                break
            time.sleep(0.5)
    assert "<td>demo</td>" in today.text


def test_demo_reads_every_simulated_printer_and_counters_advance() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "daemon", "demo", "--duration", "22"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if "web console:" in line:
            _open_the_console(line)
            break
    rest, errors = demo.communicate(timeout=120)
    out = "".join(lines) + rest
    assert demo.returncode == 0, errors[-2000:]
    assert "metrics: http://127.0.0.1:" in out
    assert "web console: http://127.0.0.1:" in out
    final = out.rsplit("meterd demo: simulated fleet", 1)[-1]
    for serial in ("DEMOHP0001", "A8Y1DEMO0002", "DEMOSH0003", "DEMOKY0004", "DEMOZB0005"):
        assert serial[:7] in final
    assert len(fleet_communities()) == 5
    # Three rounds in 22 s at the 10 s minimum interval; every printer's total moved.
    grown = [int(n.replace(",", "")) for n in re.findall(r"\+([\d,]+)", final)]
    assert len(grown) == 5
    assert all(n > 0 for n in grown)
