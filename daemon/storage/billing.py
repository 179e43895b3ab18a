"""Customers, contracts, assignments and invoices in the store; readings read columnar for billing.

Every change is one transaction and one audit-log entry. Finalising takes the next number
of its series inside the finalising transaction (``UPDATE … RETURNING`` on the series row:
PostgreSQL's row lock and SQLite's writer lock both serialise it), so numbers are gapless
and never reused even when two people finalise at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, TypeAlias

import pandas as pd
from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.contracts import Contract, parse_contract
from billing.customers import Customer, parse_customer
from billing.exchange import DeviceCard
from billing.invoicing import (
    Assignment,
    BillingError,
    Book,
    Draft,
    InvoiceLine,
    unsupplied_meters,
)
from billing.lifecycle import (
    DRAFT,
    FINALIZED,
    INVOICE,
    Invoice,
    Number,
    Series,
    check_month_order,
    finalise,
    replaces_stored,
    void,
)
from billing.periods import Period
from daemon.storage.anomalies import EXCLUDING_RESOLUTIONS, RESET, RESOLVED, RESTART_VALUE
from daemon.storage.audit import changes, write_audit, write_audits
from daemon.storage.columnar import read_readings
from daemon.storage.models import (
    AnomalyReading,
    AnomalyRow,
    AssignmentRow,
    CommentRow,
    ContractRow,
    CustomerRow,
    Device,
    InvoiceLineRow,
    InvoiceRow,
    InvoiceSeries,
    ReadingRow,
    SiteRow,
)
from daemon.storage.repository import DeviceNotFoundError, Store

InvoiceRecord: TypeAlias = Invoice  # what the store reads back: the life cycle's Invoice


class InvoiceNotFoundError(BillingError):
    """No invoice with that id."""


@dataclass(frozen=True, slots=True)
class SavedDraft:
    invoice_id: int | None  # None: the month is already finalised for this customer
    draft: Draft
    replaced: bool


class CustomerNotFoundError(BillingError):
    """No customer with that code."""


@dataclass(frozen=True, slots=True)
class Comment:
    id: int
    customer: str
    at: datetime
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    added: list[str]  # customer codes
    changed: list[str]
    unchanged: int
    assignments_added: int
    assignments_unchanged: int
    devices_saved: int = 0


class BillingStore:
    """The billing side of a Store (same engine, same error translation)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- customers, contracts, assignments -------------------------------------------------

    async def save_customers(self, customers: Sequence[Customer], *, actor: str, now: datetime) -> None:
        """Create or update customers (by code) in one transaction; parents may come in the same batch."""

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                stored = (await _book(conn)).customers
                await _write_customers(conn, customers, before=stored, actor=actor, now=now)

        await self._store.guard(_write(), "save customers")

    async def save_contract(self, contract: Contract, *, actor: str, now: datetime) -> list[str]:
        """Create or replace a contract; returns warnings for meters it bills that devices it covers never reported."""

        async def _write() -> list[str]:
            async with self._store.engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(CustomerRow.id, CustomerRow.currency).where(CustomerRow.code == contract.customer)
                    )
                ).first()
                if row is None:
                    msg = f"contract {contract.id}: customer: no customer {contract.customer!r}; add the customer first"
                    raise BillingError(msg)
                if row.currency != contract.currency:
                    msg = (
                        f"contract {contract.id}: versions.0.currency: {contract.currency} but customer "
                        f"{contract.customer} bills in {row.currency}"
                    )
                    raise BillingError(msg)
                terms = contract.model_dump_json()
                found = (
                    await conn.execute(select(ContractRow.id, ContractRow.terms).where(ContractRow.code == contract.id))
                ).first()
                existing = found.id if found is not None else None
                if existing is None:
                    await conn.execute(
                        insert(ContractRow).values(
                            code=contract.id, customer_id=row.id, terms=terms, created_at=now, updated_at=now
                        )
                    )
                else:
                    await conn.execute(
                        update(ContractRow)
                        .where(ContractRow.id == existing)
                        .values(customer_id=row.id, terms=terms, updated_at=now)
                    )
                before = json.loads(found.terms) if found is not None else None
                await write_audit(
                    conn, now, actor, "contract.save", f"contract:{contract.id}", changes(before, json.loads(terms))
                )
                book = await _book(conn)
                held = [a for a in book.assignments_of(contract.customer) if a.end is None or a.end > now.date()]
                reported = await _reported_meters(conn, [a.device for a in held])
                return [
                    warning
                    for held_by in held
                    for warning in unsupplied_meters(
                        book, held_by, reported.get(held_by.device, ()), contract=contract.id
                    )
                ]

        return await self._store.guard(_write(), "save contract")

    async def assign(
        self, device: str, customer: str, *, start: date, end: date | None = None, actor: str, now: datetime
    ) -> list[str]:
        """Give ``device`` to ``customer`` from ``start``; an open assignment that began earlier ends there.

        Returns:
            Warnings: meters the customer's contracts bill for the device that it has never reported.

        Raises:
            BillingError: unknown device or customer, or the new days overlap an assignment that
                cannot be shortened (history is never rewritten).
        """
        assignment = Assignment(device, customer, start, end)

        async def _write() -> list[str]:
            async with self._store.engine.begin() as conn:
                await _write_assignment(conn, assignment, actor=actor, now=now)
                reported = (await _reported_meters(conn, [device])).get(device, set())
                warnings = unsupplied_meters(await _book(conn), assignment, reported)
                if warnings:
                    await write_audit(
                        conn, now, actor, "device.assign_warning", f"device:{device}", {"warnings": warnings}
                    )
                return warnings

        return await self._store.guard(_write(), "assign device")

    async def import_records(
        self,
        customers: Sequence[Customer],
        assignments: Sequence[Assignment],
        labels: Sequence[str],
        *,
        actor: str,
        now: datetime,
        dry_run: bool,
        devices: Sequence[DeviceCard] = (),
    ) -> ImportOutcome:
        """Apply cards and assignments all or nothing, in one transaction; with ``dry_run`` roll it back.

        Cards equal to the stored ones and assignments already stored are left alone (an export
        imported again changes nothing). ``labels`` names each assignment for an error ("file: row N").

        Raises:
            BillingError: the first record the store refuses, named; nothing is written.
        """

        async def _apply() -> ImportOutcome:
            async with self._store.engine.connect() as conn:
                transaction = await conn.begin()
                try:
                    devices_saved = await _write_devices(conn, devices, actor=actor, now=now)
                    book = await _book(conn)
                    fresh = [c for c in customers if c.code not in book.customers]
                    changed = [c for c in customers if c.code in book.customers and book.customers[c.code] != c]
                    await _write_customers(conn, [*fresh, *changed], before=book.customers, actor=actor, now=now)
                    stored = set(book.assignments)
                    added = 0
                    for assignment, label in zip(assignments, labels, strict=True):
                        if assignment in stored:
                            continue
                        try:
                            await _write_assignment(conn, assignment, actor=actor, now=now)
                        except BillingError as err:
                            raise BillingError(f"{label}: {err}") from err
                        added += 1
                    unchanged = len(customers) - len(fresh) - len(changed)
                    outcome = ImportOutcome(
                        [c.code for c in fresh],
                        [c.code for c in changed],
                        unchanged,
                        added,
                        len(assignments) - added,
                        devices_saved,
                    )
                except BaseException:
                    await transaction.rollback()
                    raise
                if dry_run:
                    await transaction.rollback()
                else:
                    await transaction.commit()
                return outcome

        return await self._store.guard(_apply(), "import customers and assignments")

    async def label_device(self, key: str, labels: dict[str, str | None], *, actor: str, now: datetime) -> bool:
        """Set a device's name, location and cost centre (``labels`` by column), audited; False when unchanged.

        Raises:
            DeviceNotFoundError: no device ``key``.
        """

        async def _write() -> bool:
            async with self._store.engine.begin() as conn:
                row = (await conn.execute(select(Device.id, *_LABEL_COLUMNS).where(Device.key == key))).first()
                if row is None:
                    msg = f"no device {key!r}; the devices list shows the keys (serial numbers) the store knows"
                    raise DeviceNotFoundError(msg)
                before = {column.key: getattr(row, column.key) for column in _LABEL_COLUMNS}
                after = {column.key: labels.get(column.key) for column in _LABEL_COLUMNS}
                if before == after:
                    return False
                await conn.execute(update(Device).where(Device.id == row.id).values(after))
                await write_audit(conn, now, actor, "device.save", f"device:{key}", changes(before, after))
                return True

        return await self._store.guard(_write(), "save a device's name, location and cost centre")

    async def unassign(self, device: str, *, end: date, actor: str, now: datetime) -> None:
        """End the device's open assignment on ``end`` (its first day with no customer)."""

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                device_id = await _lock_device(conn, device)
                open_row = (
                    await conn.execute(
                        select(AssignmentRow.id, AssignmentRow.valid_from).where(
                            AssignmentRow.device_id == device_id, AssignmentRow.valid_to.is_(None)
                        )
                    )
                ).first()
                if open_row is None or open_row.valid_from >= end:
                    msg = f"device {device} has no open assignment that began before {end}"
                    raise BillingError(msg)
                await conn.execute(update(AssignmentRow).where(AssignmentRow.id == open_row.id).values(valid_to=end))
                await write_audit(conn, now, actor, "device.unassign", f"device:{device}", {"to": end.isoformat()})

        await self._store.guard(_write(), "end assignment")

    async def book(self) -> Book:
        async def _query() -> Book:
            async with self._store.engine.connect() as conn:
                return await _book(conn)

        return await self._store.guard(_query(), "read customers and contracts")

    async def add_comment(self, code: str, text: str, *, author: str, now: datetime) -> Comment:
        """A note on the customer's timeline (append-only)."""

        async def _write() -> Comment:
            async with self._store.engine.begin() as conn:
                customer_id = await _customer_id(conn, code)
                result = await conn.execute(
                    insert(CommentRow).values(customer_id=customer_id, at=now, author=author, text=text)
                )
                await write_audit(conn, now, author, "customer.comment", f"customer:{code}", {"text": text})
                return Comment(int(result.inserted_primary_key[0]), code, now, author, text)  # type: ignore[index]

        return await self._store.guard(_write(), "add a comment")

    async def comments(self, code: str) -> list[Comment]:
        """The customer's timeline, oldest first."""

        async def _query() -> list[Comment]:
            async with self._store.engine.connect() as conn:
                customer_id = await _customer_id(conn, code)
                columns = (CommentRow.id, CommentRow.at, CommentRow.author, CommentRow.text)
                stmt = select(*columns).where(CommentRow.customer_id == customer_id).order_by(CommentRow.id)
                rows = await conn.execute(stmt)
                return [Comment(r.id, code, r.at, r.author, r.text) for r in rows]

        return await self._store.guard(_query(), "read comments")

    # -- readings ---------------------------------------------------------------------------

    async def reads_frame(self, since: datetime, until: datetime, meters: Iterable[str]) -> pd.DataFrame:
        """Readings of ``meters`` taken in [since, until), columnar (Arrow via ADBC), ``device`` as device id.

        Loading is what costs here (not the arithmetic): rows arrive as Arrow columns, never as
        Python objects, and the device key is left as its integer id.
        """
        table = await read_readings(self._store.engine.url, since, until, sorted(set(meters)))
        frame: pd.DataFrame = table.to_pandas()
        return frame

    async def device_ids(self) -> dict[str, int]:
        async def _query() -> dict[str, int]:
            async with self._store.engine.connect() as conn:
                return {key: ident for key, ident in await conn.execute(select(Device.key, Device.id))}  # noqa: C416

        return await self._store.guard(_query(), "read devices")

    async def held_readings(self) -> dict[int, str]:
        """Readings usage must leave out, reading row -> reading id: the one held-readings rule.

        Held: readings of an anomaly still open that holds them, and readings a resolution
        left out for good (replaced by a manual reading).
        """
        stmt = (
            select(ReadingRow.id, ReadingRow.reading_id)
            .join(AnomalyReading, AnomalyReading.reading_id == ReadingRow.reading_id)
            .join(AnomalyRow, AnomalyRow.id == AnomalyReading.anomaly_id)
            .where(
                ((AnomalyRow.status != RESOLVED) & AnomalyRow.holds)
                | AnomalyRow.resolution.in_(sorted(EXCLUDING_RESOLUTIONS))
            )
        )

        async def _query() -> dict[int, str]:
            async with self._store.engine.connect() as conn:
                return {int(row_id): reading_id for row_id, reading_id in await conn.execute(stmt)}

        return await self._store.guard(_query(), "read held readings")

    async def reported_meters(self, devices: Iterable[str]) -> dict[str, set[str]]:
        """The meters each of ``devices`` has ever reported (a device without readings is left out)."""

        async def _query() -> dict[str, set[str]]:
            async with self._store.engine.connect() as conn:
                return await _reported_meters(conn, devices)

        return await self._store.guard(_query(), "read the meters devices report")

    async def restarts(self) -> dict[int, int]:
        """Confirmed resets: the reading row where the counter went back -> the value it restarted from.

        The row is the later reading of the reset's evidence (the detector names the pair), of
        the anomaly's meter; without a value from the reviewer the counter restarted from 0.
        """
        stmt = select(AnomalyRow.evidence, AnomalyRow.meter).where(AnomalyRow.resolution == RESET)

        async def _query() -> dict[int, int]:
            async with self._store.engine.connect() as conn:
                found: dict[tuple[str, str], int] = {}
                for evidence_text, meter in await conn.execute(stmt):
                    evidence = json.loads(evidence_text)
                    readings = evidence.get("readings") or []
                    if readings:
                        found[(str(readings[-1]), meter)] = int(evidence.get(RESTART_VALUE) or 0)
                rows: dict[int, int] = {}
                for chunk in _chunks(sorted({reading for reading, _ in found})):
                    lookup = select(ReadingRow.id, ReadingRow.reading_id, ReadingRow.meter).where(
                        ReadingRow.reading_id.in_(chunk)
                    )
                    for row_id, reading_id, meter in await conn.execute(lookup):
                        if (reading_id, meter) in found:
                            rows[int(row_id)] = found[(reading_id, meter)]
                return rows

        return await self._store.guard(_query(), "read confirmed resets")

    # -- invoices ---------------------------------------------------------------------------

    async def billed_lines(
        self, customers: Sequence[str], since: date
    ) -> dict[str, tuple[list[InvoiceLine], set[Period]]]:
        """Per customer: lines of its finalised, not voided invoices for months from ``since``, and those months."""

        async def _query() -> dict[str, tuple[list[InvoiceLine], set[Period]]]:
            out: dict[str, tuple[list[InvoiceLine], set[Period]]] = {code: ([], set()) for code in customers}
            async with self._store.engine.connect() as conn:
                invoices = (
                    await conn.execute(
                        select(InvoiceRow.id, InvoiceRow.period_start, InvoiceRow.period_end, CustomerRow.code)
                        .join(CustomerRow, CustomerRow.id == InvoiceRow.customer_id)
                        .where(
                            InvoiceRow.kind == INVOICE, InvoiceRow.status == FINALIZED, InvoiceRow.period_end > since
                        )
                    )
                ).all()
                wanted = [row for row in invoices if row.code in out]
                lines = await _lines(conn, [row.id for row in wanted])
            for row in wanted:
                out[row.code][0].extend(lines[row.id])
                out[row.code][1].add(Period(row.period_start, row.period_end))
            return out

        return await self._store.guard(_query(), "read billed lines")

    async def finalised_customers(self, month: Period) -> set[str]:
        """Customers whose invoice for ``month`` is finalised (it never changes; late reads go to the next)."""
        stmt = (
            select(CustomerRow.code)
            .join(InvoiceRow, InvoiceRow.customer_id == CustomerRow.id)
            .where(InvoiceRow.kind == INVOICE, InvoiceRow.status == FINALIZED, InvoiceRow.period_start == month.start)
        )

        async def _query() -> set[str]:
            async with self._store.engine.connect() as conn:
                return set((await conn.execute(stmt)).scalars())

        return await self._store.guard(_query(), "read finalised invoices")

    async def save_drafts(self, drafts: Sequence[Draft], *, actor: str, now: datetime) -> list[SavedDraft]:
        """Write every draft in one transaction: an existing draft of that customer and month is replaced.

        Raises:
            BillingError: the customer has a draft for an earlier month (bill months in order).
        """

        async def _write() -> list[SavedDraft]:
            saved = []
            async with self._store.engine.begin() as conn:
                ids = await _customer_ids(conn)
                saved.extend([await _save_draft(conn, draft, ids[draft.payer], now) for draft in drafts])
                written = [s.invoice_id for s in saved if s.invoice_id is not None]
                if written:
                    await write_audit(
                        conn, now, actor, "bill.run", f"period:{drafts[0].month.label}", {"invoices": written}
                    )
            return saved

        return await self._store.guard(_write(), "save draft invoices")

    async def invoices(
        self, *, customer: str | None = None, period: Period | None = None, status: str | None = None
    ) -> list[InvoiceRecord]:
        filters = []
        if customer is not None:
            filters.append(CustomerRow.code == customer)
        if period is not None:
            filters.append(InvoiceRow.period_start == period.start)
        if status is not None:
            filters.append(InvoiceRow.status == status)

        async def _query() -> list[InvoiceRecord]:
            async with self._store.engine.connect() as conn:
                return await _invoice_records(conn, filters, with_lines=False)

        return await self._store.guard(_query(), "read invoices")

    async def invoice(self, invoice_id: int) -> InvoiceRecord:
        async def _query() -> list[InvoiceRecord]:
            async with self._store.engine.connect() as conn:
                return await _invoice_records(conn, [InvoiceRow.id == invoice_id], with_lines=True)

        found = await self._store.guard(_query(), "read invoice")
        if not found:
            msg = f"no invoice {invoice_id}; `meterd invoices list` shows them"
            raise InvoiceNotFoundError(msg)
        return found[0]

    async def finalize(
        self,
        invoice_id: int,
        *,
        series: str,
        digits: int,
        snapshot: dict[str, Any],
        actor: str,
        now: datetime,
        issue_date: date,
        override: str | None = None,
    ) -> InvoiceRecord:
        """Number and freeze a draft; refused while it has blocking items, unless ``override`` says why.

        Blocking items: :func:`billing.invoicing.blocking_items`. The reason is kept on the
        invoice and in the audit log with the items it overrode.

        Raises:
            InvoiceStateError: not a draft, blocking items without an override, or totals that do
                not add up from the lines (nothing is numbered then).
        """

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                _, invoice = await _locked_invoice(conn, invoice_id)
                taken = await _next_number(conn, series)  # locks the series: its latest issue date cannot race
                last = (
                    await conn.execute(select(func.max(InvoiceRow.issue_date)).where(InvoiceRow.series == series))
                ).scalar_one()
                done = finalise(
                    invoice,
                    Series(series, digits, taken, last),
                    issue_date=issue_date,
                    snapshot=snapshot,
                    actor=actor,
                    override=override,
                )
                final = done.invoice
                await conn.execute(
                    update(InvoiceRow)
                    .where(InvoiceRow.id == invoice_id)
                    .values(
                        _numbered(final, done.number, now)
                        | {"snapshot": json.dumps(final.snapshot, default=str), "hold_override": final.hold_override}
                    )
                )
                await write_audit(
                    conn,
                    now,
                    actor,
                    "invoice.finalize",
                    f"invoice:{invoice_id}",
                    {
                        "number": final.number,
                        "total": str(final.total),
                        "override": final.hold_override,
                        "overridden": done.overridden,
                    },
                )

        await self._ensure_series(series)
        await self._store.guard(_write(), "finalise invoice")
        return await self.invoice(invoice_id)

    async def _ensure_series(self, series: str) -> None:
        """Create a numbering series at 1, once; concurrent creators do not collide."""

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                insert = self._store.dialect.insert(InvoiceSeries.__table__)
                await conn.execute(insert.values(series=series, next_number=1).on_conflict_do_nothing())

        await self._store.guard(_write(), "create numbering series")

    async def void(
        self, invoice_id: int, *, series: str, digits: int, reason: str, actor: str, now: datetime, issue_date: date
    ) -> InvoiceRecord:
        """Void a finalised invoice: it keeps its number; a credit note with the negated lines is issued.

        Returns:
            The credit note.
        """

        async def _write() -> int:
            async with self._store.engine.begin() as conn:
                row, invoice = await _locked_invoice(conn, invoice_id)
                taken = await _next_number(conn, series)
                done = void(invoice, Series(series, digits, taken), issue_date=issue_date, reason=reason, actor=actor)
                credit = done.credit_note
                result = await conn.execute(
                    insert(InvoiceRow).values(
                        _numbered(credit, done.number, now)
                        | {
                            "kind": credit.kind,
                            "customer_id": row.customer_id,
                            "period_start": credit.period.start,
                            "period_end": credit.period.end,
                            "live_key": None,
                            "currency": credit.currency,
                            "net": credit.net,
                            "tax": credit.tax,
                            "total": credit.total,
                            "snapshot": row.snapshot,  # the voided invoice's, as frozen
                            "credited_invoice_id": credit.credited_invoice_id,
                            "created_at": now,
                        }
                    )
                )
                credit_id = int(result.inserted_primary_key[0])  # type: ignore[index]
                await _insert_lines(conn, credit_id, credit.lines)
                await conn.execute(
                    update(InvoiceRow)
                    .where(InvoiceRow.id == invoice_id)
                    .values(
                        status=done.invoice.status,
                        live_key=None,
                        voided_at=now,
                        voided_by=actor,
                        void_reason=done.invoice.void_reason,
                        updated_at=now,
                    )
                )
                await write_audit(
                    conn,
                    now,
                    actor,
                    "invoice.void",
                    f"invoice:{invoice_id}",
                    {"reason": reason, "credit_note": credit.number},
                )
                return credit_id

        await self._ensure_series(series)
        credit_id = await self._store.guard(_write(), "void invoice")
        return await self.invoice(credit_id)


