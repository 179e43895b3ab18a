"""An agent loads what it uses: no pandas, pyarrow, numpy or matplotlib (issue 24; bench/agent_footprint.py).

Each check runs a child interpreter, as `meterd` starts: this process has loaded everything already.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from tests.integration.conftest import Simulator
from tests.integration.test_mqtt_ingest import MQTT_HOST, MQTT_PORT

HEAVY: Final = frozenset({"pandas", "pyarrow", "numpy", "matplotlib"})
REPO: Final = Path(__file__).resolve().parents[2]

# `meterd run` in a child; after it stops (SIGTERM), the top-level packages it had loaded.
_RUN_AND_LIST: Final = """
import json, sys
from daemon.cli.main import main
code = main(["run", "--config", sys.argv[1], "--log-format", "json"])
with open(sys.argv[2], "w") as out:
    json.dump({"code": code, "loaded": sorted({m.split(".")[0] for m in sys.modules})}, out)
"""


def _environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_importing_the_daemon_for_meterd_run_loads_none_of_them() -> None:
    # `meterd run --help` parses the command line as `meterd run` does, then exits before the daemon starts.
    probe = (
        "import contextlib, io, sys\n"
        "import daemon.runtime.app\n"
        "from daemon.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--help'])\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=_environment()
    )
    loaded = set(result.stdout.split())
    assert {"daemon", "sqlalchemy"} <= loaded  # the probe did import the daemon
    assert loaded.isdisjoint(HEAVY), sorted(loaded & HEAVY)


def test_a_running_agent_after_a_poll_round_has_loaded_none_of_them(
    snmpsim: Simulator, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # The session's simulator answers on 127.0.0.1 only, and a target is one address: one printer.
    targets = f'[[snmp.targets]]\nhost = "127.0.0.1"\nport = {snmpsim.port}\ncommunities = ["konica_c250i"]\n'
    config = write_config(
        f'site = "footprint"\nrole = "agent"\nstate_dir = "{tmp_path / "state"}"\n'
        '[anomalies]\nenabled = false\n[metrics]\nlisten = "127.0.0.1:0"\n'
        f'[mqtt]\nhost = "{MQTT_HOST}"\nport = {MQTT_PORT}\n'
        f"[snmp]\ntimeout_s = 1.0\nretries = 1\n{targets}"
    )
    listing = tmp_path / "loaded.json"
    child = subprocess.Popen(
        [sys.executable, "-c", _RUN_AND_LIST, str(config), str(listing)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=_environment(),
    )
    assert child.stdout is not None
    seen = []
    try:
        deadline = time.monotonic() + 60
        for line in child.stdout:  # the daemon logs a line at least every round; the deadline is checked per line
            seen.append(line)
            event = json.loads(line) if line.startswith(b"{") else {}
            if event.get("event") == "poll_round_done":
                assert event["answered"] == 1, event
                break
            assert time.monotonic() < deadline, b"".join(seen[-20:]).decode()
        else:
            raise AssertionError(b"".join(seen[-20:]).decode())
    finally:
        child.send_signal(signal.SIGTERM)
        child.communicate(timeout=30)
    outcome = json.loads(listing.read_text())
    assert outcome["code"] == 0
    loaded = set(outcome["loaded"])
    assert {"daemon", "collectors", "aiomqtt"} <= loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & HEAVY)
