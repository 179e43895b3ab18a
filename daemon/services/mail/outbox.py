"""The mail outbox: every message is written to the store first, then sent by a job, retried, marked.

Exactly-once is not possible over SMTP; at-most-once is chosen. A row is claimed (queued -> sending) in
its own transaction before the relay is spoken to, so two runs never take the same row, and a row found
still ``sending`` after a crash is marked failed for a person to look at, never sent again blindly: the
relay may already have it (its Message-ID is stored to search the relay's log for).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP  # CRLF line ends: smtplib sends bytes as they are
from email.utils import getaddresses, make_msgid
from typing import Any, Final

import structlog
from sqlalchemy import func, select, update

from daemon.kernel.errors import MeterdError
from daemon.services.mail.transport import MailError, Outgoing, send
from daemon.services.metrics import Metrics
from daemon.settings import Settings
from daemon.storage.models import MailRow, ReminderRow
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)

QUEUED: Final = "queued"
SENDING: Final = "sending"
SENT: Final = "sent"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
# A claim older than this was left by a process that stopped mid-send.
_STALE_CLAIM: Final = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Mail:
    id: int
    key: str
    kind: str
    reminder_id: int | None
    recipients: str
    subject: str
    message_id: str
    status: str
    attempts: int
    relay_answer: str | None
    last_error: str | None
    message: bytes


@dataclass(frozen=True, slots=True)
class OutboxStats:
    queued: int
    failed: int
    oldest_queued: datetime | None


async def queue(
    store: Store,
    settings: Settings,
    message: EmailMessage,
    *,
    key: str,
    kind: str,
    now: datetime,
    invoice_id: int | None = None,
    reminder_id: int | None = None,
) -> int | None:
    """Write ``message`` to the outbox once per ``key``; returns its id, or None when the key was queued before."""
    if message["From"] is None:  # assigning a header adds one: a second From would be refused
        message["From"] = settings.mail_from
    message["Message-ID"] = make_msgid(domain=settings.mail_from.rpartition("@")[2] or None)
    recipients = [address for _, address in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]
    if not recipients:
        raise MeterdError(f"{key}: no recipient to mail; give the customer's billing contact an email")
    row = {
        "key": key,
        "kind": kind,
        "invoice_id": invoice_id,
        "reminder_id": reminder_id,
        "recipients": ",".join(recipients),
        "subject": str(message["Subject"]),
        "message": message.as_bytes(policy=SMTP),
        "message_id": str(message["Message-ID"]),
        "status": QUEUED,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }

    async def _write() -> int | None:
        async with store.engine.begin() as conn:
            result = await conn.execute(
                store.dialect.insert(MailRow).values(row).on_conflict_do_nothing().returning(MailRow.id)
            )
            return result.scalar_one_or_none()

    mail_id = await store.guard(_write(), "queue a mail")
    if mail_id is not None:
        log.info("mail_queued", mail=mail_id, key=key, to=row["recipients"])
    return mail_id


async def cancel(store: Store, key: str, *, reason: str) -> bool:
    """Withdraw a message not sent yet (nor being sent); False when there is none."""

    async def _write() -> bool:
        async with store.engine.begin() as conn:
            waiting = (MailRow.key == key) & (MailRow.status == QUEUED)
            result = await conn.execute(update(MailRow).where(waiting).values(status=CANCELLED, last_error=reason))
            return bool(result.rowcount)

    return await store.guard(_write(), "cancel a mail")


async def deliver(store: Store, settings: Settings, *, now: datetime, metrics: Metrics | None = None) -> int:
    """Send what is due, each claimed first; a transient failure waits interval_s x 2^attempts. Returns sent."""
    await _fail_stale_claims(store, now)
    sent = 0
    for mail_id in await _due(store, now):
        claimed = await _claim(store, mail_id, now)
        if claimed is None:
            continue
        outgoing = Outgoing(
            f"mail-{claimed.id:08d}", settings.mail_from, tuple(claimed.recipients.split(",")), claimed.message
        )
        try:
            answer = await asyncio.to_thread(send, settings.mail, outgoing)
        except MailError as err:
            attempts = claimed.attempts + 1
            gave_up = not err.transient or attempts >= settings.mail.attempts
            retry = now + timedelta(seconds=settings.mail.interval_s * 2**attempts)
            await _set(
                store,
                mail_id,
                status=FAILED if gave_up else QUEUED,
                attempts=attempts,
                last_error=str(err)[:1000],
                next_attempt_at=retry,
                claimed_at=None,
            )
            log.warning(
                "mail_failed", mail=mail_id, key=claimed.key, attempts=attempts, gave_up=gave_up, error=str(err)[:200]
            )
            continue
        await _set(
            store,
            mail_id,
            status=SENT,
            attempts=claimed.attempts + 1,
            relay_answer=answer[:1000],
            sent_at=now,
            last_error=None,
        )
        log.info("mail_sent", mail=mail_id, key=claimed.key, relay=answer[:200])
        if metrics is not None:
            metrics.mail_sent.inc()
        if claimed.reminder_id is not None:  # the job, not a person, sent it: mark it as the person did
            from daemon.storage.receivables import ReceivablesStore  # noqa: PLC0415 - see _reminder_queued

            await ReceivablesStore(store).mark_sent(claimed.reminder_id, actor="mail", now=now)
        sent += 1
    if metrics is not None:
        found = await stats(store)
        metrics.mail_queued.set(found.queued)
        metrics.mail_failed.set(found.failed)
        metrics.mail_oldest_queued.set((now - found.oldest_queued).total_seconds() if found.oldest_queued else 0)
    return sent


async def mails(store: Store, *, status: str | None = None) -> list[Mail]:
    columns = (
        MailRow.id,
        MailRow.key,
        MailRow.kind,
        MailRow.reminder_id,
        MailRow.recipients,
        MailRow.subject,
        MailRow.message_id,
        MailRow.status,
        MailRow.attempts,
        MailRow.relay_answer,
        MailRow.last_error,
        MailRow.message,
    )
    stmt = select(*columns).order_by(MailRow.id)
    if status:
        stmt = stmt.where(MailRow.status == status)

    async def _query() -> list[Mail]:
        async with store.engine.connect() as conn:
            return [_mail(row) for row in await conn.execute(stmt)]

    return await store.guard(_query(), "list mails")


def _mail(row: Any) -> Mail:  # noqa: ANN401 - a Row of mail_outbox or the mapped row
    return Mail(
        row.id,
        row.key,
        row.kind,
        row.reminder_id,
        row.recipients,
        row.subject,
        row.message_id,
        row.status,
        row.attempts,
        row.relay_answer,
        row.last_error,
        row.message,
    )


async def stats(store: Store) -> OutboxStats:
    async def _query() -> OutboxStats:
        async with store.engine.connect() as conn:
            counts = dict((await conn.execute(select(MailRow.status, func.count()).group_by(MailRow.status))).all())
            waiting = MailRow.status.in_([QUEUED, SENDING])
            oldest = (await conn.execute(select(func.min(MailRow.created_at)).where(waiting))).scalar_one()
        return OutboxStats(counts.get(QUEUED, 0) + counts.get(SENDING, 0), counts.get(FAILED, 0), oldest)

    return await store.guard(_query(), "count mails")


async def _due(store: Store, now: datetime) -> list[int]:
    async def _query() -> list[int]:
        async with store.engine.connect() as conn:
            due = (MailRow.status == QUEUED) & (MailRow.next_attempt_at <= now)
            return list((await conn.execute(select(MailRow.id).where(due).order_by(MailRow.id))).scalars())

    return await store.guard(_query(), "list due mails")


async def _claim(store: Store, mail_id: int, now: datetime) -> Mail | None:
    """Claim: queued -> sending in one transaction; None when another run took it or its reminder was withdrawn."""

    async def _write() -> Mail | None:
        async with store.engine.begin() as conn:
            mine = (MailRow.id == mail_id) & (MailRow.status == QUEUED)
            if (await conn.execute(update(MailRow).where(mine).values(status=SENDING, claimed_at=now))).rowcount != 1:
                return None
            row = (await conn.execute(select(MailRow.__table__).where(MailRow.id == mail_id))).one()
            if row.reminder_id is not None:
                reminder = select(ReminderRow.status).where(ReminderRow.id == row.reminder_id)
                if (await conn.execute(reminder)).scalar_one_or_none() != _reminder_queued():
                    # Paid, voided or marked sent by hand since it was queued: the customer must not get it.
                    await conn.execute(
                        update(MailRow)
                        .where(MailRow.id == mail_id)
                        .values(status=CANCELLED, last_error="the reminder is no longer queued")
                    )
                    return None
            return _mail(row)

    return await store.guard(_write(), "claim a mail")


def _reminder_queued() -> str:
    """A queued reminder's status.

    The receivables store (billing's pandas, Jinja2, Babel) loads only with a reminder's mail:
    the supplies desk's alerts queue mail here on agents too, which send no reminders.
    """
    from daemon.storage.receivables import QUEUED  # noqa: PLC0415 - see above

    return QUEUED


async def _fail_stale_claims(store: Store, now: datetime) -> None:
    async def _write() -> int:
        async with store.engine.begin() as conn:
            stale = (MailRow.status == SENDING) & (MailRow.claimed_at < now - _STALE_CLAIM)
            result = await conn.execute(
                update(MailRow)
                .where(stale)
                .values(
                    status=FAILED,
                    last_error="interrupted while sending (the daemon stopped): not sent again, as the "
                    "relay may have it; search its log for the Message-ID",
                )
            )
            return int(result.rowcount)

    if stopped := await store.guard(_write(), "fail interrupted mails"):
        log.warning("mail_interrupted", count=stopped)


async def _set(store: Store, mail_id: int, **values: object) -> None:
    async def _write() -> None:
        async with store.engine.begin() as conn:
            await conn.execute(update(MailRow).where(MailRow.id == mail_id).values(values))

    await store.guard(_write(), "update a mail")
