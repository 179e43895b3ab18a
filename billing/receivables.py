"""What is owed and since when: payments against invoices, instalment plans, overdue standings, reminder levels.

Pure: the store loads invoices, payments and plans; these functions say what stands open.
Payments are applied to an invoice's instalments in order of their due dates; an invoice
with a plan is overdue only for instalments past due and unpaid, one without for its whole
open amount once its due date has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from jinja2 import Environment, StrictUndefined

from billing.invoicing import BillingError
from billing.rating import money

ZERO: Final = Decimal(0)
REMINDER_TEMPLATE: Final = """\
{{ customer }}: reminder {{ level }} for invoice {{ number }} of {{ issue_date }}

Dear {{ contact }},

our invoice {{ number }} of {{ issue_date }} over {{ total }} {{ currency }} was due on {{ due_date }}.
{{ overdue }} {{ currency }} of it is still open{% if level > 1 %} after our earlier reminder{% endif %}.
Please transfer it{% if iban %} to {{ iban }}{% endif %}, quoting {{ number }}, or tell us if we have it wrong.

{{ seller }}
"""


@dataclass(frozen=True, slots=True)
class Instalment:
    due: date
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Standing:
    """One finalised invoice's account: what was billed, paid, is open, and how much of it is late."""

    invoice_id: int
    number: str
    customer: str
    currency: str
    total: Decimal
    paid: Decimal
    open: Decimal
    overdue: Decimal
    overdue_since: date | None  # the earliest due date (invoice or instalment) still unpaid
    days_overdue: int


def split(amount: Decimal, parts: int, first_due: date, every_days: int, currency: str) -> list[Instalment]:
    """``amount`` in ``parts`` instalments ``every_days`` apart, rounded to the currency; the last takes the rest.

    Raises:
        BillingError: fewer than two parts, a non-positive amount or interval.
    """
    if parts < 2 or every_days < 1 or amount <= 0:  # noqa: PLR2004 - one part is no plan
        msg = "an instalment plan needs at least 2 parts, at least a day apart, of a positive open amount"
        raise BillingError(msg)
    share = money(amount / parts, currency)
    amounts = [share] * (parts - 1) + [amount - share * (parts - 1)]
    return [Instalment(first_due + timedelta(days=every_days * n), part) for n, part in enumerate(amounts)]


def standing(
    *, invoice_id: int, number: str, customer: str, currency: str, total: Decimal, due_date: date,
    paid: Decimal, plan: list[Instalment], as_of: date,
) -> Standing:  # fmt: skip
    """The invoice's account on ``as_of``."""
    # A plan covers what was open when it was made: the part paid before it stays due on the invoice's date.
    planned = sum((part.amount for part in plan), ZERO)
    schedule = ([Instalment(due_date, total - planned)] if total > planned else []) + list(plan)
    left_to_apply = paid
    overdue, since = ZERO, None
    for instalment in sorted(schedule, key=lambda i: i.due):
        covered = min(instalment.amount, max(left_to_apply, ZERO))
        left_to_apply -= covered
        unpaid = instalment.amount - covered
        if unpaid > 0 and instalment.due < as_of:
            overdue += unpaid
            since = since or instalment.due
    days = (as_of - since).days if since else 0
    return Standing(invoice_id, number, customer, currency, total, paid, total - paid, overdue, since, days)


def reminder_level(days_overdue: int, levels: list[int]) -> int:
    """1 once the first of ``levels`` (days overdue) has passed, 2 at the second …; 0 before the first."""
    return sum(1 for days in sorted(levels) if days_overdue >= days)


def reminder_text(standing: Standing, level: int, *, issue_date: date, due_date: date, contact: str, seller: str,
                  iban: str | None) -> str:  # fmt: skip
    """The reminder notice, from the template (plain text; the dealer's mail or letter tool sends it)."""
    template = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True).from_string(  # noqa: S701 - plain text, not HTML
        REMINDER_TEMPLATE
    )
    return template.render(customer=standing.customer, level=level, number=standing.number, issue_date=issue_date,
                           total=standing.total, currency=standing.currency, due_date=due_date,
                           overdue=standing.overdue, contact=contact, seller=seller, iban=iban)  # fmt: skip
