"""The invoice life cycle as rules over plain data: draft -> finalised -> voided, with a credit note.

- Only a draft is finalised, and only without blocking items (held lines, missing reads,
  meters a device cannot supply) unless an override gives the reason; its totals must add
  up from its lines again. It takes the next number of its series, formatted
  ``<series>-<number>`` with leading zeros, and an issue date no earlier than the series'
  latest (numbers and dates run in the same order); it is due ``payment_terms_days`` later.
- Only a finalised invoice is voided. It keeps its number; a credit note of the next number
  of the credit-note series carries its lines and totals negated, due on its issue date.
- A month's draft is redrawn on every billing run until it is finalised; then the month is
  left alone (late reads go to the next). A payer's months are billed in order.
- Nothing leaves the voided state: a voided invoice is neither finalised nor voided again.

Pure functions: the store loads an :class:`Invoice` and the series' position, calls these,
and persists what they return in the same transaction that took the number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from billing.invoicing import BillingError, InvoiceLine, blocking_items, totals
from billing.periods import Period

DRAFT: Final = "draft"
FINALIZED: Final = "finalized"
VOIDED: Final = "voided"
INVOICE: Final = "invoice"
CREDIT_NOTE: Final = "credit_note"


class InvoiceStateError(BillingError):
    """An invoice action its state does not allow (finalising a finalised one, voiding a draft …)."""


@dataclass(frozen=True, slots=True)
class Invoice:
    """An invoice or credit note as stored: its state, totals, number and lines."""

    id: int
    kind: str
    status: str
    customer: str
    period: Period
    currency: str
    net: Decimal
    tax: Decimal
    total: Decimal
    number: str | None
    issue_date: date | None
    due_date: date | None
    snapshot: dict[str, Any] | None
    credited_invoice_id: int | None
    finalized_by: str | None
    hold_override: str | None  # why it was finalised despite blocking items (held lines, missing reads …)
    void_reason: str | None
    lines: tuple[InvoiceLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Series:
    """A numbering series where it stands: the number it gives next and its latest issue date."""

    name: str
    digits: int
    next_number: int = 1
    last_issue: date | None = None


@dataclass(frozen=True, slots=True)
class Number:
    series: str
    value: int
    text: str


@dataclass(frozen=True, slots=True)
class Finalised:
    invoice: Invoice  # numbered, dated, frozen
    number: Number
    series: Series  # the series after this number
    overridden: list[str] = field(default_factory=list)  # the blocking items the override let through


@dataclass(frozen=True, slots=True)
class Voided:
    invoice: Invoice  # the voided invoice, its number kept
    credit_note: Invoice  # id 0 until stored
    number: Number
    series: Series


def check_month_order(payer: str, earlier_draft: date | None, month: Period) -> None:
    """Refuse a draft while the payer still has a draft for an earlier month (months are billed in order)."""
    if earlier_draft is not None:
        msg = (
            f"customer {payer} still has a draft for {earlier_draft:%Y-%m}; finalise or void it before billing "
            f"{month.label} (months are billed in order)"
        )
        raise BillingError(msg)


def replaces_stored(status: str | None) -> bool:
    """Whether a new draft takes the place of the month's stored invoice: only a draft is redrawn."""
    return status is None or status == DRAFT


def number_text(series: str, number: int, digits: int) -> str:
    return f"{series}-{number:0{digits}d}"


def due_date(issue_date: date, terms_days: int) -> date:
    return issue_date + timedelta(days=terms_days)


def check_issue_window(issue_date: date, *, today: date, window_days: int) -> None:
    """Refuse an issue date more than ``window_days`` from today (1970 typed by mistake)."""
    if abs((issue_date - today).days) > window_days:
        msg = (
            f"issue date {issue_date}: more than {window_days} days from today ({today}); "
            "use a date near today, or change billing.issue_date_window_days"
        )
        raise BillingError(msg)


