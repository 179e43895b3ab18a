"""A Mosquitto of a test's own, on a free port, that the test may stop, kill and restart."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path


class OwnBroker:
    def __init__(self, workdir: Path, port: int, extra: tuple[str, ...] = ()) -> None:
        self.port = port
        self.workdir = workdir
        self.config = workdir / "mosquitto.conf"
        self._process: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",  # sessions and queued QoS 1 messages survive a restart
            f"persistence_location {workdir}/",
            "autosave_interval 1",
            f"log_dest file {workdir}/mosquitto.log",
            *extra,
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto', who cannot write here
        self.config.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        self._process = subprocess.Popen(["mosquitto", "-c", str(self.config)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
                continue
            return
        msg = f"mosquitto did not listen on {self.port}"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """A graceful stop: mosquitto writes its persistence file first."""
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
