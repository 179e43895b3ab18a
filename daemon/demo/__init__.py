"""`meterd demo`: a simulated fleet of printers, polled by a real daemon on a throwaway store."""

from importlib import resources
from pathlib import Path


def fleet_dir() -> Path:
    """The demo fleet's own recordings (one .snmprec per printer), shipped in the package."""
    return Path(str(resources.files("daemon.demo") / "fleet"))
