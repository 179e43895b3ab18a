"""snmpsim as a child process serving .snmprec files: the demo's printers and the tests' peers.

The SNMP community picks the file (``konica_c250i`` serves ``konica_c250i.snmprec``).
As root, snmpsim must drop to an unprivileged user before serving; its cache then lives
in a directory that user owns.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from collectors.snmp.client import SnmpClient, SnmpTarget
from daemon.kernel.errors import DeviceTimeoutError, MeterdError

_MAIN: Final = Path(__file__).with_name("snmpsim_main.py")
_SYS_DESCR: Final = "1.3.6.1.2.1.1.1.0"


class SimulatorError(MeterdError):
    """snmpsim did not start; the message carries the end of its log."""


class SnmpSimulator:
    """One snmpsim process on 127.0.0.1:``port``; ``start()``, ``await wait_ready(community)``, ``stop()``."""

    def __init__(
        self,
        data_dirs: Sequence[Path],
        port: int,
        log_path: Path,
        *,
        hosts: Sequence[str] = ("127.0.0.1",),
        engine_args: Sequence[str] = (),
        more_engines: Sequence[Sequence[str]] = (),
    ) -> None:
        self.data_dirs = list(data_dirs)
        self.port = port
        # Several loopback addresses (127.0.0.2 …) let each simulated printer have its own.
        self.hosts = list(hosts)
        # snmpsim options per SNMP engine: this one's (--v3-engine-id, --v3-user …) and whole
        # further engines (each from its own --v3-engine-id to its own endpoint).
        self.engine_args = list(engine_args)
        self.more_engines = [list(engine) for engine in more_engines]
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._cache: Path | None = None

    def start(self) -> None:
        # Not under a private temp root: snmpsim drops to nobody and must write its index here.
        self._cache = Path(tempfile.mkdtemp(prefix="meterd-snmpsim-"))
        command = [sys.executable, str(_MAIN), f"--cache-dir={self._cache}", *self.engine_args]
        command += [f"--data-dir={d}" for d in self.data_dirs]
        command += [f"--agent-udpv4-endpoint={host}:{self.port}" for host in self.hosts]
        command += [arg for engine in self.more_engines for arg in engine]
        if os.geteuid() == 0:
            shutil.chown(self._cache, "nobody", "nogroup")
            command += ["--process-user=nobody", "--process-group=nogroup"]
        with self.log_path.open("wb") as out:
            self._process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603

    async def wait_ready(self, community: str, timeout_s: float = 60.0) -> None:
        """Return once the simulator answers ``community``.

        Raises:
            SimulatorError: it exited or stayed silent; the message has its log's end.
        """
        target = SnmpTarget(self.hosts[0], self.port, communities=(community,), timeout_s=0.5, retries=0)
        deadline = time.monotonic() + timeout_s
        async with SnmpClient() as client:
            while time.monotonic() < deadline:
                if self._process is None or self._process.poll() is not None:
                    raise SimulatorError(f"snmpsim exited: {self._log_tail()}")
                try:
                    await client.get(target, [_SYS_DESCR])
                except DeviceTimeoutError:
                    await asyncio.sleep(0.2)
                    continue
                return
        raise SimulatorError(f"snmpsim did not answer within {timeout_s:.0f} s: {self._log_tail()}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None
        if self._cache is not None:
            shutil.rmtree(self._cache, ignore_errors=True)
            self._cache = None

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"
