"""What is owed and since when: payments against invoices, instalment plans, overdue standings, reminder levels.

Pure: the store loads invoices, payments and plans; these functions say what stands open.
Payments are applied to an invoice's instalments in order of their due dates; an invoice
with a plan is overdue only for instalments past due and unpaid, one without for its whole
open amount once its due date has passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from jinja2 import Environment, StrictUndefined

from billing.invoicing import BillingError
from billing.rating import money

ZERO: Final = Decimal(0)
# Each sentence must be true about this invoice's history: an earlier reminder is named only when one was sent
# (with its date), a plan only when there is one, and what is overdue apart from what is open in all.
REMINDER_TEMPLATE: Final = """\
{{ customer }}: {% if final %}final {% endif %}reminder {{ level }} for invoice {{ number }} of {{ issue_date }}

Dear {{ contact }},

our invoice {{ number }} of {{ issue_date }} over {{ total }} {{ currency }} was due on {{ due_date }}.
{% if plan -%}
We agreed that you pay what was open in instalments:
{% for part in plan %}  {{ part.due }}  {{ part.amount }} {{ currency }}  {{ part.state }}
{% endfor -%}
{{ overdue }} {{ currency }} of it is overdue; {{ open }} {{ currency }} is open in all.
{%- else -%}
{{ overdue }} {{ currency }} of it is still open.
{%- endif %}
{% if reminded %}We reminded you of it on {{ reminded | join(", ") }}.
{% endif -%}
Please transfer {% if plan %}the overdue amount{% else %}it{% endif %}{% if iban %} to {{ iban }}{% endif %}, \
quoting {{ number }}, or tell us if we have it wrong.

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


def _unpaid(
    total: Decimal, due_date: date, paid: Decimal, plan: Sequence[Instalment]
) -> list[tuple[Instalment, Decimal]]:
    """Every part of the invoice's schedule with what is unpaid of it; payments cover the earliest first."""
    # A plan covers what was open when it was made: the part paid before it stays due on the invoice's date.
    planned = sum((part.amount for part in plan), ZERO)
    schedule = ([Instalment(due_date, total - planned)] if total > planned else []) + list(plan)
    left_to_apply, out = paid, []
    for instalment in sorted(schedule, key=lambda i: i.due):
        covered = min(instalment.amount, max(left_to_apply, ZERO))
        left_to_apply -= covered
        out.append((instalment, instalment.amount - covered))
    return out


def standing(
    *, invoice_id: int, number: str, customer: str, currency: str, total: Decimal, due_date: date,
    paid: Decimal, plan: list[Instalment], as_of: date,
) -> Standing:  # fmt: skip
    """The invoice's account on ``as_of``."""
    overdue, since = ZERO, None
    for instalment, unpaid in _unpaid(total, due_date, paid, plan):
        if unpaid > 0 and instalment.due < as_of:
            overdue += unpaid
            since = since or instalment.due
    days = (as_of - since).days if since else 0
    # Every amount in the currency's minor unit: nothing paid prints "0.00" beside "184.21", not "0".
    total, paid, open_amount, overdue = (money(amount, currency) for amount in (total, paid, total - paid, overdue))
    return Standing(invoice_id, number, customer, currency, total, paid, open_amount, overdue, since, days)


def next_reminder_level(days_overdue: int, levels: Sequence[int], sent: Sequence[date], as_of: date) -> int:
    """The level of the reminder due on ``as_of``, or 0 when none is.

    ``levels``: days overdue of each level; ``sent``: when the reminders so far went out, in order.
    Levels climb one at a time from the first one sent: the first reminder is level 1 however late it
    goes out, and the next waits as long after the last one sent as the levels are apart, so a
    customer is never sent level 3 without having had 1 and 2.
    """
    steps = sorted(levels)
    level = len(sent) + 1
    if level > len(steps) or days_overdue < steps[0]:
        return 0
    if sent and (as_of - max(sent)).days < steps[level - 1] - steps[level - 2]:
        return 0
    return level


def reminder_text(standing: Standing, level: int, *, as_of: date, issue_date: date, due_date: date, contact: str,
                  seller: str, iban: str | None, plan: Sequence[Instalment] = (), reminded: Sequence[date] = (),
                  final: bool = False) -> str:  # fmt: skip
    """The reminder notice on ``as_of``, from the template (plain text; the dealer's mail or letter tool sends it).

    ``plan``: the invoice's instalments, each listed as paid, overdue or still to come; ``reminded``: when
    earlier reminders were sent (mentioned only then); ``final``: the last level.
    """
    planned = {id(part) for part in plan}
    parts = [
        {"due": part.due, "amount": part.amount, "state": _state(part, unpaid, as_of, standing.currency)}
        for part, unpaid in _unpaid(standing.total, due_date, standing.paid, plan)
        if id(part) in planned
    ]
    template = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True).from_string(  # noqa: S701 - plain text, not HTML
        REMINDER_TEMPLATE
    )
    return template.render(customer=standing.customer, level=level, number=standing.number, issue_date=issue_date,
                           total=standing.total, currency=standing.currency, due_date=due_date,
                           overdue=standing.overdue, open=standing.open, contact=contact, seller=seller, iban=iban,
                           plan=parts, reminded=[str(day) for day in reminded], final=final)  # fmt: skip


def _state(part: Instalment, unpaid: Decimal, as_of: date, currency: str) -> str:
    if unpaid == 0:
        return "paid"
    if part.due >= as_of:
        return "not overdue yet"
    return "overdue" if unpaid == part.amount else f"overdue: {unpaid} {currency} of it unpaid"