# -- helpers ----------------------------------------------------------------------------------


async def _write_customers(
    conn: AsyncConnection, customers: Sequence[Customer], *, before: dict[str, Customer], actor: str, now: datetime
) -> None:
    """Insert or update the cards, their sites and their audit entries in a few statements, however many cards.

    ``before``: the stored cards (for the audit's before/after). Per-card statements made a
    50,000-row import take minutes; each step here is one executemany.
    """
    ids = await _customer_ids(conn)
    ordered = _parents_first(customers, ids)
    batch = {customer.code for customer in customers}
    for customer in ordered:
        if customer.parent is not None and customer.parent not in ids and customer.parent not in batch:
            msg = f"customer {customer.code}: parent: no customer {customer.parent!r}; add it first"
            raise BillingError(msg)
    fresh = [customer for customer in ordered if customer.code not in ids]
    if fresh:
        rows = [_customer_values(c) | {"parent_id": None, "updated_at": now, "created_at": now} for c in fresh]
        result = await conn.execute(insert(CustomerRow).returning(CustomerRow.code, CustomerRow.id), rows)
        ids |= {code: int(ident) for code, ident in result}
    columns = [*_customer_values(ordered[0]), "parent_id", "updated_at"] if ordered else []
    if ordered:
        await conn.execute(
            update(CustomerRow)
            .where(CustomerRow.id == bindparam("row_id"))
            .values({column: bindparam(f"new_{column}") for column in columns}),
            [
                {"row_id": ids[c.code]}
                | {
                    f"new_{k}": v
                    for k, v in (
                        _customer_values(c) | {"parent_id": ids[c.parent] if c.parent else None, "updated_at": now}
                    ).items()
                }
                for c in ordered
            ],
        )
    mine = [ids[c.code] for c in ordered]
    names = [site for c in ordered for site in c.sites]
    for chunk in _chunks(mine):
        await conn.execute(delete(SiteRow).where(SiteRow.customer_id.in_(chunk)))
    for chunk in _chunks(names):
        await conn.execute(delete(SiteRow).where(SiteRow.name.in_(chunk)))  # a site moves to its new customer
    if names:
        await conn.execute(
            insert(SiteRow), [{"name": site, "customer_id": ids[c.code]} for c in ordered for site in c.sites]
        )
    await write_audits(
        conn,
        now,
        actor,
        [
            (
                "customer.save",
                f"customer:{c.code}",
                changes(
                    before[c.code].model_dump(mode="json") if c.code in before else None, c.model_dump(mode="json")
                ),
            )
            for c in ordered
        ],
    )
    await _refuse_parent_loops(conn)


