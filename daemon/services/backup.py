"""Backups that restore: SQLite's online backup API or pg_dump, encrypted, a SHA-256 beside each, rotation.

Restore goes into an empty store only, unless told to replace what is there.

A backup is one file, ``meterd-<site>-<UTC time>.db`` (SQLite) or ``.dump`` (pg_dump's custom format),
encrypted with the key in ``backup.key_file`` (daemon/services/backup_crypto.py), and ``<file>.sha256`` in sha256sum's
format, so ``sha256sum -c`` checks it without meterd or the key. Every file is written with mode 0600.
Restoring checks the sum, opens the backup with the key (a changed one is refused), then migrates the
restored store to this version's schema (an old backup comes up to date; one from before encryption
restores as it is).

Neither key file (``backup.key_file``, ``api.secret_key_file``) is in the backup, on purpose: a stolen
backup must open neither the data nor the second-factor secrets. Keep a copy of both apart from the backups.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import URL

from daemon.kernel.errors import MeterdError
from daemon.services.backup_crypto import backup_key, decrypt_file, encrypt_file, is_encrypted
from daemon.storage.engine import create_private, mask, parse_url, sqlite_path, write_private
from daemon.storage.lock import daemon_lock
from daemon.storage.models import Base
from daemon.storage.repository import Store

_CHUNK: Final = 1 << 20


class BackupError(MeterdError):
    """A backup or restore that could not be done; nothing was changed."""


@dataclass(frozen=True, slots=True)
class BackupFile:
    path: Path
    sha256: str
    size: int


async def make_backup(url: str, directory: Path, *, site: str, keep: int, now: datetime, key_file: Path) -> BackupFile:
    """Write a consistent, encrypted copy of the store at ``url`` into ``directory``; keep this site's newest ``keep``.

    Raises:
        BackupError: the directory cannot be written, pg_dump is missing or failed.
        SecretKeyError: the key file cannot be read or made.
    """
    parsed = parse_url(url)
    source = sqlite_path(parsed)
    name = f"meterd-{site}-{now:%Y%m%dT%H%M%SZ}{'.db' if source is not None else '.dump'}"
    key = backup_key(key_file)
    target = await asyncio.to_thread(_prepare, directory, name)
    partial = target.with_name(target.name + ".partial")
    try:
        await asyncio.to_thread(create_private, partial)  # the plain copy is never readable by others either
        if source is not None:
            await asyncio.to_thread(_sqlite_copy, source, partial)
        else:
            await _run(["pg_dump", "--format=custom", "--no-owner", f"--file={partial}", _libpq(parsed)], parsed)
        return await asyncio.to_thread(_seal, partial, target, key, site, keep)
    finally:
        partial.unlink(missing_ok=True)


def _prepare(directory: Path, name: str) -> Path:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        msg = f"cannot create the backup directory {directory}: {err.strerror}"
        raise BackupError(msg) from err
    return directory / name


def _seal(partial: Path, target: Path, key: AESGCM, site: str, keep: int) -> BackupFile:
    """Encrypt the finished copy, give it its name (a crash midway never leaves one), its checksum, and rotate."""
    sealing = target.with_name(target.name + ".sealing")
    encrypt_file(partial, sealing, key)
    sealing.rename(target)
    digest = _sha256(target)
    write_private(target.with_name(target.name + ".sha256"), f"{digest}  {target.name}\n".encode())
    _rotate(target.parent, site, keep)
    return BackupFile(target, digest, target.stat().st_size)


async def restore_backup(url: str, backup: Path, *, site: str, force: bool, key_file: Path) -> None:
    """Restore ``backup`` into the store at ``url``: an empty one, or any with ``force``.

    Raises:
        BackupError: a missing or damaged backup (its SHA-256 differs), a store holding data without
            ``force``, a backup of the other kind of store, pg_restore failing.
        BackupKeyError: it does not open with the key in ``key_file`` (another key's, or changed).
    """
    await asyncio.to_thread(verify, backup)
    if not await asyncio.to_thread(is_encrypted, backup):  # made before backups were encrypted
        await _restore_plain(url, backup, site=site, force=force)
        return
    with tempfile.TemporaryDirectory(prefix="meterd-restore-") as scratch:  # mode 0700
        plain = Path(scratch) / backup.name
        await asyncio.to_thread(decrypt_file, backup, plain, backup_key(key_file))
        await _restore_plain(url, plain, site=site, force=force)


async def _restore_plain(url: str, backup: Path, *, site: str, force: bool) -> None:
    parsed = parse_url(url)
    target = sqlite_path(parsed)
    if (target is None) != (backup.suffix == ".dump"):
        kind = "a PostgreSQL dump" if backup.suffix == ".dump" else "an SQLite backup"
        msg = f"{backup} is {kind}; restore it into a store of the same kind (storage.url or --db)"
        raise BackupError(msg)
    async with Store.open(url, upgrade=False) as store, daemon_lock(store.engine, site):
        # Under the daemon's own lock: a running daemon makes this fail, not the restored data.
        held = await _rows_held(store)
        if held and not force:
            msg = (
                f"the store at {mask(parsed)} is not empty ({held}); restore into an empty store, "
                "or add --force to replace everything in it"
            )
            raise BackupError(msg)
        if target is not None:
            await store.engine.dispose()  # no pooled connection may outlive the pages it saw
            await asyncio.to_thread(_sqlite_copy, backup, target)
        else:
            await _restore_dump(backup, parsed)
    async with Store.open(url, upgrade=True):
        pass  # an older backup comes up to this version's schema


def verify(backup: Path) -> str:
    """The backup's SHA-256, after checking it against the ``.sha256`` beside it.

    Raises:
        BackupError: no such file, no checksum, or a different one.
    """
    sums = backup.with_name(backup.name + ".sha256")
    try:
        expected = sums.read_text().split()[0]
    except (OSError, IndexError) as err:
        msg = f"no checksum for {backup} ({sums} is missing or empty): is it a meterd backup?"
        raise BackupError(msg) from err
    try:
        actual = _sha256(backup)
    except OSError as err:
        msg = f"cannot read {backup}: {err.strerror}"
        raise BackupError(msg) from err
    if actual != expected:
        msg = f"{backup} is damaged: its SHA-256 is {actual}, {sums.name} says {expected}; use another backup"
        raise BackupError(msg)
    return actual


async def _rows_held(store: Store) -> str:
    """What the store already holds, said briefly ('' for nothing): a table with rows, and how many."""

    def _tables(connection: object) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with store.engine.connect() as conn:
        present = await conn.run_sync(_tables)
        for table in Base.metadata.sorted_tables:
            if table.name in present:
                count = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                if count:
                    return f"{count} row(s) in {table.name}"
    return ""


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while a daemon writes (WAL included)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        create_private(target)
        with (
            closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
    except sqlite3.Error as err:
        msg = f"copying {source} to {target} failed: {err}"
        raise BackupError(msg) from err


async def _run(argv: list[str], url: URL) -> None:
    process = await _spawn(argv, url, stdout=asyncio.subprocess.DEVNULL)
    _, stderr = await process.communicate()
    _check(argv[0], process, stderr, url)


async def _restore_dump(backup: Path, url: URL) -> None:
    """The dump's SQL (pg_restore) run by psql into an emptied schema, all of it one transaction.

    Not ``pg_restore --clean``: it cannot drop the constraints a month's partition of
    ``readings`` inherits, and it would leave partitions the dump does not have.
    """
    read, write = os.pipe()
    try:
        dump = await _spawn(["pg_restore", "--no-owner", "--file=-", str(backup)], url, stdout=write)
    finally:
        os.close(write)
    try:
        load = await _spawn(
            [
                "psql",
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                "--command=DROP SCHEMA public CASCADE",
                "--command=CREATE SCHEMA public",
                "--file=-",
                f"--dbname={_libpq(url)}",
            ],
            url,
            stdin=read,
            stdout=asyncio.subprocess.DEVNULL,
        )
    finally:
        os.close(read)
    (_, dump_errors), (_, load_errors) = await asyncio.gather(dump.communicate(), load.communicate())
    _check("pg_restore", dump, dump_errors, url)
    _check("psql", load, load_errors, url)


async def _spawn(argv: list[str], url: URL, **streams: Any) -> asyncio.subprocess.Process:  # noqa: ANN401
    env = os.environ | ({"PGPASSWORD": url.password} if url.password else {})
    try:
        return await asyncio.create_subprocess_exec(*argv, stderr=asyncio.subprocess.PIPE, env=env, **streams)
    except FileNotFoundError as err:
        msg = f"{argv[0]} is not installed; install the PostgreSQL client of the server's version (postgresql-client)"
        raise BackupError(msg) from err


def _check(program: str, process: asyncio.subprocess.Process, stderr: bytes, url: URL) -> None:
    if process.returncode != 0:
        last = (stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        msg = f"{program} failed on {mask(url)}: {last}"
        raise BackupError(msg)


def _libpq(url: URL) -> str:
    """The URL as libpq takes it: no driver name, no password (that goes by PGPASSWORD, not the process list)."""
    return url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _rotate(directory: Path, site: str, keep: int) -> None:
    backups = sorted(p for p in directory.glob(f"meterd-{site}-*") if p.suffix in {".db", ".dump"})
    for old in backups[: max(0, len(backups) - keep)]:
        old.unlink(missing_ok=True)
        old.with_name(old.name + ".sha256").unlink(missing_ok=True)
