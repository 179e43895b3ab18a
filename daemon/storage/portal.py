"""The portal's rows: customers' change requests (before/after, an optional proof) and the photos sent with readings."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import insert, select, update

from daemon.kernel.errors import MeterdError
from daemon.storage.audit import write_audit
from daemon.storage.models import ChangeRequestRow, CustomerRow, ReadingPhotoRow
from daemon.storage.repository import Store

OPEN: Final = "open"
APPROVED: Final = "approved"
REJECTED: Final = "rejected"
# A change request's audit entries carry this source: the notify job leaves them to the request's own mail.
CHANGE_REQUEST_SOURCE: Final = "change request"


class ChangeRequestNotFoundError(MeterdError):
    """No such change request (or not one of this customer's)."""


class ChangeRequestDecidedError(MeterdError):
    """The change request was approved or rejected already."""


@dataclass(frozen=True, slots=True)
class ChangeRequest:
    id: int
    customer: str
    requested_by: str
    before: dict[str, Any]
    after: dict[str, Any]
    proof_name: str | None
    status: str
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None
    created_at: datetime

    @property
    def changed(self) -> list[str]:
        return [field for field in self.after if self.after[field] != self.before.get(field)]


class PortalStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add_request(
        self,
        customer: str,
        *,
        requested_by: str,
        before: dict[str, Any],
        after: dict[str, Any],
        proof: tuple[str, str, bytes] | None,
        now: datetime,
    ) -> int:
        """``proof``: (file name, content type, bytes)."""

        async def _write() -> int:
            async with self._store.engine.begin() as conn:
                customer_id = (
                    await conn.execute(select(CustomerRow.id).where(CustomerRow.code == customer))
                ).scalar_one()
                result = await conn.execute(
                    insert(ChangeRequestRow).values(
                        customer_id=customer_id,
                        requested_by=requested_by,
                        before=json.dumps(before, ensure_ascii=False, sort_keys=True),
                        after=json.dumps(after, ensure_ascii=False, sort_keys=True),
                        proof_name=proof[0] if proof else None,
                        proof_type=proof[1] if proof else None,
                        proof=proof[2] if proof else None,
                        status=OPEN,
                        created_at=now,
                    )
                )
                request_id = int(result.inserted_primary_key[0])  # type: ignore[index]
                detail = {"fields": sorted(after), "proof": proof[0] if proof else None}
                await write_audit(conn, now, requested_by, "change_request.add", f"customer:{customer}", detail)
                return request_id

        return await self._store.guard(_write(), "save a change request")

    async def requests(
        self, *, status: str | None = None, customers: frozenset[str] | None = None
    ) -> list[ChangeRequest]:
        stmt = _select().order_by(ChangeRequestRow.id.desc())
        if status is not None:
            stmt = stmt.where(ChangeRequestRow.status == status)
        if customers is not None:
            stmt = stmt.where(CustomerRow.code.in_(sorted(customers)))

        async def _query() -> list[ChangeRequest]:
            async with self._store.engine.connect() as conn:
                return [_request(row) for row in await conn.execute(stmt)]

        return await self._store.guard(_query(), "list change requests")

    async def request(self, request_id: int) -> ChangeRequest:
        async def _query() -> Any:  # noqa: ANN401 - a Row
            async with self._store.engine.connect() as conn:
                return (await conn.execute(_select().where(ChangeRequestRow.id == request_id))).first()

        row = await self._store.guard(_query(), "read a change request")
        if row is None:
            raise ChangeRequestNotFoundError(f"no change request {request_id}")
        return _request(row)

    async def proof(self, request_id: int) -> tuple[str, str, bytes] | None:
        async def _query() -> Any:  # noqa: ANN401 - a Row
            async with self._store.engine.connect() as conn:
                stmt = select(ChangeRequestRow.proof_name, ChangeRequestRow.proof_type, ChangeRequestRow.proof)
                return (await conn.execute(stmt.where(ChangeRequestRow.id == request_id))).first()

        row = await self._store.guard(_query(), "read a change request's proof")
        return (row.proof_name, row.proof_type, row.proof) if row is not None and row.proof is not None else None

    async def decide(self, request_id: int, status: str, *, actor: str, reason: str | None, now: datetime) -> None:
        """Mark an open request decided (once: a second decision raises ChangeRequestDecidedError)."""

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                still_open = (ChangeRequestRow.id == request_id) & (ChangeRequestRow.status == OPEN)
                decided = update(ChangeRequestRow).where(still_open)
                values = {"status": status, "decided_by": actor, "decided_at": now, "reason": reason}
                if (await conn.execute(decided.values(values))).rowcount != 1:
                    msg = f"change request {request_id} is decided already; reload the queue"
                    raise ChangeRequestDecidedError(msg)
                detail = {"status": status, "reason": reason}
                await write_audit(conn, now, actor, f"change_request.{status}", f"change_request:{request_id}", detail)

        await self._store.guard(_write(), "decide a change request")

    async def add_photo(self, reading_id: str, content_type: str, photo: bytes, *, by: str, now: datetime) -> None:
        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                await conn.execute(
                    insert(ReadingPhotoRow).values(
                        reading_id=reading_id, content_type=content_type, photo=photo, submitted_by=by, created_at=now
                    )
                )

        await self._store.guard(_write(), "save a reading's photo")


def _select() -> Any:  # noqa: ANN401 - a Select
    return select(
        ChangeRequestRow.id,
        CustomerRow.code,
        ChangeRequestRow.requested_by,
        ChangeRequestRow.before,
        ChangeRequestRow.after,
        ChangeRequestRow.proof_name,
        ChangeRequestRow.status,
        ChangeRequestRow.decided_by,
        ChangeRequestRow.decided_at,
        ChangeRequestRow.reason,
        ChangeRequestRow.created_at,
    ).join(CustomerRow, CustomerRow.id == ChangeRequestRow.customer_id)


def _request(row: Any) -> ChangeRequest:  # noqa: ANN401 - a Row of _select
    return ChangeRequest(
        row.id,
        row.code,
        row.requested_by,
        json.loads(row.before),
        json.loads(row.after),
        row.proof_name,
        row.status,
        row.decided_by,
        row.decided_at,
        row.reason,
        row.created_at,
    )