def _chunks(values: Sequence[Any], size: int = 5000) -> list[Sequence[Any]]:
    """Values in slices an IN list can take (SQLite allows 32,766 bound values in one statement)."""
    return [values[start : start + size] for start in range(0, len(values), size)]


# The office's own words for a device (devices.csv, the console's device page), never the poller's.
_LABEL_COLUMNS: Final = (Device.name, Device.location, Device.cost_centre)


async def _write_devices(conn: AsyncConnection, devices: Sequence[DeviceCard], *, actor: str, now: datetime) -> int:
    """Register devices (or correct what the office knows of them); unchanged ones are left alone. Returns how many."""
    if not devices:
        return 0
    columns = (Device.key, Device.vendor, Device.model, Device.address, Device.site, *_LABEL_COLUMNS)
    stored = {row.key: row for row in await conn.execute(select(*columns))}
    saved = 0
    for device in devices:
        values = {"vendor": device.vendor, "model": device.model, "address": device.address, "site": device.site}
        values |= {c.key: getattr(device, c.key) for c in _LABEL_COLUMNS if c.key not in device.kept}
        before = stored.get(device.key)
        if before is None:
            await conn.execute(insert(Device).values(values | {"key": device.key, "first_seen": now, "last_seen": now}))
        elif {k: getattr(before, k) for k in values} != values:
            await conn.execute(update(Device).where(Device.key == device.key).values(values))
        else:
            continue
        old = {k: getattr(before, k) for k in values} if before is not None else None
        await write_audit(conn, now, actor, "device.save", f"device:{device.key}", changes(old, values))
        saved += 1
    return saved


