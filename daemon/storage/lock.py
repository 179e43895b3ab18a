"""One daemon per store: a file lock beside an SQLite file, an advisory lock on PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from daemon.kernel.errors import AlreadyRunningError
from daemon.storage.engine import mask, sqlite_path


@contextlib.asynccontextmanager
async def daemon_lock(engine: AsyncEngine, identity: str) -> AsyncIterator[None]:
    """Hold the store's daemon lock for the life of the block.

    On PostgreSQL the lock is per ``identity``: the site for agents and standalone
    daemons (two polling one site would read every printer twice), the site and MQTT
    client id for hubs (several hubs share one database and the load).

    Raises:
        AlreadyRunningError: another daemon holds it.
    """
    path = sqlite_path(engine.url)
    if path is not None:
        with _file_lock(path.with_name(path.name + ".lock"), mask(engine.url)):
            yield
        return
    key = zlib.crc32(f"meterd-daemon:{identity}".encode())
    async with engine.connect() as conn:
        held = (await conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key})).scalar_one()
        if not held:
            msg = f"another meterd daemon for {identity!r} is running on {mask(engine.url)}; stop it first"
            raise AlreadyRunningError(msg)
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@contextlib.asynccontextmanager
async def migration_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Serialise schema migrations of daemons sharing one PostgreSQL database (hubs starting together)."""
    if sqlite_path(engine.url) is not None:
        yield  # the daemon lock already makes it one process per file
        return
    key = zlib.crc32(b"meterd-migrate")
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


@contextlib.contextmanager
def _file_lock(lock_path: Path, where: str) -> Iterator[None]:
    # flock is released by the kernel when the process dies, so a crash never leaves a stale lock.
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            msg = f"another meterd daemon (pid {holder}) is running on {where}; stop it first"
            raise AlreadyRunningError(msg) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
