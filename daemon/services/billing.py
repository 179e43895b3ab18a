"""A billing run: load the book and the readings, compute every payer's draft, write them in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from billing.anomalies import DetectorSettings, Finding
from billing.anomalies.allowance import allowances, forecast_requests, over_allowance
from billing.documents.mail import invoice_mail, reminder_mail
from billing.documents.model import DeviceLabel, Document, Party
from billing.documents.pdf import to_pdf
from billing.documents.reports import daily_usage, usage_chart, usage_csv, usage_html, usage_rows
from billing.documents.ubl import to_ubl
from billing.invoicing import (
    BillingError,
    Book,
    Draft,
    InvoiceLine,
    UsageJob,
    assemble,
    check,
    cycles_to_rate,
    devices_without_reads,
    mark_unsupplied,
    rate_jobs,
    usage_jobs,
    usage_requests,
)
from billing.lifecycle import CREDIT_NOTE, VOIDED, check_issue_window
from billing.periods import Period, add_months, utc_midnight
from billing.reads import ReadRules, period_usage
from daemon.services.mail.outbox import cancel as cancel_mail
from daemon.services.mail.outbox import queue as queue_mail
from daemon.settings import BillingSettings, Settings
from daemon.storage.billing import BillingStore, CustomerNotFoundError, InvoiceRecord, SavedDraft
from daemon.storage.receivables import QUEUED as REMINDER_QUEUED
from daemon.storage.receivables import ReceivablesStore
from daemon.storage.repository import DeviceRecord, Store


@dataclass(frozen=True, slots=True)
class RunResult:
    drafts: list[Draft]
    saved: list[SavedDraft]
    skipped: list[str]  # payers whose month is already finalised


def read_rules(settings: BillingSettings, max_pages_per_minute: float) -> ReadRules:
    return ReadRules(
        window=timedelta(days=settings.read_window_days),
        estimate_lookback=timedelta(days=settings.estimate_lookback_days),
        max_pages_per_minute=max_pages_per_minute,
    )


async def bill_month(
    store: Store,
    settings: Settings,
    month: Period,
    *,
    customers: list[str] | None = None,
    write: bool,
    actor: str,
    now: datetime,
) -> RunResult:
    """Drafts for every paying customer (or the payers of ``customers``) for ``month``.

    With ``write``, drafts are stored (an existing draft of the month replaced, a finalised
    month left alone); without, nothing is written (a preview).

    Raises:
        BillingError: naming every customer, contract or device that stops the run; nothing is written.
    """
    billing = BillingStore(store)
    book = await billing.book()
    done = await billing.finalised_customers(month)
    wanted = _payers(book, customers)
    skipped = [payer for payer in wanted if payer in done]
    payers = [payer for payer in wanted if payer not in done]
    problems = []
    for payer in payers:
        try:
            check(book, payer, month)
        except BillingError as err:
            problems.append(str(err))
    if problems:
        raise BillingError("; ".join(problems))
    since = add_months(month.start, -settings.billing.adjust_months)
    billed: dict[str, list[InvoiceLine]] = {}
    jobs: dict[str, list[UsageJob]] = {}
    history = await billing.billed_lines(payers, since)
    for payer in payers:
        lines, finalised = history[payer]
        billed[payer] = lines
        jobs[payer] = usage_jobs(book, payer, cycles_to_rate(month, finalised, settings.billing.adjust_months))
    rules = read_rules(settings.billing, settings.anomalies.max_pages_per_minute)
    rated = await _rate(billing, jobs, rules)
    drafts = [assemble(book, payer, month, rated[payer], billed[payer]) for payer in payers]
    drafts = [draft for draft in drafts if draft.lines]
    if not write:
        return RunResult(drafts, [], skipped)
    saved = await billing.save_drafts(drafts, actor=actor, now=now)
    return RunResult(drafts, saved, skipped + [s.draft.payer for s in saved if s.invoice_id is None])


def _payers(book: Book, customers: list[str] | None) -> list[str]:
    if not customers:
        return book.payers()
    unknown = [code for code in customers if code not in book.customers]
    if unknown:
        msg = f"no customer {unknown[0]!r}; `meterd customers list` shows them"
        raise BillingError(msg)
    return sorted({book.payer_of(code) for code in customers})


async def _rate(
    billing: BillingStore, jobs: dict[str, list[UsageJob]], rules: ReadRules
) -> dict[str, list[InvoiceLine]]:
    """Usage lines per payer: one columnar load and one vectorised usage pass for all of them."""
    flat = [(payer, job) for payer, payer_jobs in jobs.items() for job in payer_jobs]
    requests = usage_requests(job for _, job in flat)
    if requests.empty:
        return {payer: [] for payer in jobs}
    usage = await measure_usage(billing, requests, rules)
    lines = rate_jobs([job for _, job in flat], requests, usage)
    if silent := devices_without_reads(lines):  # few: ask only about them what they do report
        lines = mark_unsupplied(lines, await billing.reported_meters(silent))
    out: dict[str, list[InvoiceLine]] = {payer: [] for payer in jobs}
    payer_of_contract = {job.contract.id: payer for payer, job in flat}  # a contract has one customer, so one payer
    for line in lines:
        out[payer_of_contract[line.contract]].append(line)
    return out


async def measure_usage(
    billing: BillingStore, requests: pd.DataFrame, rules: ReadRules, *, lookback: timedelta | None = None
) -> pd.DataFrame:
    """:func:`billing.reads.period_usage` of ``requests`` (device keys, UTC bounds), reads loaded columnar.

    Reads are loaded from ``lookback`` (default: the window and the estimate lookback) before
    the earliest start: what a boundary read or an estimate may need.
    """
    ids = await billing.device_ids()
    margin = pd.Timedelta(rules.window + rules.estimate_lookback if lookback is None else lookback)
    since = _as_datetime(requests["start"].min() - margin)
    until = _as_datetime(requests["end"].max() + pd.Timedelta(rules.window) + pd.Timedelta(seconds=1))
    reads = await billing.reads_frame(since, until, requests["meter"].unique().tolist())
    by_id = requests.assign(device=requests["device"].map(ids).fillna(-1).astype("int64"))
    return period_usage(
        reads,
        by_id[["device", "meter", "start", "end"]],
        held=set(await billing.held_readings()),
        rules=rules,
        restarts=await billing.restarts(),
    )


async def forecast_over_allowance(
    store: Store,
    book: Book,
    settings: Settings,
    detectors: DetectorSettings,
    *,
    now: datetime,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> list[Finding]:
    """Allowances of the running usage cycles whose forecast outgrows them (see billing.anomalies.allowance)."""
    billing = BillingStore(store)
    watched = allowances(book, now.date())
    requests = forecast_requests(watched, now, detectors, tuned)
    if requests.empty:
        return []
    rules = read_rules(settings.billing, detectors.max_pages_per_minute)
    # A forecast needs no 90-day estimate basis: the window around each boundary is enough.
    usage = await measure_usage(billing, requests, rules, lookback=rules.window)
    return over_allowance(watched, requests.join(usage), now, detectors, tuned)


def _as_datetime(stamp: Any) -> datetime:  # noqa: ANN401 - a pandas Timestamp
    moment: datetime = pd.Timestamp(stamp).to_pydatetime()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def snapshot_for(
    book: Book, payer: str, settings: BillingSettings, devices: Sequence[DeviceRecord] = ()
) -> dict[str, Any]:
    """What a finalised invoice freezes: the seller, the paying customer, its branches and their contracts.

    And the devices they ever held, as the customer knows them (model, name, location, cost centre).
    """
    members = book.members(payer)
    customer = book.customers[payer]
    held = {a.device for code in members for a in book.assignments_of(code)}
    return {
        "seller": settings.seller.model_dump(mode="json"),
        "customer": customer.model_dump(mode="json"),
        "branches": [book.customers[code].model_dump(mode="json") for code in members if code != payer],
        "contracts": [c.model_dump(mode="json") for c in book.contracts if c.customer in members],
        "payment_terms_days": customer.payment_terms_days,
        "devices": {
            d.key: asdict(
                DeviceLabel.of(d.vendor, d.model, name=d.name, location=d.location, cost_centre=d.cost_centre)
            )
            for d in devices
            if d.key in held
        },
    }


def document_for(record: InvoiceRecord, snapshot: dict[str, Any], credited_number: str | None = None) -> Document:
    """The printable/exportable form of a stored invoice, from its frozen snapshot (or today's data for a draft)."""
    seller = snapshot["seller"]
    return Document(
        invoice_id=record.id,
        kind=record.kind,
        status=record.status,
        number=record.number,
        issue_date=record.issue_date or datetime.now(UTC).date(),
        due_date=record.due_date,
        period=record.period,
        currency=record.currency,
        seller=Party.seller(seller),
        buyer=Party.customer(snapshot["customer"]),
        lines=record.lines,
        iban=seller.get("iban"),
        bic=seller.get("bic"),
        payment_terms_days=snapshot.get("payment_terms_days"),
        credited_number=credited_number,
        language=snapshot["customer"].get("language", "en"),
        # An invoice finalised before devices were frozen with it prints without them.
        devices={key: DeviceLabel(**label) for key, label in snapshot.get("devices", {}).items()},
    )


async def finalize_invoice(
    store: Store,
    settings: Settings,
    invoice_id: int,
    *,
    actor: str,
    now: datetime,
    issue_date: date | None = None,
    override: str | None = None,
) -> InvoiceRecord:
    """Number and freeze a draft (see BillingStore.finalize), with today's snapshot of its payer.

    Blocking items need ``override`` (BillingStore.finalize).

    Raises:
        BillingError: an issue date more than ``billing.issue_date_window_days`` from today (1970 by mistake),
            or before the series' last (BillingStore.finalize).
    """
    if issue_date is not None:
        check_issue_window(issue_date, today=now.date(), window_days=settings.billing.issue_date_window_days)
    billing = BillingStore(store)
    record = await billing.invoice(invoice_id)
    final = await billing.finalize(
        invoice_id,
        series=settings.billing.invoice_series,
        digits=settings.billing.number_digits,
        snapshot=snapshot_for(await billing.book(), record.customer, settings.billing, await store.devices()),
        actor=actor,
        now=now,
        issue_date=issue_date or now.date(),
        override=override,
    )
    if settings.mail.enabled and settings.mail.invoices:
        await mail_invoice(store, settings, invoice_id, now=now)
    return final


@dataclass(frozen=True, slots=True)
class Finalising:
    """What finalising one of many drafts came to: the invoice finalised, or why it was not."""

    invoice_id: int
    finalized: InvoiceRecord | None
    refused: str | None


async def finalize_many(
    store: Store, settings: Settings, invoice_ids: list[int], *, actor: str, now: datetime, override: str | None
) -> list[Finalising]:
    """Finalise each draft in turn (numbers in the order given); one refused does not stop the others.

    ``override`` is used only by a draft whose checks block it (BillingStore.finalize).
    """
    outcomes = []
    for invoice_id in invoice_ids:
        try:
            final = await finalize_invoice(store, settings, invoice_id, actor=actor, now=now, override=override)
        except BillingError as err:
            outcomes.append(Finalising(invoice_id, None, str(err)))
        else:
            outcomes.append(Finalising(invoice_id, final, None))
    return outcomes


async def mail_invoice(store: Store, settings: Settings, invoice_id: int, *, now: datetime) -> int | None:
    """Queue the finalised invoice for its billing contact, PDF and UBL XML attached (once per invoice)."""
    document = await invoice_document(store, settings, invoice_id)
    pdf, xml = await asyncio.to_thread(to_pdf, document), to_ubl(document)
    message = invoice_mail(document, pdf, xml, settings.billing.seller.model_dump())
    return await queue_mail(
        store, settings, message, key=f"invoice:{invoice_id}", kind="invoice", now=now, invoice_id=invoice_id
    )


async def void_invoice(
    store: Store, settings: Settings, invoice_id: int, *, reason: str, actor: str, now: datetime
) -> InvoiceRecord:
    """Void a finalised invoice, cancelling its queued reminders; returns the credit note that cancels it."""
    credit = await BillingStore(store).void(
        invoice_id,
        series=settings.billing.credit_note_series,
        digits=settings.billing.number_digits,
        reason=reason,
        actor=actor,
        now=now,
        issue_date=now.date(),
    )
    await ReceivablesStore(store).cancel_reminders(invoice_id, reason=f"invoice voided: {reason}", actor=actor, now=now)
    # A customer who has not had the invoice yet gets neither it nor a credit note for it.
    mailing = settings.mail.enabled and settings.mail.invoices
    if mailing and not await cancel_mail(store, f"invoice:{invoice_id}", reason=f"invoice voided: {reason}"):
        await mail_invoice(store, settings, credit.id, now=now)
    return credit


async def invoice_document(store: Store, settings: Settings, invoice_id: int) -> Document:
    """A stored invoice as a document to render: its frozen snapshot, or today's data for a draft."""
    billing = BillingStore(store)
    record = await billing.invoice(invoice_id)
    snapshot = record.snapshot
    if snapshot is None:
        snapshot = snapshot_for(await billing.book(), record.customer, settings.billing, await store.devices())
    credited = None
    if record.kind == CREDIT_NOTE and record.credited_invoice_id is not None:
        credited = (await billing.invoice(record.credited_invoice_id)).number
    return document_for(record, snapshot, credited)


async def queue_reminders(
    store: Store, settings: Settings, *, now: datetime, as_of: date | None = None, actor: str = "system"
) -> list[int]:
    """The reminders due on ``as_of`` (today), queued once per invoice and level, audited as ``actor``.

    With [mail] set up each is also queued as an e-mail; the mail job marks it sent when the relay takes it.
    """
    receivables = ReceivablesStore(store)
    queued = await receivables.queue_reminders(
        as_of=as_of or now.date(),
        levels=settings.receivables.reminder_days,
        seller=settings.billing.seller.model_dump(),
        now=now,
        actor=actor,
    )
    if queued and settings.mail.enabled and settings.mail.reminders:
        billing = BillingStore(store)
        for reminder in await receivables.reminders(status=REMINDER_QUEUED):
            if reminder.id not in queued:
                continue
            customer = ((await billing.invoice(reminder.invoice_id)).snapshot or {})["customer"]
            contact = next(c for c in customer["contacts"] if c.get("billing"))
            message = reminder_mail(
                reminder.text,
                language=customer.get("language", "en"),
                number=reminder.number,
                contact=contact["name"],
                email=contact["email"],
                seller=settings.billing.seller.model_dump(),
            )
            await queue_mail(
                store,
                settings,
                message,
                key=f"reminder:{reminder.id}",
                kind="reminder",
                now=now,
                invoice_id=reminder.invoice_id,
                reminder_id=reminder.id,
            )
    return queued


async def period_invoices(store: Store, period: Period, customer: str | None) -> list[InvoiceRecord]:
    """The period's live invoices (no credit notes, nothing voided), with their lines."""
    billing = BillingStore(store)
    listed = await billing.invoices(customer=customer, period=period)
    return [await billing.invoice(r.id) for r in listed if r.kind != CREDIT_NOTE and r.status != VOIDED]


async def usage_report(store: Store, settings: Settings, customer: str, period: Period, fmt: str) -> str:
    """A customer's usage report for ``period``: CSV, or an HTML page with a daily-usage chart.

    Raises:
        CustomerNotFoundError; BillingError: the period has no invoice for the customer's payer yet.
    """
    billing = BillingStore(store)
    book = await billing.book()
    if customer not in book.customers:
        msg = f"no customer {customer!r}; `meterd customers list` shows them"
        raise CustomerNotFoundError(msg)
    payer = book.payer_of(customer)
    invoices = await period_invoices(store, period, payer)
    if not invoices:
        msg = f"no invoice for {payer} in {period.label}; run `meterd bill run --period {period.label}`"
        raise BillingError(msg)
    record = invoices[0]
    rows = [
        row
        for row in usage_rows(record.lines, record.number or f"draft {record.id}")
        if customer in {payer, row.customer}
    ]
    if fmt == "csv":
        return usage_csv(rows)
    reads = await _device_reads(billing, {row.equipment_id for row in rows}, period)
    name = book.customers[customer].display_name
    chart = await asyncio.to_thread(usage_chart, daily_usage(reads, period), f"{name}: pages per day")
    return usage_html(customer=name, period=period, rows=rows, chart_png=chart, seller=settings.billing.seller.name)


async def _device_reads(billing: BillingStore, devices: set[str], period: Period) -> pd.DataFrame:
    ids = await billing.device_ids()
    names = {ident: key for key, ident in ids.items() if key in devices}
    since = utc_midnight(period.start) - timedelta(days=1)
    until = utc_midnight(period.end)
    reads = await billing.reads_frame(since, until, ["total", "mono", "color", "copy_total", "print_total"])
    reads = reads[reads["device"].isin(list(names))]
    return reads.assign(device=reads["device"].map(names), meter=reads["meter"].astype(str))