async def _write_assignment(conn: AsyncConnection, assignment: Assignment, *, actor: str, now: datetime) -> None:
    device, customer, start, end = assignment.device, assignment.customer, assignment.start, assignment.end
    if end is not None and end <= start:
        msg = f"assignment of {device}: to ({end}) must come after from ({start})"
        raise BillingError(msg)
    device_id = await _lock_device(conn, device)
    customer_id = (await conn.execute(select(CustomerRow.id).where(CustomerRow.code == customer))).scalar()
    if customer_id is None:
        msg = f"assignment of {device}: customer: no customer {customer!r}"
        raise BillingError(msg)
    rows = (
        await conn.execute(
            select(AssignmentRow.id, AssignmentRow.valid_from, AssignmentRow.valid_to, CustomerRow.code)
            .join(CustomerRow, CustomerRow.id == AssignmentRow.customer_id)
            .where(AssignmentRow.device_id == device_id)
        )
    ).all()
    ended = []
    for row in rows:
        row_end = row.valid_to or date.max
        if row.valid_to is None and row.valid_from < start:
            await conn.execute(update(AssignmentRow).where(AssignmentRow.id == row.id).values(valid_to=start))
            ended.append(
                {
                    "customer": row.code,
                    "from": row.valid_from.isoformat(),
                    "to": {"before": None, "after": start.isoformat()},
                }
            )
            continue
        if row.valid_from < (end or date.max) and start < row_end:
            clash = max(start, row.valid_from)
            held = f"{row.valid_from}..{row.valid_to or 'open'}"
            msg = f"device {device} is already assigned to {row.code} on {clash} ({held}); one customer a day"
            raise BillingError(msg)
    await conn.execute(
        insert(AssignmentRow).values(
            device_id=device_id, customer_id=customer_id, valid_from=start, valid_to=end, created_at=now
        )
    )
    detail = {"customer": customer, "from": start.isoformat(), "to": end.isoformat() if end else None, "ended": ended}
    await write_audit(conn, now, actor, "device.assign", f"device:{device}", detail)