def take_number(series: Series, issue_date: date, *, in_date_order: bool = True) -> tuple[Number, Series]:
    """The series' next number for a document issued on ``issue_date``, and the series after it.

    Raises:
        BillingError: ``in_date_order`` and the date is before the series' latest issue date.
    """
    if in_date_order and series.last_issue is not None and issue_date < series.last_issue:
        msg = (
            f"issue date {issue_date}: before {series.last_issue}, the latest issue date in series {series.name}; "
            "numbers and dates must run in the same order"
        )
        raise BillingError(msg)
    number = Number(series.name, series.next_number, number_text(series.name, series.next_number, series.digits))
    last = issue_date if series.last_issue is None else max(series.last_issue, issue_date)
    return number, replace(series, next_number=series.next_number + 1, last_issue=last)


def check_totals(invoice: Invoice) -> None:
    """Refuse an invoice whose stored totals do not add up from its lines again."""
    again = totals(invoice.lines, invoice.currency)
    net, tax, total = invoice.net, invoice.tax, invoice.total
    if (again.net, again.tax, again.total) != (net, tax, total):
        msg = (
            f"invoice {invoice.id}: totals {net}/{tax}/{total} do not match its lines "
            f"({again.net}/{again.tax}/{again.total}); run `meterd bill run` for its period again"
        )
        raise InvoiceStateError(msg)


def finalise(
    invoice: Invoice,
    series: Series,
    *,
    issue_date: date,
    snapshot: dict[str, Any],
    actor: str,
    override: str | None = None,
) -> Finalised:
    """Number and freeze a draft; refused while it has blocking items, unless ``override`` says why.

    The payment terms are the snapshot's ``payment_terms_days`` (0 when it has none).

    Raises:
        InvoiceStateError: not a draft, blocking items without an override (an empty reason is
            none), or totals that do not add up from the lines.
        BillingError: an issue date before the series' latest.
    """
    if invoice.status != DRAFT:
        msg = f"invoice {invoice.id} is {invoice.status}; only a draft can be finalised"
        raise InvoiceStateError(msg)
    blocking = blocking_items(invoice.lines)
    if blocking and not override:
        msg = (
            f"invoice {invoice.id} has {len(blocking)} blocking item(s): {'; '.join(blocking)}. "
            "Fix them and run `meterd bill run` again, or finalise with --override REASON"
        )
        raise InvoiceStateError(msg)
    check_totals(invoice)
    number, after = take_number(series, issue_date)
    final = replace(
        invoice,
        status=FINALIZED,
        number=number.text,
        issue_date=issue_date,
        due_date=due_date(issue_date, int(snapshot.get("payment_terms_days", 0))),
        snapshot=snapshot,
        finalized_by=actor,
        hold_override=override if blocking else None,
    )
    return Finalised(final, number, after, blocking)


def credit_lines(lines: Sequence[InvoiceLine]) -> tuple[InvoiceLine, ...]:
    """The lines of a credit note: each line of the invoice with its quantity and amount negated."""
    return tuple(
        replace(line, amount=-line.amount, quantity=-line.quantity, description=f"credit: {line.description}")
        for line in lines
    )


def void(invoice: Invoice, series: Series, *, issue_date: date, reason: str, actor: str) -> Voided:
    """Void a finalised invoice: it keeps its number; a credit note with the negated lines cancels it.

    The credit note is not held to the series' date order (it is issued today, as before).

    Raises:
        InvoiceStateError: a draft, a voided invoice, or a credit note.
    """
    if invoice.kind != INVOICE or invoice.status != FINALIZED:
        msg = f"invoice {invoice.id} is a {invoice.status} {invoice.kind}; only finalised invoices are voided"
        raise InvoiceStateError(msg)
    number, after = take_number(series, issue_date, in_date_order=False)
    credit = replace(
        invoice,
        id=0,
        kind=CREDIT_NOTE,
        status=FINALIZED,
        net=-invoice.net,
        tax=-invoice.tax,
        total=-invoice.total,
        number=number.text,
        issue_date=issue_date,
        due_date=issue_date,
        credited_invoice_id=invoice.id,
        finalized_by=actor,
        hold_override=None,
        void_reason=None,
        lines=credit_lines(invoice.lines),
    )
    return Voided(replace(invoice, status=VOIDED, void_reason=reason), credit, number, after)
