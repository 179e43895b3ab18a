"""The customer portal's use cases, for the portal pages, the API and the CLI alike.

Every read a portal user makes goes through a :class:`Scope`: their customer and its branches
(when it is a head office). An id outside the scope is answered exactly like an id that does not
exist (the same NotFound error and message), so a portal user cannot even learn that another
customer's invoice 7 or device KY9 is there. Staff use cases (invite, decide a change request)
take no scope: their guard is the ``portal.manage`` permission.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import select

from billing.customers import Customer, parse_customer
from billing.documents.i18n import Words
from billing.documents.mail import notice_mail
from billing.documents.pdf import to_pdf
from billing.documents.ubl import to_ubl
from billing.invoicing import Book
from billing.lifecycle import DRAFT
from billing.periods import Period
from billing.receivables import Instalment, Standing
from daemon.kernel.errors import MeterdError
from daemon.kernel.reading import DeviceInfo, Meter, MeterValue, Reading, Unit
from daemon.security.roles import CUSTOMER
from daemon.services.accounts import INVITE, RESET, Accounts, Principal, UserExistsError
from daemon.services.billing import invoice_document, usage_report
from daemon.services.mail.outbox import queue as queue_mail
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import Settings
from daemon.storage.audit import audit_source
from daemon.storage.billing import BillingStore, CustomerNotFoundError, InvoiceNotFoundError, InvoiceRecord
from daemon.storage.models import CustomerRow, UserRow
from daemon.storage.portal import (
    APPROVED,
    CHANGE_REQUEST_SOURCE,
    OPEN,
    REJECTED,
    ChangeRequest,
    ChangeRequestNotFoundError,
    PortalStore,
)
from daemon.storage.receivables import ReceivablesStore
from daemon.storage.repository import DeviceRecord, Store

PORTAL_SOURCE: Final = "portal"
# What a customer may ask to change on their card (the rest is the dealer's: currency, terms, tags …).
EDITABLE: Final = ("legal_name", "trade_name", "tax_id", "electronic_address", "payment_method", "address", "contacts")
PHOTO_TYPES: Final = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png"}
HISTORY: Final = timedelta(days=400)
ADDRESS_ORDER: Final = ("name", "street", "postal_code", "city", "region", "country", "email", "phone")


class PortalError(MeterdError):
    """A portal request that cannot be done as asked; the message says what to change."""


class DeviceNotFoundError(MeterdError):
    """No such device (or not one of this customer's)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """Whom a portal user acts for: their customer, and the codes they may see (it and its branches)."""

    login: str
    customer: str
    codes: frozenset[str]


@dataclass(frozen=True, slots=True)
class PortalDevice:
    key: str
    customer: str
    vendor: str | None
    model: str | None
    site: str
    last_seen: datetime | None
    networked: bool  # a device that reports by itself: readings for it are not taken from the portal
    name: str | None = None  # the office's name, location and cost centre, as the invoice prints them
    location: str | None = None
    cost_centre: str | None = None


@dataclass(frozen=True, slots=True)
class DocumentFile:
    body: bytes
    media_type: str
    filename: str


@dataclass(frozen=True, slots=True)
class Balance:
    standings: list[Standing]
    plans: dict[int, list[Instalment]]

    @property
    def open_by_currency(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for standing in self.standings:
            totals[standing.currency] = totals.get(standing.currency, Decimal(0)) + standing.open
        return totals


async def scope_of(store: Store, principal: Principal) -> Scope:
    """Raises PortalError for a staff account (it has no customer: the console is its place)."""
    if principal.role != CUSTOMER or principal.customer_id is None:
        raise PortalError("the portal is for customers' accounts; staff use the console")

    async def _query() -> str:
        async with store.engine.connect() as conn:
            code = await conn.execute(select(CustomerRow.code).where(CustomerRow.id == principal.customer_id))
            return str(code.scalar_one())

    code = await store.guard(_query(), "read a portal user's customer")
    return Scope(principal.login, code, frozenset(branches(await BillingStore(store).book(), code)))


def branches(book: Book, code: str) -> list[str]:
    """``code`` and every customer whose head office (at any depth) it is."""

    def under(customer: Customer) -> bool:
        seen: set[str] = set()
        parent = customer.parent
        while parent is not None and parent not in seen:
            if parent == code:
                return True
            seen.add(parent)
            parent = book.customers[parent].parent if parent in book.customers else None
        return False

    return [code, *sorted(c.code for c in book.customers.values() if under(c))]


# -- what a portal user sees -----------------------------------------------------------------


async def devices(store: Store, scope: Scope, *, today: date) -> list[PortalDevice]:
    """The devices the scope's customers hold today."""
    book = await BillingStore(store).book()
    held = {
        a.device: a.customer
        for a in book.assignments
        if a.customer in scope.codes and a.start <= today and (a.end is None or today < a.end)
    }
    known = {d.key: d for d in await store.devices()}
    return [_device(key, held[key], known.get(key)) for key in sorted(held)]


async def device(store: Store, scope: Scope, key: str, *, today: date) -> PortalDevice:
    """Raises DeviceNotFoundError (also for another customer's device)."""
    found = next((d for d in await devices(store, scope, today=today) if d.key == key), None)
    if found is None:
        raise DeviceNotFoundError(f"no device {key!r}")
    return found


async def meter_history(store: Store, scope: Scope, key: str, *, now: datetime) -> list[Reading]:
    """A held device's readings of the last 400 days, since the scope's customer holds it; newest first."""
    await device(store, scope, key, today=now.date())
    book = await BillingStore(store).book()
    starts = [a.start for a in book.assignments if a.device == key and a.customer in scope.codes]
    since = max(datetime.combine(min(starts), time(), UTC), now - HISTORY)
    return list(reversed(await store.readings(device=key, since=since)))


async def invoices(store: Store, scope: Scope) -> list[InvoiceRecord]:
    """The scope's finalised and voided invoices and credit notes, newest first (drafts are the dealer's)."""
    billing = BillingStore(store)
    found = [r for code in sorted(scope.codes) for r in await billing.invoices(customer=code) if r.status != DRAFT]
    return sorted(found, key=lambda r: (r.issue_date or date.min, r.id), reverse=True)


async def invoice(store: Store, scope: Scope, invoice_id: int) -> InvoiceRecord:
    """Raises InvoiceNotFoundError, with the message of a missing one, for a draft or another customer's."""
    try:
        record = await BillingStore(store).invoice(invoice_id)
    except InvoiceNotFoundError:
        record = None
    if record is None or record.customer not in scope.codes or record.status == DRAFT:
        raise InvoiceNotFoundError(f"no invoice {invoice_id}")
    return record


async def document(store: Store, settings: Settings, scope: Scope, invoice_id: int, fmt: str) -> DocumentFile:
    """An invoice of the scope as its PDF or UBL XML file. Raises InvoiceNotFoundError."""
    await invoice(store, scope, invoice_id)
    doc = await invoice_document(store, settings, invoice_id)
    name = doc.number or f"invoice-{invoice_id}"
    if fmt == "ubl":
        return DocumentFile(to_ubl(doc), "application/xml", f"{name}.xml")
    return DocumentFile(await asyncio.to_thread(to_pdf, doc), "application/pdf", f"{name}.pdf")


async def usage(store: Store, settings: Settings, scope: Scope, code: str, *, period: Period, fmt: str) -> str:
    """The usage report of one of the scope's customers. Raises CustomerNotFoundError, BillingError."""
    if code not in scope.codes:
        raise CustomerNotFoundError(f"no customer {code!r}")
    return await usage_report(store, settings, code, period, fmt)


async def balance(store: Store, scope: Scope, *, today: date) -> Balance:
    receivables = ReceivablesStore(store)
    standings = [s for s in await receivables.standings(as_of=today) if s.customer in scope.codes]
    return Balance(standings, await receivables.plans([s.invoice_id for s in standings]))


async def card(store: Store, scope: Scope, code: str | None = None) -> Customer:
    """The scope's customer card (or one of its branches'). Raises CustomerNotFoundError."""
    wanted = code or scope.customer
    found = (await BillingStore(store).book()).customers.get(wanted)
    if found is None or wanted not in scope.codes:
        raise CustomerNotFoundError(f"no customer {wanted!r}")
    return found


# -- what a portal user sends ----------------------------------------------------------------


async def submit_reading(
    store: Store,
    settings: Settings,
    scope: Scope,
    key: str,
    *,
    meter: str,
    value: int,
    taken_on: date,
    photo: bytes | None,
    now: datetime,
) -> str:
    """Store a counter reading typed in by the customer (``source = portal``), with its photo; returns its id.

    It goes through the same pipeline as a polled reading, so the anomaly job judges it like any other
    (a value below the last one is held for review, not billed).

    Raises:
        DeviceNotFoundError; PortalError: a networked device, a bad value/date/meter, a photo too big or not a photo.
    """
    held = await device(store, scope, key, today=now.date())
    if held.networked:
        raise PortalError(f"{key} sends its counters by itself; a reading typed in is not needed")
    if value < 0:
        raise PortalError("value: the counter as the device shows it, a whole number of pages")
    if taken_on > now.date() or taken_on < now.date() - timedelta(days=62):
        raise PortalError("date: the day the counter was read, today or in the last two months")
    try:
        meter_ = Meter(meter)
    except ValueError as err:
        raise PortalError(f"meter: one of {', '.join(m.value for m in Meter)}") from err
    content_type = None
    if photo:
        if len(photo) > settings.portal.photo_max_bytes:
            limit = settings.portal.photo_max_bytes / 1_048_576
            raise PortalError(f"photo: at most {limit:.0f} MB; send a smaller picture")
        content_type = next((kind for magic, kind in PHOTO_TYPES.items() if photo.startswith(magic)), None)
        if content_type is None:
            raise PortalError("photo: a JPEG or PNG picture of the counter")
    # Noon UTC of the day given: a day-only reading sorts after that morning's and before the evening's.
    taken_at = datetime.combine(taken_on, time(12), UTC)
    taken_at = min(taken_at, now)
    reading = Reading(
        site=held.site,
        taken_at=taken_at,
        device=DeviceInfo(key=key, vendor=held.vendor, model=held.model, address=None),
        meters=(MeterValue(meter_, value, Unit.IMPRESSIONS),),
        id=f"portal-{uuid.uuid4()}",
        source=PORTAL_SOURCE,
    )
    outcome = await Pipeline(store, Metrics()).emit([reading])
    if not outcome.stored:
        raise PortalError(f"{key} has a reading at that moment already; nothing was added")
    if photo and content_type:
        await PortalStore(store).add_photo(reading.id, content_type, photo, by=scope.login, now=now)
    return reading.id


async def request_change(
    store: Store,
    settings: Settings,
    scope: Scope,
    changes: dict[str, Any],
    *,
    proof: tuple[str, str, bytes] | None,
    now: datetime,
) -> int:
    """Ask staff to change the customer's card; ``changes``: new values of EDITABLE fields.

    Raises:
        PortalError: nothing changed, a field that is not the customer's to change, a missing proof;
        CustomerError: the card would not be valid with the change (checked now, not when staff decide).
    """
    current = await card(store, scope)
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise PortalError(f"{', '.join(unknown)}: not a field you can change here; ask your contact at the dealer")
    before = current.model_dump(mode="json")
    after = {field: value for field, value in changes.items() if value != before.get(field)}
    if not after:
        raise PortalError("nothing to change: every field has the value it has now")
    parse_customer({**before, **after})  # raises CustomerError naming the field
    needs_proof = sorted(set(after) & set(settings.portal.proof_fields))
    if needs_proof and proof is None:
        raise PortalError(f"{', '.join(needs_proof)}: attach a document that shows the new value")
    if proof is not None and len(proof[2]) > settings.portal.photo_max_bytes:
        raise PortalError(f"proof: at most {settings.portal.photo_max_bytes / 1_048_576:.0f} MB")
    return await PortalStore(store).add_request(
        scope.customer,
        requested_by=scope.login,
        before={field: before.get(field) for field in after},
        after=after,
        proof=proof,
        now=now,
    )


async def change_requests(store: Store, scope: Scope) -> list[ChangeRequest]:
    return await PortalStore(store).requests(customers=scope.codes)


# -- staff -----------------------------------------------------------------------------------


async def invite(
    store: Store,
    settings: Settings,
    accounts: Accounts,
    customer: str,
    email: str,
    *,
    actor: str,
    now: datetime,
) -> str:
    """Open a portal account for one of ``customer``'s contacts and mail them the link; returns the link.

    A contact invited before gets a new link (the old one stops working).

    Raises:
        CustomerNotFoundError; PortalError: the address is not one of the customer's contacts.
    """
    book = await BillingStore(store).book()
    found = book.customers.get(customer)
    if found is None:
        raise CustomerNotFoundError(f"no customer {customer!r}; `meterd customers list` shows them")
    contact = next((c for c in found.contacts if c.email and c.email.lower() == email.strip().lower()), None)
    if contact is None or contact.email is None:
        msg = f"{email!r} is not a contact of {customer}; add the contact to the customer's card first"
        raise PortalError(msg)
    try:
        await accounts.add_customer_user(contact.email, contact.name, await _customer_id(store, customer), actor=actor)
    except UserExistsError:
        user = await accounts.user(contact.email.lower())
        if user.role != CUSTOMER:
            raise PortalError(f"{contact.email} has a staff account; invite another address") from None
    return await _mail_link(
        store,
        settings,
        accounts,
        customer=found,
        email=contact.email,
        name=contact.name,
        purpose=INVITE,
        actor=actor,
        now=now,
    )


async def reset_password(store: Store, settings: Settings, accounts: Accounts, email: str, *, now: datetime) -> None:
    """Mail a reset link to a portal user; silent when there is none (the page says the same either way)."""
    login = email.strip().lower()
    try:
        user = await accounts.user(login)
    except MeterdError:
        return
    if user.role != CUSTOMER or user.disabled:
        return
    book = await BillingStore(store).book()
    code = await _customer_code(store, login)
    await _mail_link(
        store,
        settings,
        accounts,
        customer=book.customers[code],
        email=login,
        name=user.name,
        purpose=RESET,
        actor=login,
        now=now,
    )


async def decide_change(
    store: Store,
    settings: Settings,
    request_id: int,
    *,
    approve: bool,
    reason: str,
    actor: str,
    now: datetime,
) -> ChangeRequest:
    """Approve (apply to the card, audited) or reject (a reason is required) a request; mail the requester.

    Raises:
        ChangeRequestNotFoundError; ChangeRequestDecidedError; PortalError: a rejection without a reason;
        CustomerError: the card would no longer be valid with the change (reject it instead).
    """
    portal = PortalStore(store)
    request = await portal.request(request_id)
    if request.status != OPEN:
        await portal.decide(request_id, APPROVED, actor=actor, reason=None, now=now)  # raises: decided already
    billing = BillingStore(store)
    current = (await billing.book()).customers[request.customer]
    words = Words(current.language)
    asker = next((c.name for c in current.contacts if (c.email or "").lower() == request.requested_by), None)
    seller = settings.billing.seller.model_dump()
    if approve:
        updated = parse_customer({**current.model_dump(mode="json"), **request.after})
        token = audit_source.set(f"{CHANGE_REQUEST_SOURCE} {request_id}")
        try:
            await billing.save_customers([updated], actor=actor, now=now)
            await portal.decide(request_id, APPROVED, actor=actor, reason=None, now=now)
        finally:
            audit_source.reset(token)
        changes = [
            (words.field(field), shown(request.before.get(field)), shown(value))
            for field, value in request.after.items()
        ]
        subject = words("mail_change_subject", seller=seller["name"])
        paragraphs = [words("mail_change_body", seller=seller["name"], customer=updated.legal_name)]
        paragraphs_after = [words("mail_not_you", email=settings.billing.seller.email)]
        message = notice_mail(
            language=current.language,
            contact=asker or request.requested_by,
            email=request.requested_by,
            subject=subject,
            paragraphs=[*paragraphs, *paragraphs_after],
            seller=seller,
            changes=changes,
        )
    else:
        if not reason.strip():
            raise PortalError("reason: say why, the customer reads it in the mail")
        await portal.decide(request_id, REJECTED, actor=actor, reason=reason.strip(), now=now)
        subject = words("mail_reject_subject", seller=seller["name"])
        body = words("mail_reject_body", customer=current.legal_name)
        message = notice_mail(
            language=current.language,
            contact=asker or request.requested_by,
            email=request.requested_by,
            subject=subject,
            paragraphs=[body, reason.strip()],
            seller=seller,
        )
    await queue_mail(store, settings, message, key=f"change-request:{request_id}", kind="notice", now=now)
    return await portal.request(request_id)


async def open_requests(store: Store) -> list[ChangeRequest]:
    return await PortalStore(store).requests(status=OPEN)


async def request_of(store: Store, request_id: int, scope: Scope | None = None) -> ChangeRequest:
    """Raises ChangeRequestNotFoundError (also for another customer's, when a scope is given)."""
    found = await PortalStore(store).request(request_id)
    if scope is not None and found.customer not in scope.codes:
        raise ChangeRequestNotFoundError(f"no change request {request_id}")
    return found


# -- the parts -------------------------------------------------------------------------------


def _device(key: str, customer: str, record: DeviceRecord | None) -> PortalDevice:
    if record is None:
        return PortalDevice(key, customer, None, None, "", None, networked=False)
    return PortalDevice(
        key,
        customer,
        record.vendor,
        record.model,
        record.site,
        record.last_seen,
        networked=bool(record.address),
        name=record.name,
        location=record.location,
        cost_centre=record.cost_centre,
    )


async def _mail_link(
    store: Store,
    settings: Settings,
    accounts: Accounts,
    *,
    customer: Customer,
    email: str,
    name: str,
    purpose: str,
    actor: str,
    now: datetime,
) -> str:
    hours = settings.portal.link_hours
    token = await accounts.issue_link(email.lower(), purpose, valid=timedelta(hours=hours), actor=actor)
    link = f"{settings.portal.base_url.rstrip('/')}/portal/password/{token}"
    words = Words(customer.language)
    seller = settings.billing.seller.model_dump()
    body = words(f"mail_{purpose}_body", seller=seller["name"], customer=customer.legal_name, hours=hours)
    message = notice_mail(
        language=customer.language,
        contact=name,
        email=email,
        subject=words(f"mail_{purpose}_subject", seller=seller["name"]),
        paragraphs=[body],
        seller=seller,
        link=link,
    )
    # The key names the link (by its hash, never the token): each new link is one mail.
    key = f"portal-{purpose}:{hashlib.sha256(token.encode()).hexdigest()[:32]}"
    await queue_mail(store, settings, message, key=key, kind="notice", now=now)
    return link


async def _customer_id(store: Store, code: str) -> int:
    async def _query() -> int:
        async with store.engine.connect() as conn:
            return int((await conn.execute(select(CustomerRow.id).where(CustomerRow.code == code))).scalar_one())

    return await store.guard(_query(), "read a customer's id")


async def _customer_code(store: Store, login: str) -> str:
    async def _query() -> str:
        async with store.engine.connect() as conn:
            stmt = select(CustomerRow.code).join(UserRow, UserRow.customer_id == CustomerRow.id)
            return str((await conn.execute(stmt.where(UserRow.login == login))).scalar_one())

    return await store.guard(_query(), "read a portal user's customer")


def shown(value: object) -> str:
    """A card's field value in one line, as mails and the staff queue show it."""
    if isinstance(value, dict):
        # Stored sorted by key (JSON): an address reads in the order people write it.
        ordered = sorted(value, key=lambda k: ADDRESS_ORDER.index(k) if k in ADDRESS_ORDER else len(ADDRESS_ORDER))
        return ", ".join(str(value[k]) for k in ordered if value[k])
    if isinstance(value, list):
        return "; ".join(shown(v) for v in value)
    return "" if value is None else str(value)