async def _reported_meters(conn: AsyncConnection, devices: Iterable[str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for chunk in _chunks(sorted(set(devices))):
        stmt = (
            select(Device.key, ReadingRow.meter)
            .distinct()
            .join(ReadingRow, ReadingRow.device_id == Device.id)
            .where(Device.key.in_(chunk))
        )
        for key, meter in await conn.execute(stmt):
            found.setdefault(key, set()).add(meter)
    return found


async def _customer_id(conn: AsyncConnection, code: str) -> int:
    found = (await conn.execute(select(CustomerRow.id).where(CustomerRow.code == code))).scalar_one_or_none()
    if found is None:
        msg = f"no customer {code!r}; `meterd customers list` shows them"
        raise CustomerNotFoundError(msg)
    return int(found)


async def _customer_ids(conn: AsyncConnection) -> dict[str, int]:
    return {code: ident for code, ident in await conn.execute(select(CustomerRow.code, CustomerRow.id))}  # noqa: C416


def _parents_first(customers: Sequence[Customer], known: dict[str, int]) -> list[Customer]:
    pending = {c.code: c for c in customers}
    ordered: list[Customer] = []
    placed = set(known)
    while pending:
        ready = [c for c in pending.values() if c.parent is None or c.parent in placed or c.parent not in pending]
        if not ready:
            msg = f"customer {min(pending)}: parent: the parents of {', '.join(sorted(pending))} form a loop"
            raise BillingError(msg)
        for customer in ready:
            ordered.append(customer)
            placed.add(customer.code)
            del pending[customer.code]
    return ordered


async def _refuse_parent_loops(conn: AsyncConnection) -> None:
    rows = await conn.execute(select(CustomerRow.id, CustomerRow.parent_id))
    parents: dict[int, int | None] = {ident: parent for ident, parent in rows}  # noqa: C416 - a Result is not a mapping
    for start, first_parent in parents.items():
        seen, current = {start}, first_parent
        while current is not None:
            if current in seen:
                msg = "customer parents would form a loop; a head office cannot be its own branch's branch"
                raise BillingError(msg)
            seen.add(current)
            current = parents.get(current)


def _customer_values(customer: Customer) -> dict[str, Any]:
    return {
        "code": customer.code,
        "legal_name": customer.legal_name,
        "trade_name": customer.trade_name,
        "country": customer.country,
        "tax_id": customer.tax_id,
        "tax_scheme": customer.tax_scheme,
        "electronic_address": customer.electronic_address,
        "address": customer.address.model_dump_json(),
        "contacts": json.dumps([c.model_dump(mode="json") for c in customer.contacts]),
        "payment_method": customer.payment_method,
        "payment_terms_days": customer.payment_terms_days,
        "currency": customer.currency,
        "language": customer.language,
        "notes": customer.notes,
        "tags": json.dumps(customer.tags),
        "custom": json.dumps(customer.custom, sort_keys=True),
    }


async def _lock_device(conn: AsyncConnection, device: str) -> int:
    """The device's id, its row locked on PostgreSQL so two assignments of one device serialise."""
    stmt = _for_update(select(Device.id).where(Device.key == device), conn)
    device_id = (await conn.execute(stmt)).scalar()
    if device_id is None:
        msg = f"no device {device!r}; `meterd devices` lists the known ones (a device appears with its first reading)"
        raise BillingError(msg)
    return int(device_id)


def _for_update(stmt: Any, conn: AsyncConnection) -> Any:  # noqa: ANN401 - a Select
    # SQLite has no row locks: its single writer serialises the transaction instead.
    return stmt.with_for_update() if conn.dialect.name == "postgresql" else stmt


async def _book(conn: AsyncConnection) -> Book:
    rows = (await conn.execute(select(CustomerRow))).all()
    codes = {row.id: row.code for row in rows}
    sites: dict[int, list[str]] = {}
    for name, customer_id in await conn.execute(select(SiteRow.name, SiteRow.customer_id).order_by(SiteRow.name)):
        sites.setdefault(customer_id, []).append(name)
    customers = {}
    for row in rows:
        data = {
            "code": row.code,
            "legal_name": row.legal_name,
            "trade_name": row.trade_name,
            "country": row.country,
            "tax_id": row.tax_id,
            "tax_scheme": row.tax_scheme or "vat",
            "electronic_address": row.electronic_address,
            "address": json.loads(row.address),
            "contacts": json.loads(row.contacts),
            "payment_method": row.payment_method,
            "payment_terms_days": row.payment_terms_days,
            "currency": row.currency,
            "language": row.language,
            "notes": row.notes,
            "parent": codes.get(row.parent_id) if row.parent_id else None,
            "sites": sites.get(row.id, []),
            "tags": json.loads(row.tags),
            "custom": json.loads(row.custom),
        }
        customers[row.code] = parse_customer(data)
    contracts = [
        parse_contract(json.loads(terms))
        for (terms,) in await conn.execute(select(ContractRow.terms).order_by(ContractRow.code))
    ]
    assignments = [
        Assignment(device=key, customer=codes[customer_id], start=start, end=end)
        for key, customer_id, start, end in await conn.execute(
            select(Device.key, AssignmentRow.customer_id, AssignmentRow.valid_from, AssignmentRow.valid_to)
            .join(Device, Device.id == AssignmentRow.device_id)
            .order_by(Device.key, AssignmentRow.valid_from)
        )
    ]
    return Book(customers, contracts, assignments)


async def _save_draft(conn: AsyncConnection, draft: Draft, customer_id: int, now: datetime) -> SavedDraft:
    earlier = (
        await conn.execute(
            select(InvoiceRow.period_start).where(
                InvoiceRow.customer_id == customer_id,
                InvoiceRow.status == DRAFT,
                InvoiceRow.period_start < draft.month.start,
            )
        )
    ).scalar()
    check_month_order(draft.payer, earlier, draft.month)
    live_key = f"{customer_id}:{draft.month.start.isoformat()}"
    row = (await conn.execute(select(InvoiceRow.id, InvoiceRow.status).where(InvoiceRow.live_key == live_key))).first()
    if not replaces_stored(row.status if row is not None else None):
        return SavedDraft(None, draft, replaced=False)
    sums = draft.totals
    values = {"currency": draft.currency, "net": sums.net, "tax": sums.tax, "total": sums.total, "updated_at": now}
    if row is None:
        result = await conn.execute(
            insert(InvoiceRow).values(
                kind=INVOICE,
                status=DRAFT,
                customer_id=customer_id,
                period_start=draft.month.start,
                period_end=draft.month.end,
                live_key=live_key,
                created_at=now,
                **values,
            )
        )
        invoice_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    else:
        invoice_id = int(row.id)
        await conn.execute(update(InvoiceRow).where(InvoiceRow.id == invoice_id).values(values))
        await conn.execute(delete(InvoiceLineRow).where(InvoiceLineRow.invoice_id == invoice_id))
    await _insert_lines(conn, invoice_id, draft.lines)
    return SavedDraft(invoice_id, draft, replaced=row is not None)


async def _insert_lines(conn: AsyncConnection, invoice_id: int, lines: Sequence[InvoiceLine]) -> None:
    if not lines:
        return
    await conn.execute(
        insert(InvoiceLineRow),
        [
            {
                "invoice_id": invoice_id,
                "position": position,
                "kind": line.kind,
                "adjustment": line.adjustment,
                "description": line.description[:512],
                "customer_code": line.customer,
                "contract_code": line.contract,
                "device_key": line.device,
                "meter": line.meter,
                "pool": line.pool,
                "service_start": line.service.start,
                "service_end": line.service.end,
                "quantity": line.quantity,
                "amount": line.amount,
                "tax_rate": line.tax_rate,
                "estimated": line.estimated,
                "held": line.held,
                "provenance": json.dumps(line.provenance, default=str, sort_keys=True),
            }
            for position, line in enumerate(lines, 1)
        ],
    )


async def _lines(conn: AsyncConnection, invoice_ids: Sequence[int]) -> dict[int, list[InvoiceLine]]:
    out: dict[int, list[InvoiceLine]] = {ident: [] for ident in invoice_ids}
    if not invoice_ids:
        return out
    for start in range(0, len(invoice_ids), 500):
        chunk = list(invoice_ids[start : start + 500])
        rows = await conn.execute(
            select(InvoiceLineRow)
            .where(InvoiceLineRow.invoice_id.in_(chunk))
            .order_by(InvoiceLineRow.invoice_id, InvoiceLineRow.position)
        )
        for row in rows:
            out[row.invoice_id].append(
                InvoiceLine(
                    kind=row.kind,
                    adjustment=row.adjustment,
                    description=row.description,
                    customer=row.customer_code,
                    contract=row.contract_code,
                    device=row.device_key,
                    meter=row.meter,
                    pool=row.pool,
                    service=Period(row.service_start, row.service_end),
                    quantity=row.quantity,
                    amount=row.amount,
                    tax_rate=row.tax_rate,
                    estimated=row.estimated,
                    held=row.held,
                    provenance=json.loads(row.provenance),
                )
            )
    return out


async def _invoice_records(conn: AsyncConnection, filters: list[Any], *, with_lines: bool) -> list[InvoiceRecord]:
    stmt = (
        select(InvoiceRow, CustomerRow.code)
        .join(CustomerRow, CustomerRow.id == InvoiceRow.customer_id)
        .where(*filters)
        .order_by(InvoiceRow.period_start, CustomerRow.code, InvoiceRow.id)
    )
    rows = (await conn.execute(stmt)).all()
    lines = await _lines(conn, [row.id for row in rows]) if with_lines else {}
    return [
        InvoiceRecord(
            id=inv.id,
            kind=inv.kind,
            status=inv.status,
            customer=inv.code,
            period=Period(inv.period_start, inv.period_end),
            currency=inv.currency,
            net=inv.net,
            tax=inv.tax,
            total=inv.total,
            number=inv.number_text,
            issue_date=inv.issue_date,
            due_date=inv.due_date,
            snapshot=json.loads(inv.snapshot) if inv.snapshot else None,
            credited_invoice_id=inv.credited_invoice_id,
            finalized_by=inv.finalized_by,
            hold_override=inv.hold_override,
            void_reason=inv.void_reason,
            lines=tuple(lines.get(inv.id, [])),
        )
        for inv in rows
    ]


def _numbered(document: Invoice, number: Number, now: datetime) -> dict[str, Any]:
    """The columns a finalised document (invoice or credit note) sets with its number."""
    return {
        "status": document.status,
        "series": number.series,
        "number": number.value,
        "number_text": document.number,
        "issue_date": document.issue_date,
        "due_date": document.due_date,
        "finalized_at": now,
        "finalized_by": document.finalized_by,
        "updated_at": now,
    }


async def _locked_invoice(conn: AsyncConnection, invoice_id: int) -> tuple[Any, Invoice]:
    """The invoice's row, locked on PostgreSQL (two people acting on it serialise), and the invoice with its lines."""
    row = (await conn.execute(_for_update(select(InvoiceRow).where(InvoiceRow.id == invoice_id), conn))).first()
    if row is None:
        msg = f"no invoice {invoice_id}; `meterd invoices list` shows them"
        raise InvoiceNotFoundError(msg)
    (invoice,) = await _invoice_records(conn, [InvoiceRow.id == invoice_id], with_lines=True)
    return row, invoice


async def _next_number(conn: AsyncConnection, series: str) -> int:
    """Take the series' next number in this transaction (a rollback gives it back: no gaps)."""
    taken = (
        await conn.execute(
            update(InvoiceSeries)
            .where(InvoiceSeries.series == series)
            .values(next_number=InvoiceSeries.next_number + 1)
            .returning(InvoiceSeries.next_number)
        )
    ).scalar()
    if taken is None:
        msg = f"numbering series {series!r} does not exist"
        raise BillingError(msg)
    return int(taken) - 1
