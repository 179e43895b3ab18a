"""Backups that restore, on both stores: backup -> a new, empty store -> restore -> the same exports byte for byte;
a store with data is not overwritten without --force, a damaged backup is refused, old backups rotate away;
backups are encrypted (a changed one, or another key, is refused); what meterd writes only its owner reads."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from daemon.services.accounts import accounts_for
from daemon.settings import load
from daemon.storage.repository import Store
from tests.conftest import PG_ADMIN_URL
from tests.integration.test_api import PASSWORD
from tests.integration.test_billing import _ready, cli, daily
from tests.integration.test_billing import config as config  # noqa: PLC0414 - the fixture, by its name


@pytest.fixture(autouse=True)
def backup_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The backup key of these tests' deployment: beside the test's files, not in /var/lib/meterd."""
    path = tmp_path / "keys" / "backup.key"
    monkeypatch.setenv("METERD_BACKUP__KEY_FILE", str(path))
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual login shell's umask, under which a plain open() makes files anyone may read."""
    before = os.umask(0o022)
    yield
    os.umask(before)


@pytest.fixture
def empty_url(store_url: str, tmp_path: Path) -> Iterator[str]:
    """Another store of the same kind, empty: where a backup is restored."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'meterd.db'}"
        return
    name = f"meterd_restore_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _exports(config: Path, capsys: pytest.CaptureFixture[str], invoice_id: int) -> dict[str, str]:
    """What billing staff and ops take out of a store, as the CLI writes it."""
    outputs = {}
    capsys.readouterr()
    for name, argv in {
        "readings": ["readings", "--format", "csv"],
        "devices": ["devices", "--format", "json"],
        "customers": ["customers", "list", "--format", "json"],
        "invoice_ubl": ["invoices", "export", str(invoice_id), "--format", "ubl", "--out", "-"],
        "erp": ["reports", "erp", "--period", "2026-10", "--out", "-"],
        "audit": ["audit", "--format", "json", "--limit", "1000"],
        "users": ["users", "list", "--format", "json"],
    }.items():
        assert cli(config, *argv) == 0, name
        outputs[name] = capsys.readouterr().out
    return outputs


async def test_backup_then_restore_into_an_empty_store_gives_the_same_exports(
    store_url: str, empty_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 50, mono=100, color=20), "KY1")
    assert await asyncio.to_thread(cli, config, "bill", "run", "--period", "2026-10") == 0
    assert await asyncio.to_thread(cli, config, "invoices", "finalize", "1", "--by", "bob") == 0
    async with Store.open(store_url) as store:
        await accounts_for(load(config), store).add_user("alice", "Alice", "admin", PASSWORD, actor="setup")
    before = await asyncio.to_thread(_exports, config, capsys, 1)
    assert "INV-000001" in before["invoice_ubl"]
    assert before["readings"].count("\n") > 100

    backups = tmp_path / "backups"
    assert await asyncio.to_thread(cli, config, "backup", "--to", str(backups)) == 0
    [made] = [p for p in backups.iterdir() if p.suffix in {".db", ".dump"}]
    assert made.name.startswith("meterd-default-")
    assert (backups / f"{made.name}.sha256").read_text().endswith(f"  {made.name}\n")

    # A store that holds data is not overwritten by accident.
    assert await asyncio.to_thread(cli, config, "restore", str(made)) == 1
    assert "is not empty" in capsys.readouterr().err

    restored = tmp_path / "restored.toml"
    restored.write_text(config.read_text().replace(store_url, empty_url))
    assert await asyncio.to_thread(cli, restored, "restore", str(made)) == 0
    after = await asyncio.to_thread(_exports, restored, capsys, 1)
    for name, text in before.items():
        assert after[name] == text, name  # byte for byte
    # The second factor still works after a restore: the secret key is the deployment's, not the backup's.
    async with Store.open(empty_url) as store:
        accounts = accounts_for(load(restored), store)
        assert [u.login for u in await accounts.users()] == ["alice"]


async def test_a_damaged_backup_is_refused_and_old_ones_rotate(
    store_url: str, empty_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 5, mono=100, color=20), "KY1")
    backups = tmp_path / "backups"
    for _ in range(3):
        assert await asyncio.to_thread(cli, config, "backup", "--to", str(backups), "--keep", "2") == 0
        await asyncio.sleep(1.05)  # one name per second
    kept = sorted(p for p in backups.iterdir() if p.suffix in {".db", ".dump"})
    assert len(kept) == 2
    assert len(list(backups.glob("*.sha256"))) == 2
    damaged = kept[-1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    restored = tmp_path / "restored.toml"
    restored.write_text(config.read_text().replace(store_url, empty_url))
    capsys.readouterr()
    assert await asyncio.to_thread(cli, restored, "restore", str(damaged)) == 1
    assert "is damaged: its SHA-256 is" in capsys.readouterr().err
    assert await asyncio.to_thread(cli, restored, "restore", str(kept[0])) == 0


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_backup_is_encrypted_restores_with_its_key_and_a_changed_one_is_refused(  # noqa: PLR0917 - fixtures
    store_url: str,
    empty_url: str,
    config: Path,
    tmp_path: Path,
    backup_key: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 5, mono=100, color=20), "KY1")
    async with Store.open(store_url) as store:
        await accounts_for(load(config), store).add_user("alice", "Alice", "admin", PASSWORD, actor="setup")
    backups = tmp_path / "backups"
    assert await asyncio.to_thread(cli, config, "backup", "--to", str(backups)) == 0
    [made] = [p for p in backups.iterdir() if p.suffix in {".db", ".dump"}]
    sealed = made.read_bytes()
    # Nothing of the store is readable in it: no customer name, no login, no argon2 hash, no SQLite header.
    for clear in (b"ACME", b"alice", b"$argon2id$", b"SQLite format 3", b"PGDMP"):
        assert clear not in sealed, clear
    assert backup_key.is_file()
    assert _mode(backup_key) == 0o600
    restored = tmp_path / "restored.toml"
    restored.write_text(config.read_text().replace(store_url, empty_url))
    # Changed by someone who also wrote a matching checksum: the encryption notices.
    tampered = backups / "tampered" / made.name
    tampered.parent.mkdir()
    data = bytearray(sealed)
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    (tampered.parent / f"{made.name}.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {made.name}\n")
    capsys.readouterr()
    assert await asyncio.to_thread(cli, restored, "restore", str(tampered)) == 1
    assert "does not open with the backup key (backup.key_file)" in capsys.readouterr().err
    # Another deployment's key does not open it either.
    with monkeypatch.context() as elsewhere:
        elsewhere.setenv("METERD_BACKUP__KEY_FILE", str(tmp_path / "another.key"))
        assert await asyncio.to_thread(cli, restored, "restore", str(made)) == 1
    assert "does not open with the backup key" in capsys.readouterr().err
    async with Store.open(empty_url) as store:
        assert [u.login for u in await accounts_for(load(restored), store).users()] == []  # nothing was restored
    assert await asyncio.to_thread(cli, restored, "restore", str(made)) == 0
    async with Store.open(empty_url) as store:
        assert [u.login for u in await accounts_for(load(restored), store).users()] == ["alice"]


async def test_the_store_backups_and_exports_are_private_under_umask_022(
    store_url: str, config: Path, tmp_path: Path, umask_022: None
) -> None:
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 5, mono=100, color=20), "KY1")
    written: list[Path] = []
    if store_url.startswith("sqlite"):
        database = Path(store_url.removeprefix("sqlite:///"))
        async with Store.open(store_url) as store:
            await accounts_for(load(config), store).add_user("bob", "Bob", "viewer", PASSWORD, actor="setup")
            files = [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm")]  # while open
            assert {path: _mode(path) for path in files} == dict.fromkeys(files, 0o600)
        written.append(database)
    backups, exported = tmp_path / "backups", tmp_path / "exported"
    assert await asyncio.to_thread(cli, config, "backup", "--to", str(backups)) == 0
    assert await asyncio.to_thread(cli, config, "customers", "export", str(exported)) == 0
    assert await asyncio.to_thread(cli, config, "bill", "run", "--period", "2026-09") == 0
    erp = tmp_path / "erp.csv"
    assert await asyncio.to_thread(cli, config, "reports", "erp", "--period", "2026-09", "--out", str(erp)) == 0
    written += [*backups.iterdir(), *exported.iterdir(), erp]
    assert len(written) >= 7
    modes = {path.name: oct(_mode(path)) for path in written}
    assert modes == dict.fromkeys(modes, oct(0o600))
