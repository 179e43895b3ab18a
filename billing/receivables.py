"""What is owed and since when: payments against invoices, instalment plans, overdue standings, reminder levels.

Pure: the store loads invoices, payments and plans; these functions say what stands open.
Payments are applied to an invoice's instalments in order of their due dates; an invoice
with a plan is overdue only for instalments past due and unpaid, one without for its whole
open amount once its due date has passed.
"""

# ruff: noqa: RUF001 - full-width Chinese punctuation in the Chinese reminder is correct

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from jinja2 import Environment, StrictUndefined

from billing.documents.i18n import Words
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
# The same sentences in the customers' other languages (billing.documents.i18n.LANGUAGES); amounts and dates
# come formatted for the locale.
_REMINDER_TEMPLATES: Final = {
    "en": REMINDER_TEMPLATE,
    "de": """\
{{ customer }}: {% if final %}letzte {% endif %}Zahlungserinnerung {{ level }} zu Rechnung {{ number }} \
vom {{ issue_date }}

Guten Tag {{ contact }},

unsere Rechnung {{ number }} vom {{ issue_date }} über {{ total }} {{ currency }} war am {{ due_date }} fällig.
{% if plan -%}
Wir haben vereinbart, dass Sie den offenen Betrag in Raten zahlen:
{% for part in plan %}  {{ part.due }}  {{ part.amount }} {{ currency }}  {{ part.state }}
{% endfor -%}
Davon sind {{ overdue }} {{ currency }} überfällig; insgesamt sind {{ open }} {{ currency }} offen.
{%- else -%}
Davon sind noch {{ overdue }} {{ currency }} offen.
{%- endif %}
{% if reminded %}Wir haben Sie am {{ reminded | join(", ") }} daran erinnert.
{% endif -%}
Bitte überweisen Sie {% if plan %}den überfälligen Betrag{% else %}ihn{% endif %}\
{% if iban %} auf {{ iban }}{% endif %} mit dem Verwendungszweck {{ number }}, oder sagen Sie uns, falls wir uns irren.

{{ seller }}
""",
    "fr": """\
{{ customer }} : {% if final %}dernier {% endif %}rappel {{ level }} pour la facture {{ number }} \
du {{ issue_date }}

Bonjour {{ contact }},

notre facture {{ number }} du {{ issue_date }} d'un montant de {{ total }} {{ currency }} \
était due le {{ due_date }}.
{% if plan -%}
Nous avons convenu d'un paiement échelonné du montant restant :
{% for part in plan %}  {{ part.due }}  {{ part.amount }} {{ currency }}  {{ part.state }}
{% endfor -%}
{{ overdue }} {{ currency }} sont échus ; {{ open }} {{ currency }} restent dus au total.
{%- else -%}
{{ overdue }} {{ currency }} restent dus.
{%- endif %}
{% if reminded %}Nous vous l'avons rappelé le {{ reminded | join(", ") }}.
{% endif -%}
Merci de virer {% if plan %}le montant échu{% else %}ce montant{% endif %}{% if iban %} sur {{ iban }}{% endif %} \
en indiquant {{ number }}, ou de nous signaler une erreur.

{{ seller }}
""",
    "tr": """\
{{ customer }}: {{ issue_date }} tarihli {{ number }} numaralı fatura için {% if final %}son {% endif %}\
{{ level }}. ödeme hatırlatması

Sayın {{ contact }},

{{ issue_date }} tarihli {{ total }} {{ currency }} tutarındaki {{ number }} numaralı faturamızın vadesi \
{{ due_date }} idi.
{% if plan -%}
Kalan tutarı taksitle ödemeniz konusunda anlaşmıştık:
{% for part in plan %}  {{ part.due }}  {{ part.amount }} {{ currency }}  {{ part.state }}
{% endfor -%}
Bunun {{ overdue }} {{ currency }} tutarı vadesi geçmiş; toplam açık tutar {{ open }} {{ currency }}.
{%- else -%}
Bunun {{ overdue }} {{ currency }} tutarı hâlâ ödenmedi.
{%- endif %}
{% if reminded %}Size {{ reminded | join(", ") }} tarihinde hatırlatmıştık.
{% endif -%}
Lütfen {% if plan %}vadesi geçen tutarı{% else %}bu tutarı{% endif %}{% if iban %} {{ iban }} hesabına{% endif %} \
{{ number }} açıklamasıyla havale ediniz veya bir hata varsa bize bildiriniz.

{{ seller }}
""",
    "zh-Hans": """\
{{ customer }}：{{ issue_date }} 发票 {{ number }} 的{% if final %}最后{% endif %}第 {{ level }} 次付款提醒

{{ contact }}，您好：

我们于 {{ issue_date }} 开具的发票 {{ number }}（金额 {{ total }} {{ currency }}）已于 {{ due_date }} 到期。
{% if plan -%}
我们约定您分期支付未付金额：
{% for part in plan %}  {{ part.due }}  {{ part.amount }} {{ currency }}  {{ part.state }}
{% endfor -%}
其中 {{ overdue }} {{ currency }} 已逾期；共计 {{ open }} {{ currency }} 未付。
{%- else -%}
其中 {{ overdue }} {{ currency }} 仍未支付。
{%- endif %}
{% if reminded %}我们已于 {{ reminded | join("、") }} 提醒过您。
{% endif -%}
请将{% if plan %}逾期金额{% else %}该款项{% endif %}{% if iban %}转账至 {{ iban }}{% endif %}，\
并注明 {{ number }}；如有错误，请告知我们。

{{ seller }}
""",
}
_STATES: Final = {
    "de": ("bezahlt", "noch nicht fällig", "überfällig", "überfällig: davon {unpaid} {currency} unbezahlt"),
    "fr": ("payée", "pas encore échue", "échue", "échue : {unpaid} {currency} impayés"),
    "tr": ("ödendi", "vadesi gelmedi", "vadesi geçti", "vadesi geçti: {unpaid} {currency} ödenmedi"),
    "zh-Hans": ("已付", "未到期", "已逾期", "已逾期：其中 {unpaid} {currency} 未付"),
}


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


