"""The audit log: every change by a person, append-only, with where it came from.

Every writer goes through :func:`write_audit`, so "from where" is filled in one place:
the CLI is ``cli`` (the default), the daemon's jobs ``daemon``, and the API sets
:data:`audit_source` to the client's address for the request it serves.
:func:`enforce_audit`, installed on every engine the store opens, refuses to commit a
transaction that changed an audited table without writing an audit entry: no code path
can forget it, whoever writes it next.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Connection, event, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from daemon.kernel.errors import StorageError
from daemon.storage.models import AuditEntry

if TYPE_CHECKING:  # the store opens its engine with enforce_audit: a runtime import would be circular
    from daemon.storage.repository import Store

audit_source: ContextVar[str] = ContextVar("audit_source", default="cli")
# The records people change: customers and their sites, who holds which device, contracts, invoices, users,
# what was paid and agreed. (Readings, anomalies found and sessions are the machine's own bookkeeping.)
AUDITED: Final = frozenset(
    {"customers", "sites", "device_assignments", "contracts", "invoices", "users", "payments", "instalments"}
)
_WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)"?', re.IGNORECASE)
_CHANGED: Final = "meterd_audited_tables_changed"
_AUDITED: Final = "meterd_audit_written"


class AuditMissingError(StorageError):
    """A transaction changed an audited table without an audit entry; it was not committed."""


def enforce_audit(engine: AsyncEngine) -> None:
    """Refuse, at commit, any transaction that changed an audited table and wrote no audit entry."""

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _watch(conn: Connection, _cursor: object, statement: str, *_: object) -> None:
        written = _WRITE.match(statement)
        if written is None:
            return
        table = written[1].lower()
        if table == AuditEntry.__tablename__:
            conn.info[_AUDITED] = True
        elif table in AUDITED:
            conn.info.setdefault(_CHANGED, set()).add(table)

    @event.listens_for(engine.sync_engine, "commit")
    def _check(conn: Connection) -> None:
        changed, audited = conn.info.pop(_CHANGED, set()), conn.info.pop(_AUDITED, False)
        if changed and not audited:
            msg = (
                f"refused to commit a change to {', '.join(sorted(changed))} with no audit entry; "
                "write it through the store's methods, which record who changed what"
            )
            raise AuditMissingError(msg)

    @event.listens_for(engine.sync_engine, "rollback")
    def _forget(conn: Connection) -> None:
        conn.info.pop(_CHANGED, None)
        conn.info.pop(_AUDITED, None)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: Any
    source: str | None


async def write_audit(  # noqa: PLR0917 - one audit entry: every field is needed
    conn: AsyncConnection, at: datetime, actor: str, action: str, target: str, detail: object
) -> None:
    """One entry, in the caller's transaction: the change and its record commit together or not at all."""
    await write_audits(conn, at, actor, [(action, target, detail)])


async def write_audits(
    conn: AsyncConnection, at: datetime, actor: str, entries: Sequence[tuple[str, str, object]]
) -> None:
    """Many entries (action, target, detail) of one change, in one statement."""
    if entries:
        source = audit_source.get()
        await conn.execute(
            insert(AuditEntry),
            [
                {
                    "at": at,
                    "actor": actor,
                    "action": action,
                    "target": target,
                    "detail": json.dumps(detail, default=str),
                    "source": source,
                }
                for action, target, detail in entries
            ],
        )


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, Any]:
    """The audit detail of a change: the fields that differ, before and after (all of them for a new record)."""
    if before is None:
        return {"before": None, "after": after}
    differ = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
    return {"before": {key: before.get(key) for key in differ}, "after": {key: after.get(key) for key in differ}}


async def find_audit(
    store: Store,
    *,
    target: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[AuditRecord]:
    """Entries newest first; ``target`` matches a prefix (``customer:`` for every customer)."""
    stmt = select(AuditEntry.__table__).order_by(AuditEntry.id.desc()).limit(limit).offset(offset)
    if target:
        stmt = stmt.where(AuditEntry.target.startswith(target, autoescape=True))
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if since:
        stmt = stmt.where(AuditEntry.at >= since)

    async def _query() -> list[AuditRecord]:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [AuditRecord(r.id, r.at, r.actor, r.action, r.target, json.loads(r.detail), r.source) for r in rows]

    return await store.guard(_query(), "read the audit log")
