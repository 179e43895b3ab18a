"""Telling a customer when their billing data changes: notices made from the audit log, sent, retried.

The audit log is the queue's source: every saved change to a card is there already, in
the same transaction as the change, so no write path has to remember to notify. A job
turns new ``customer.save`` entries that changed billing fields of an existing card into
notices to the card's billing contact. By e-mail they go into the mail outbox (in the customer's
language; the mail job sends, retries and marks them like any mail). By webhook they wait in their
own table; a failure is retried ``notify.attempts`` times, further apart each time, then marked failed.
A change made by approving a portal change request is left out: the request mails its own confirmation.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from sqlalchemy import select, update

from billing.documents.i18n import Words
from billing.documents.mail import notice_mail
from daemon.services.mail.outbox import queue as queue_mail
from daemon.services.mail.transport import MailError
from daemon.services.webhook import post_json
from daemon.settings import Settings
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.models import AuditEntry, NotificationRow
from daemon.storage.portal import CHANGE_REQUEST_SOURCE
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)

WATERMARK: Final = "notify.audit_until"
QUEUED: Final = "queued"
SENT: Final = "sent"
FAILED: Final = "failed"
# What a customer's bookkeeping depends on: who they are to the tax office, where invoices go, how they pay.
BILLING_FIELDS: Final = frozenset(
    {
        "legal_name",
        "trade_name",
        "tax_id",
        "tax_scheme",
        "electronic_address",
        "address",
        "contacts",
        "payment_method",
        "payment_terms_days",
        "currency",
        "language",
        "parent",
    }
)
_TIMEOUT_S: Final = 15.0  # the webhook's


@dataclass(frozen=True, slots=True)
class Notice:
    id: int
    customer: str
    recipient: str
    subject: str
    body: str
    status: str
    attempts: int
    last_error: str | None


async def notify_customers(store: Store, settings: Settings, *, now: datetime) -> tuple[int, int]:
    """Queue notices for changes since the last run, then send those due; returns (queued, sent)."""
    queued = await queue_changes(store, settings, now=now)
    return queued, await deliver(store, settings, now=now)


async def queue_changes(store: Store, settings: Settings, *, now: datetime) -> int:
    state = AnomalyStore(store)  # the store's small job-state table
    after = int(await state.get_state(WATERMARK) or 0)

    async def _entries() -> list[Any]:
        async with store.engine.connect() as conn:
            saved = (AuditEntry.id > after) & (AuditEntry.action == "customer.save")
            stmt = (
                select(AuditEntry.id, AuditEntry.target, AuditEntry.detail, AuditEntry.source)
                .where(saved)
                .order_by(AuditEntry.id)
            )
            return list((await conn.execute(stmt)).all())

    entries = await store.guard(_entries(), "read the audit log")
    if not entries:
        return 0
    cards = (await BillingStore(store).book()).customers
    rows = []
    mailed = 0
    for entry in entries:
        detail = json.loads(entry.detail)
        code = entry.target.removeprefix("customer:")
        changed = sorted(set(detail.get("after") or {}) & BILLING_FIELDS)
        card = cards.get(code)
        if detail.get("before") is None or not changed or card is None or card.billing_contact.email is None:
            continue  # a new card, a change to nothing billing depends on, or nobody to tell
        if (entry.source or "").startswith(CHANGE_REQUEST_SOURCE):
            continue  # approved from the portal: the request's own mail confirms it
        if not settings.notify.webhook_url:
            words = Words(card.language)
            seller_name = settings.billing.seller.name
            message = notice_mail(
                language=card.language,
                contact=card.billing_contact.name,
                email=card.billing_contact.email,
                subject=words("mail_change_subject", seller=seller_name),
                paragraphs=[
                    words("mail_change_body", seller=seller_name, customer=f"{card.legal_name} ({code})"),
                    words("mail_not_you", email=settings.billing.seller.email),
                ],
                seller=settings.billing.seller.model_dump(),
                changes=[
                    (words.field(field), _show(detail["before"].get(field)), _show(detail["after"].get(field)))
                    for field in changed
                ],
            )
            if await queue_mail(store, settings, message, key=f"notice:{entry.id}", kind="notice", now=now):
                mailed += 1
            continue
        lines = [
            f"  {field}: {_show(detail['before'].get(field))} -> {_show(detail['after'].get(field))}"
            for field in changed
        ]
        seller = settings.billing.seller.name
        reply_to = settings.billing.seller.email
        body = (
            f"Dear {card.billing_contact.name},\n\nthe billing details {seller} keeps for "
            f"{card.legal_name} ({code}) were changed on {now:%Y-%m-%d}:\n\n"
            + "\n".join(lines)
            + f"\n\nIf you did not ask for this, please reply to {reply_to}.\n\n{seller}\n"
        )
        rows.append(
            {
                "audit_id": entry.id,
                "customer": code,
                "recipient": card.billing_contact.email,
                "subject": f"{seller}: your billing details were changed",
                "body": body,
                "status": QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )

    async def _queue() -> None:
        async with store.engine.begin() as conn:
            for row in rows:
                await conn.execute(store.dialect.insert(NotificationRow).values(row).on_conflict_do_nothing())

    await store.guard(_queue(), "queue notifications")
    await state.set_state(WATERMARK, str(entries[-1].id))
    return len(rows) + mailed


async def deliver(store: Store, settings: Settings, *, now: datetime) -> int:
    """Post the queued webhook notices that are due; a failure waits interval_s x 2^attempts before the next try."""
    due = await notices(store, status=QUEUED, due_by=now)
    sent = 0
    for notice in due:
        try:
            await asyncio.to_thread(_send, settings, notice)
        except (OSError, MailError, RuntimeError) as err:
            attempts = notice.attempts + 1
            status = FAILED if attempts >= settings.notify.attempts else QUEUED
            retry = now + timedelta(seconds=settings.notify.interval_s * 2**attempts)
            await _update(
                store, notice.id, status=status, attempts=attempts, last_error=str(err)[:500], next_attempt_at=retry
            )
            log.warning(
                "notification_failed",
                notification=notice.id,
                customer=notice.customer,
                attempts=attempts,
                gave_up=status == FAILED,
                error=str(err)[:200],
            )
            continue
        await _update(store, notice.id, status=SENT, attempts=notice.attempts + 1, sent_at=now, last_error=None)
        log.info("notification_sent", notification=notice.id, customer=notice.customer)
        sent += 1
    return sent


async def notices(store: Store, *, status: str | None = None, due_by: datetime | None = None) -> list[Notice]:
    stmt = select(
        NotificationRow.id,
        NotificationRow.customer,
        NotificationRow.recipient,
        NotificationRow.subject,
        NotificationRow.body,
        NotificationRow.status,
        NotificationRow.attempts,
        NotificationRow.last_error,
    ).order_by(NotificationRow.id)
    if status:
        stmt = stmt.where(NotificationRow.status == status)
    if due_by is not None:
        stmt = stmt.where(NotificationRow.next_attempt_at <= due_by)

    async def _query() -> list[Notice]:
        async with store.engine.connect() as conn:
            return [Notice(*row) for row in await conn.execute(stmt)]

    return await store.guard(_query(), "list notifications")


async def _update(store: Store, notification_id: int, **values: Any) -> None:  # noqa: ANN401 - column values
    async def _write() -> None:
        async with store.engine.begin() as conn:
            await conn.execute(update(NotificationRow).where(NotificationRow.id == notification_id).values(values))

    await store.guard(_write(), "update a notification")


def _send(settings: Settings, notice: Notice) -> None:
    """Blocking I/O, run in a thread: the webhook (mailed notices are the outbox's)."""
    payload = json.dumps(
        {"customer": notice.customer, "to": notice.recipient, "subject": notice.subject, "body": notice.body}
    ).encode()
    post_json(settings.notify.webhook_url or "", payload, timeout_s=_TIMEOUT_S)


def _show(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
