"""Engine set-up: one URL form for users, the right async driver, SQLite tuned for a daemon."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from daemon.kernel.errors import ConfigError, StateDirectoryError

_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"})
_POSTGRES_DRIVERS: Final = frozenset(
    {"postgres", "postgresql", "postgresql+psycopg", "postgresql+asyncpg", "postgresql+psycopg2"},
)
PG_CONNECT_TIMEOUT_S: Final = 5
# What meterd creates (the store, backups, exports) only its owner reads, whatever the umask: they hold
# customers' data and password hashes. The unit's UMask=0027 covers the daemon, not `meterd` run by hand.
PRIVATE: Final = 0o600


def parse_url(raw: str, *, key: str = "storage.url") -> URL:
    """Normalise a user-given store URL onto the async driver meterd uses.

    Raises:
        ConfigError: the URL is malformed or names a database meterd does not support.
    """
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError("--db/storage.url", key, f"{mask(raw)!r} is not a database URL") from None
    if url.drivername in _SQLITE_DRIVERS:
        if not url.database or url.database == ":memory:":
            reason = "SQLite needs a file path, e.g. sqlite:////var/lib/meterd/meterd.db"
            raise ConfigError("--db/storage.url", key, reason)
        return url.set(drivername="sqlite+aiosqlite")
    if url.drivername in _POSTGRES_DRIVERS:
        return url.set(drivername="postgresql+psycopg")
    reason = f"unsupported database {url.drivername!r}; use sqlite:///PATH or postgresql://USER@HOST/DB"
    raise ConfigError("--db/storage.url", key, reason)


def mask(raw: str | URL) -> str:
    """The URL with its password hidden, for logs and messages."""
    try:
        url = raw if isinstance(raw, URL) else make_url(raw)
    except ArgumentError:
        return "<unparsable URL>"
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    return Path(url.database).absolute() if url.get_backend_name() == "sqlite" and url.database else None


def ensure_state_directory(directory: Path) -> None:
    """Create the directory for an SQLite store and prove it writable by writing to it.

    os.access is not enough: it says yes to root on a read-only mount.

    Raises:
        StateDirectoryError: naming the directory and what to do.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".meterd-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except NotADirectoryError:
        msg = f"state directory {directory} is not a directory; set state_dir or --db to a usable path"
        raise StateDirectoryError(msg) from None
    except OSError as err:
        msg = (
            f"state directory {directory} is not writable ({err.strerror}); "
            "give the meterd user write access or set state_dir / --db elsewhere"
        )
        raise StateDirectoryError(msg) from None


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite gives its -wal and -shm the same mode)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, PRIVATE)  # os.open's mode passes through the umask; this does not
    finally:
        os.close(descriptor)


def write_private(path: Path, data: bytes) -> None:
    """Write ``path`` (mode 0600 whatever the umask, an existing file's mode tightened too).

    Raises:
        OSError: it cannot be written (the caller says what it was for).
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(descriptor, PRIVATE)
        handle.write(data)


def create_engine(url: URL, *, busy_timeout_ms: int = 5000) -> AsyncEngine:
    """An AsyncEngine for the store; performs no I/O (connections open on first use)."""
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        connect_args["timeout"] = busy_timeout_ms / 1000
    else:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    engine = create_async_engine(url, connect_args=connect_args, pool_pre_ping=True)
    if url.get_backend_name() == "sqlite":
        _tune_sqlite(engine, busy_timeout_ms)
    return engine


def _tune_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    # WAL lets CLI readers work while the daemon writes; NORMAL sync is durable across
    # process crashes in WAL mode and loses at most the last commit on power loss.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:  # noqa: ANN401 - DBAPI is untyped
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()
