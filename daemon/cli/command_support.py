"""What every `meterd` sub-command module shares: opening the store, who is acting, printing tables."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from billing.cells import write_rows
from daemon.settings import Settings
from daemon.storage.repository import Store


def open_store(settings: Settings, *, upgrade: bool = True) -> Any:  # noqa: ANN401 - async context manager
    return Store.open(settings.database_url, busy_timeout_ms=settings.storage.busy_timeout_ms, upgrade=upgrade)


def default_user() -> str:
    """Who is acting, for the audit log: the login name (the one behind sudo, if any)."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def print_rows(fmt: str, header: list[str], rows: list[list[str]], *, title: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    if fmt == "csv":
        write_rows(stream, header, rows)
        return
    table = Table(title=title, title_justify="left")
    for name in header:
        table.add_column(
            name, justify="right" if name in {"value", "net", "tax", "total", "amount"} else "left", overflow="fold"
        )
    for row in rows:
        table.add_row(*row)
    Console(file=stream, width=None if stream.isatty() else 200).print(table)