@dataclass(frozen=True, slots=True)
class AgeBucket:
    """Overdue invoices whose days overdue fall in [low, high] (``high`` None: no upper end)."""

    label: str  # "0-30" (with an en dash) up to "90+"
    low: int
    high: int | None
    invoices: int
    overdue: dict[str, Decimal]  # currency -> amount


AGE_BUCKETS: Final = ((0, 30), (31, 60), (61, 90), (91, None))


def aging(standings: Iterable[Standing], bounds: Sequence[tuple[int, int | None]] = AGE_BUCKETS) -> list[AgeBucket]:
    """Overdue money by days overdue (0-30, 31-60, 61-90, 90+), per currency, every bucket listed.

    A grouping of the standings' own figures (``Standing.overdue``); nothing is recomputed.
    An invoice with nothing overdue is in no bucket.
    """
    late = [s for s in standings if s.overdue > 0]
    buckets = []
    for low, high in bounds:
        inside = [s for s in late if low <= s.days_overdue and (high is None or s.days_overdue <= high)]
        sums: dict[str, Decimal] = {}
        for one in inside:
            sums[one.currency] = sums.get(one.currency, ZERO) + one.overdue
        label = f"{low}\N{EN DASH}{high}" if high is not None else f"{low - 1}+"
        buckets.append(AgeBucket(label, low, high, len(inside), dict(sorted(sums.items()))))
    return buckets


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
    *,
    invoice_id: int,
    number: str,
    customer: str,
    currency: str,
    total: Decimal,
    due_date: date,
    paid: Decimal,
    plan: list[Instalment],
    as_of: date,
) -> Standing:
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


def reminder_text(
    standing: Standing,
    level: int,
    *,
    as_of: date,
    issue_date: date,
    due_date: date,
    contact: str,
    seller: str,
    iban: str | None,
    plan: Sequence[Instalment] = (),
    reminded: Sequence[date] = (),
    final: bool = False,
    language: str = "en",
) -> str:
    """The reminder notice on ``as_of``, from the template (plain text; the dealer's mail or letter tool sends it).

    ``plan``: the invoice's instalments, each listed as paid, overdue or still to come; ``reminded``: when
    earlier reminders were sent (mentioned only then); ``final``: the last level; ``language``: the customer's
    (English keeps its ISO dates and plain amounts; the others get their locale's formats).
    """
    words = Words(language)
    local = words.language != "en"
    day = words.date if local else str
    amount = words.money if local else str
    planned = {id(part) for part in plan}
    parts = [
        {
            "due": day(part.due),
            "amount": amount(part.amount),
            "state": _state(part, unpaid, as_of, standing.currency, words.language),
        }
        for part, unpaid in _unpaid(standing.total, due_date, standing.paid, plan)
        if id(part) in planned
    ]
    template = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True).from_string(  # noqa: S701 - plain text, not HTML
        _REMINDER_TEMPLATES[words.language]
    )
    return template.render(
        customer=standing.customer,
        level=level,
        number=standing.number,
        issue_date=day(issue_date),
        total=amount(standing.total),
        currency=standing.currency,
        due_date=day(due_date),
        overdue=amount(standing.overdue),
        open=amount(standing.open),
        contact=contact,
        seller=seller,
        iban=iban,
        plan=parts,
        reminded=[day(sent) for sent in reminded],
        final=final,
    )


def _state(part: Instalment, unpaid: Decimal, as_of: date, currency: str, language: str = "en") -> str:
    paid, not_yet, overdue, partly = _STATES.get(
        language, ("paid", "not overdue yet", "overdue", "overdue: {unpaid} {currency} of it unpaid")
    )
    if unpaid == 0:
        return paid
    if part.due >= as_of:
        return not_yet
    money = Words(language).money(unpaid) if language != "en" else str(unpaid)
    return overdue if unpaid == part.amount else partly.format(unpaid=money, currency=currency)
