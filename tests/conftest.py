"""Shared fixtures: real stores (SQLite file, PostgreSQL database), config files, free ports."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import structlog
from prometheus_client import CollectorRegistry

from daemon.services.metrics import Metrics

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook; absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (./dev test): each test goes to the worker that is free, except that a module with a
    module-scoped fixture stays on one worker (tests/xdist_schedule.py)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.xdist_schedule import SharedFixtureScheduling  # noqa: PLC0415 - xdist only where xdist runs

    return SharedFixtureScheduling(config, log)


@pytest.fixture(autouse=True)
def _no_ambient_meterd_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's METERD_* variables must not leak into what a test configures."""
    for name in [n for n in os.environ if n.startswith("METERD_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _structlog_restored() -> Iterator[None]:
    """A test that configures logging (a daemon does at start) must not filter what a later one captures.

    With the suite spread over worker processes, which test ran before in the same process varies: a level
    filter left behind by one made `capture_logs` in another see nothing.
    """
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def metrics() -> Metrics:
    """A fresh registry per test, so counters start at zero."""
    return Metrics(CollectorRegistry())


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards."""
    name = f"meterd_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as err:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({err}); run .ci/run or start it")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs on both backends: the same code behind a URL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'meterd.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def _write(text: str, name: str = "meterd.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
