"""Schema migrations: Alembic driven from code, so `meterd db upgrade` and start-up share one path.

Alembic (with Mako and Pygments, ~7 MB resident and ~0.1 s of CPU) is imported only when the
schema must change or a revision must be read the way Alembic reads it: a daemon starting on a
store already at the head finds that out with :func:`at_head`, by reading the version table and
the revision files' own ``revision``/``down_revision`` lines (issue 24, an agent's footprint).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
VERSION_TABLE: Final = "alembic_version"  # Alembic's default; env.py does not rename it
_REVISION: Final = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION: Final = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.MULTILINE)
_QUOTED: Final = re.compile(r"['\"]([^'\"]+)['\"]")


def alembic_config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - Alembic only where the schema is read or changed

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory  # noqa: PLC0415 - see the module's docstring

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # only if the package was shipped without its migrations
        msg = f"no migrations found in {MIGRATIONS_DIR}"
        raise RuntimeError(msg)
    return head


def script_head() -> str | None:
    """The head revision read from the revision files' text, without Alembic; None unless exactly one.

    A test holds it equal to :func:`head_revision` (Alembic's own answer).
    """
    revisions: set[str] = set()
    replaced: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        if revision is None or down is None:
            return None  # a file this reader does not understand: let Alembic decide
        revisions.add(revision.group(1))
        replaced.update(_QUOTED.findall(down.group(1)))
    heads = revisions - replaced
    return heads.pop() if len(heads) == 1 else None


async def at_head(engine: AsyncEngine) -> bool:
    """Whether the store's schema is at the revision files' head (False when unsure: Alembic then decides)."""

    def _stored(connection: Connection) -> list[str]:
        if not inspect(connection).has_table(VERSION_TABLE):
            return []
        return list(connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars())  # noqa: S608

    head = script_head()
    if head is None:
        return False
    async with engine.connect() as conn:
        stored = await conn.run_sync(_stored)
    return stored == [head]


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415 - see the module's docstring

    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` in one transaction (PostgreSQL; SQLite per statement)."""
    from alembic import command  # noqa: PLC0415 - see the module's docstring

    def _upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
