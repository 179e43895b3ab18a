"""Real SNMP peers: snmpsim serving the shared recordings on a free loopback port."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import psycopg
import pytest

from collectors.snmp.client import SnmpTarget
from daemon.demo import fleet_dir
from daemon.demo.simulator import SimulatorError, SnmpSimulator
from tests.conftest import PG_ADMIN_URL, free_port

REPO = Path(__file__).resolve().parents[2]
WALKS = REPO.parent / "shared" / "walks"
CRAFTED = REPO / "tests" / "fixtures" / "snmp"
T = TypeVar("T")


@dataclass(frozen=True)
class Simulator:
    port: int
    expected: dict[str, Any]  # ../shared/walks/expected.json (librenms/)
    printmaster: dict[str, Any]  # ../shared/walks/printmaster/expected.json

    def target(self, community: str, **kwargs: Any) -> SnmpTarget:
        return SnmpTarget(host="127.0.0.1", port=self.port, communities=(community,), **kwargs)


@pytest.fixture(scope="session")
def snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """snmpsim serving the shared walks, the demo fleet and the crafted recordings; the community picks the file."""
    data_dirs = [WALKS / "librenms", WALKS / "printmaster", fleet_dir()]
    for data_dir in data_dirs:
        if not data_dir.is_dir():
            pytest.fail(f"{data_dir} is missing: the tests need ../shared beside the checkout")
    log = tmp_path_factory.mktemp("snmpsim") / "snmpsim.log"
    simulator = SnmpSimulator([*data_dirs, CRAFTED], free_port(), log)
    simulator.start()
    try:
        expected = json.loads((WALKS / "expected.json").read_text())
        try:
            asyncio.run(simulator.wait_ready(next(iter(expected["files"].values()))["community"]))
        except SimulatorError as err:
            pytest.fail(str(err))
        printmaster = json.loads((WALKS / "printmaster" / "expected.json").read_text())
        yield Simulator(port=simulator.port, expected=expected, printmaster=printmaster)
    finally:
        simulator.stop()


@dataclass
class StoreTemplates:
    """Stores seeded once per worker and copied into each test's store: an SQLite file copied, a PostgreSQL
    database made again from a template database. A copy holds the rows a fresh seeding would write.

    For setup that is slow to repeat (argon2id hashes) and that the tests only build on.
    """

    root: Path
    built: dict[tuple[str, str], tuple[str, Path, Any]] = field(default_factory=dict)

    def copy(self, name: str, seed: Callable[[str, Path], Awaitable[T]], store_url: str, key_file: Path) -> T:
        """Fill the new, empty store at ``store_url`` (and ``key_file``, the key its secrets are sealed with) with
        what ``seed(url, key_file)`` writes; returns what the seeding returned."""
        kind = "postgres" if store_url.startswith("postgresql") else "sqlite"
        if (name, kind) not in self.built:
            directory = self.root / f"{name}-{kind}"
            directory.mkdir()
            if kind == "sqlite":
                source = str(directory / "meterd.db")
                url = f"sqlite:///{source}"
            else:
                source = f"meterd_template_{uuid.uuid4().hex[:12]}"
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{source}"')
                url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{source}"
            # A plain function (fixtures that call it run before the test's loop): seeding has a loop of its own.
            key = directory / "secret.key"
            self.built[name, kind] = (source, key, asyncio.run(seed(url, key)))
        source, key, seeded = self.built[name, kind]
        if key.exists():  # made by the first secret sealed: seeding without a second factor makes none
            shutil.copy2(key, key_file)
        if kind == "sqlite":
            target = Path(store_url.removeprefix("sqlite:///"))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        else:  # the test's database is new and empty: made again as a copy of the template
            name_in_url = store_url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE "{name_in_url}" WITH (FORCE)')
                admin.execute(f'CREATE DATABASE "{name_in_url}" TEMPLATE "{source}"')
        return cast("T", seeded)

    def drop(self) -> None:
        for (_, kind), (source, _, _) in self.built.items():
            if kind == "postgres":
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{source}" WITH (FORCE)')


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreTemplates]:
    templates = StoreTemplates(tmp_path_factory.mktemp("store-templates"))
    yield templates
    templates.drop()


@pytest.fixture
def wide_issue_date_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stories dated autumn 2026 issue invoices on fixed dates; the issue-date window counts from the real today."""
    monkeypatch.setenv("METERD_BILLING__ISSUE_DATE_WINDOW_DAYS", "3650")
