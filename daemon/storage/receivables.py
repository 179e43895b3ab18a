"""Receivables in the store: payments, instalment plans, standings, reminder notices; every change audited."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from billing.invoicing import BillingError
from billing.lifecycle import FINALIZED, INVOICE
from billing.receivables import ZERO, Instalment, Standing, next_reminder_level, reminder_text, split, standing
from daemon.storage.audit import write_audit
from daemon.storage.billing import InvoiceNotFoundError
from daemon.storage.models import CustomerRow, InstalmentRow, InvoiceRow, PaymentRow, ReminderRow
from daemon.storage.repository import Store

QUEUED = "queued"
SENT = "sent"
CANCELLED = "cancelled"  # the invoice was voided or paid before the reminder went out


@dataclass(frozen=True, slots=True)
class Reminder:
    id: int
    invoice_id: int
    number: str
    customer: str
    level: int
    overdue: Decimal
    status: str
    created_at: datetime
    sent_at: datetime | None
    text: str


class ReceivablesStore:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def record_payment(
        self,
        invoice_id: int,
        amount: Decimal,
        *,
        received_on: date,
        method: str,
        reference: str,
        actor: str,
        now: datetime,
    ) -> Standing:
        """Record money received; refused for anything but a finalised invoice, or beyond what is open.

        Raises:
            InvoiceNotFoundError; BillingError: a draft, voided invoice or credit note, a non-positive amount,
                more than is open.
        """
        if amount <= 0:
            raise BillingError(f"payment of invoice {invoice_id}: amount: must be positive, not {amount}")

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                invoice = await _payable(conn, invoice_id)
                paid = await _paid(conn, [invoice_id])
                open_amount = invoice.total - paid.get(invoice_id, ZERO)
                if amount > open_amount:
                    msg = (
                        f"payment of invoice {invoice.number_text}: amount: {amount} is more than the "
                        f"{open_amount} {invoice.currency} still open"
                    )
                    raise BillingError(msg)
                await conn.execute(
                    insert(PaymentRow).values(
                        invoice_id=invoice_id,
                        amount=amount,
                        received_on=received_on,
                        method=method,
                        reference=reference,
                        recorded_by=actor,
                        recorded_at=now,
                    )
                )
                await write_audit(
                    conn,
                    now,
                    actor,
                    "payment.record",
                    f"invoice:{invoice_id}",
                    {
                        "amount": str(amount),
                        "received_on": received_on,
                        "method": method,
                        "reference": reference,
                        "open_before": str(open_amount),
                    },
                )
                if amount == open_amount:
                    await _cancel_queued(conn, invoice_id, reason="paid in full", actor=actor, now=now)

        await self._store.guard(_write(), "record payment")
        return await self.account(invoice_id, as_of=received_on)

    async def set_plan(self, invoice_id: int, plan: Sequence[Instalment], *, actor: str, now: datetime) -> None:
        """Replace the invoice's instalment plan; the parts must add up to what is still open.

        Raises:
            InvoiceNotFoundError; BillingError: not payable, or the parts do not add up.
        """

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                invoice = await _payable(conn, invoice_id)
                open_amount = invoice.total - (await _paid(conn, [invoice_id])).get(invoice_id, ZERO)
                planned = sum((part.amount for part in plan), ZERO)
                if planned != open_amount:
                    msg = (
                        f"instalments of invoice {invoice.number_text}: they add up to {planned}, but "
                        f"{open_amount} {invoice.currency} is open"
                    )
                    raise BillingError(msg)
                await conn.execute(delete(InstalmentRow).where(InstalmentRow.invoice_id == invoice_id))
                await conn.execute(
                    insert(InstalmentRow),
                    [
                        {"invoice_id": invoice_id, "seq": n, "due": part.due, "amount": part.amount}
                        for n, part in enumerate(plan, start=1)
                    ],
                )
                await write_audit(
                    conn,
                    now,
                    actor,
                    "invoice.instalments",
                    f"invoice:{invoice_id}",
                    {"parts": [{"due": p.due, "amount": str(p.amount)} for p in plan]},
                )

        await self._store.guard(_write(), "set instalment plan")

    async def split_open(
        self, invoice_id: int, *, parts: int, first: date, every_days: int, actor: str, now: datetime
    ) -> tuple[list[Instalment], str]:
        """What is open on the invoice, split into ``parts`` instalments from ``first``, stored as its plan.

        Returns the plan and its currency.
        """
        account = await self.account(invoice_id, as_of=first)
        plan = split(account.open, parts, first, every_days, account.currency)
        await self.set_plan(invoice_id, plan, actor=actor, now=now)
        return plan, account.currency

    async def account(self, invoice_id: int, *, as_of: date) -> Standing:
        """One finalised invoice's standing.

        Raises:
            InvoiceNotFoundError; BillingError: a draft, a voided invoice or a credit note (nothing to pay).
        """

        async def _check() -> None:
            async with self._store.engine.connect() as conn:
                await _payable(conn, invoice_id)

        await self._store.guard(_check(), "read invoice")
        [found] = await self.standings(as_of=as_of, invoice_id=invoice_id)
        return found

    async def standings(self, *, as_of: date, invoice_id: int | None = None) -> list[Standing]:
        """Every finalised invoice with money open (or the one asked for), with what of it is late."""
        stmt = (
            select(
                InvoiceRow.id,
                InvoiceRow.number_text,
                CustomerRow.code,
                InvoiceRow.currency,
                InvoiceRow.total,
                InvoiceRow.due_date,
            )
            .join(CustomerRow, CustomerRow.id == InvoiceRow.customer_id)
            .where(InvoiceRow.status == FINALIZED, InvoiceRow.kind == INVOICE)
            .order_by(InvoiceRow.due_date, InvoiceRow.id)
        )
        if invoice_id is not None:
            stmt = stmt.where(InvoiceRow.id == invoice_id)

        async def _query() -> list[Standing]:
            async with self._store.engine.connect() as conn:
                invoices = (await conn.execute(stmt)).all()
                ids = [row.id for row in invoices]
                paid = await _paid(conn, ids)
                plans = await _plans(conn, ids)
            found = [
                standing(
                    invoice_id=r.id,
                    number=r.number_text,
                    customer=r.code,
                    currency=r.currency,
                    total=r.total,
                    due_date=r.due_date,
                    paid=paid.get(r.id, ZERO),
                    plan=plans.get(r.id, []),
                    as_of=as_of,
                )
                for r in invoices
            ]
            return [s for s in found if s.open > 0 or invoice_id is not None]

        return await self._store.guard(_query(), "read receivables")

    async def plans(self, invoice_ids: Sequence[int]) -> dict[int, list[Instalment]]:
        """The instalment plans of these invoices (those that have one)."""

        async def _query() -> dict[int, list[Instalment]]:
            async with self._store.engine.connect() as conn:
                return dict(await _plans(conn, invoice_ids))

        return await self._store.guard(_query(), "read instalment plans")

    async def queue_reminders(
        self, *, as_of: date, levels: list[int], seller: dict[str, Any], now: datetime, actor: str = "system"
    ) -> list[int]:
        """The next reminder for every overdue invoice that is due one (see ``next_reminder_level``).

        One notice at a time: while an invoice's last reminder is still queued (not sent), nothing more is
        queued for it, as the next level's text would speak of a reminder the customer never had.
        """
        overdue = [s for s in await self.standings(as_of=as_of) if s.overdue > 0]
        if not overdue:
            return []

        async def _write() -> list[int]:
            created = []
            async with self._store.engine.begin() as conn:
                history: dict[int, list[Any]] = defaultdict(list)
                for row in await conn.execute(
                    select(ReminderRow.invoice_id, ReminderRow.status, ReminderRow.sent_at)
                    .where(ReminderRow.invoice_id.in_([s.invoice_id for s in overdue]))
                    .order_by(ReminderRow.level)
                ):
                    history[row.invoice_id].append(row)
                plans = await _plans(conn, [s.invoice_id for s in overdue])
                for found in overdue:
                    if any(r.status == QUEUED for r in history[found.invoice_id]):
                        continue
                    sent = [r.sent_at.date() for r in history[found.invoice_id] if r.status == SENT]
                    level = next_reminder_level(found.days_overdue, levels, sent, as_of)
                    if not level:
                        continue
                    invoice = (
                        await conn.execute(
                            select(InvoiceRow.issue_date, InvoiceRow.due_date, InvoiceRow.snapshot).where(
                                InvoiceRow.id == found.invoice_id
                            )
                        )
                    ).one()
                    customer = json.loads(invoice.snapshot or "{}").get("customer", {})
                    contact = next(
                        (c["name"] for c in customer.get("contacts", []) if c.get("billing")), "Sir or Madam"
                    )
                    text = reminder_text(
                        found,
                        level,
                        as_of=as_of,
                        issue_date=invoice.issue_date,
                        due_date=invoice.due_date,
                        contact=contact,
                        seller=seller["name"],
                        iban=seller.get("iban"),
                        plan=plans.get(found.invoice_id, []),
                        reminded=sent,
                        final=level == len(levels),
                        language=customer.get("language", "en"),
                    )
                    result = await conn.execute(
                        insert(ReminderRow).values(
                            invoice_id=found.invoice_id,
                            level=level,
                            overdue=found.overdue,
                            text=text,
                            status=QUEUED,
                            created_at=now,
                        )
                    )
                    created.append(int(result.inserted_primary_key[0]))  # type: ignore[index]
                    await write_audit(
                        conn,
                        now,
                        actor,
                        "reminder.queue",
                        f"invoice:{found.invoice_id}",
                        {"level": level, "overdue": str(found.overdue)},
                    )
            return created

        return await self._store.guard(_write(), "queue reminders")

    async def cancel_reminders(self, invoice_id: int, *, reason: str, actor: str, now: datetime) -> int:
        """Cancel the invoice's queued reminders (it was voided or paid); returns how many."""

        async def _write() -> int:
            async with self._store.engine.begin() as conn:
                return await _cancel_queued(conn, invoice_id, reason=reason, actor=actor, now=now)

        return await self._store.guard(_write(), "cancel reminders")

    async def reminders(self, *, status: str | None = None) -> list[Reminder]:
        stmt = (
            select(
                ReminderRow.id,
                ReminderRow.invoice_id,
                InvoiceRow.number_text,
                CustomerRow.code,
                ReminderRow.level,
                ReminderRow.overdue,
                ReminderRow.status,
                ReminderRow.created_at,
                ReminderRow.sent_at,
                ReminderRow.text,
            )
            .join(InvoiceRow, InvoiceRow.id == ReminderRow.invoice_id)
            .join(CustomerRow, CustomerRow.id == InvoiceRow.customer_id)
            .order_by(ReminderRow.id)
        )
        if status:
            stmt = stmt.where(ReminderRow.status == status)

        async def _query() -> list[Reminder]:
            async with self._store.engine.connect() as conn:
                return [
                    Reminder(
                        r.id,
                        r.invoice_id,
                        r.number_text or "",
                        r.code,
                        r.level,
                        r.overdue,
                        r.status,
                        r.created_at,
                        r.sent_at,
                        r.text,
                    )
                    for r in await conn.execute(stmt)
                ]

        return await self._store.guard(_query(), "list reminders")

    async def mark_sent(self, reminder_id: int, *, actor: str, now: datetime, sent_at: datetime | None = None) -> None:
        """``sent_at``: when it went out, if not ``now`` (a letter posted yesterday); the next level counts from it."""

        async def _write() -> None:
            async with self._store.engine.begin() as conn:
                queued = (ReminderRow.id == reminder_id) & (ReminderRow.status == QUEUED)
                result = await conn.execute(
                    update(ReminderRow).where(queued).values(status=SENT, sent_at=sent_at or now)
                )
                if result.rowcount != 1:
                    raise BillingError(f"no queued reminder {reminder_id}; `meterd receivables reminders` shows them")
                await write_audit(conn, now, actor, "reminder.sent", f"reminder:{reminder_id}", {})

        await self._store.guard(_write(), "mark reminder sent")


async def _payable(conn: AsyncConnection, invoice_id: int) -> Any:  # noqa: ANN401 - a Row of invoices
    columns = (InvoiceRow.status, InvoiceRow.kind, InvoiceRow.total, InvoiceRow.currency, InvoiceRow.number_text)
    invoice = (await conn.execute(select(*columns).where(InvoiceRow.id == invoice_id))).first()
    if invoice is None:
        raise InvoiceNotFoundError(f"no invoice {invoice_id}; `meterd invoices list` shows them")
    if invoice.status != FINALIZED or invoice.kind != INVOICE:
        raise BillingError(
            f"invoice {invoice_id} is a {invoice.status} {invoice.kind}: only finalised invoices are paid"
        )
    return invoice


async def _plans(conn: AsyncConnection, invoice_ids: Sequence[int]) -> dict[int, list[Instalment]]:
    plans: dict[int, list[Instalment]] = defaultdict(list)
    for row in await conn.execute(
        select(InstalmentRow.invoice_id, InstalmentRow.due, InstalmentRow.amount)
        .where(InstalmentRow.invoice_id.in_(list(invoice_ids)))
        .order_by(InstalmentRow.seq)
    ):
        plans[row.invoice_id].append(Instalment(row.due, row.amount))
    return plans


async def _cancel_queued(conn: AsyncConnection, invoice_id: int, *, reason: str, actor: str, now: datetime) -> int:
    """Queued reminders of an invoice nothing is owed on any more must not go out: cancelled, audited."""
    queued = (ReminderRow.invoice_id == invoice_id) & (ReminderRow.status == QUEUED)
    ids = list((await conn.execute(select(ReminderRow.id).where(queued))).scalars())
    if ids:
        await conn.execute(update(ReminderRow).where(queued).values(status=CANCELLED))
        await write_audit(
            conn, now, actor, "reminder.cancel", f"invoice:{invoice_id}", {"reminders": ids, "reason": reason}
        )
    return len(ids)


async def _paid(conn: AsyncConnection, invoice_ids: Sequence[int]) -> dict[int, Decimal]:
    """Payments per invoice, summed in Decimal (SQLite has no exact SUM over text)."""
    totals: dict[int, Decimal] = defaultdict(Decimal)
    if invoice_ids:
        rows = await conn.execute(
            select(PaymentRow.invoice_id, PaymentRow.amount).where(PaymentRow.invoice_id.in_(list(invoice_ids)))
        )
        for invoice_id, amount in rows:
            totals[invoice_id] += amount
    return totals
