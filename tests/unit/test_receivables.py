"""Receivables worked by hand: instalment splits, what is late and since when, reminder levels and text."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoicing import BillingError
from billing.receivables import Instalment, Standing, aging, next_reminder_level, reminder_text, split, standing

D = Decimal


def test_a_split_rounds_each_part_to_the_currency_and_the_last_takes_the_rest() -> None:
    assert split(D("100.00"), 3, date(2026, 12, 1), 30, "EUR") == [
        Instalment(date(2026, 12, 1), D("33.33")),
        Instalment(date(2026, 12, 31), D("33.33")),
        Instalment(date(2027, 1, 30), D("33.34")),
    ]
    assert [p.amount for p in split(D("1000"), 3, date(2026, 12, 1), 30, "JPY")] == [D(333), D(333), D(334)]
    with pytest.raises(BillingError, match="at least 2 parts"):
        split(D("100.00"), 1, date(2026, 12, 1), 30, "EUR")


def _account(paid: str, as_of: date, plan: list[Instalment] | None = None):  # type: ignore[no-untyped-def]
    return standing(
        invoice_id=1,
        number="INV-000001",
        customer="ACME",
        currency="EUR",
        total=D("184.21"),
        due_date=date(2026, 11, 15),
        paid=D(paid),
        plan=plan or [],
        as_of=as_of,
    )


def test_without_a_plan_the_whole_open_amount_is_late_once_the_due_date_has_passed() -> None:
    on_time = _account("0", date(2026, 11, 15))  # the due date itself is not late
    assert (on_time.open, on_time.overdue, on_time.days_overdue) == (D("184.21"), 0, 0)
    assert (str(on_time.paid), str(on_time.overdue)) == ("0.00", "0.00")  # as the amounts beside them print
    late = _account("100.00", date(2026, 11, 20))
    # 184.21 - 100.00 = 84.21 open, all of it late since 15 Nov: 5 days.
    assert (late.open, late.overdue, late.overdue_since, late.days_overdue) == (
        D("84.21"),
        D("84.21"),
        date(2026, 11, 15),
        5,
    )


def test_with_a_plan_only_past_instalments_are_late_and_payments_cover_the_earliest_first() -> None:
    plan = [
        Instalment(date(2026, 12, 1), D("61.40")),
        Instalment(date(2026, 12, 31), D("61.40")),
        Instalment(date(2027, 1, 30), D("61.41")),
    ]  # the whole 184.21
    # 5 Jan: two instalments are due (122.80); 70.00 paid covers the first and 8.60 of the second.
    account = _account("70.00", date(2027, 1, 5), plan)
    assert (account.overdue, account.overdue_since, account.days_overdue) == (D("52.80"), date(2026, 12, 31), 5)
    assert account.open == D("114.21")
    assert _account("122.80", date(2027, 1, 5), plan).overdue == 0


def test_reminder_levels_climb_one_at_a_time_from_the_first_one_sent() -> None:
    levels, today = [7, 21, 35], date(2026, 12, 25)
    assert [next_reminder_level(days, levels, [], today) for days in (0, 6, 7, 21, 40)] == [0, 0, 1, 1, 1]
    # The first went out on 20 Dec: level 2 waits 21 - 7 = 14 days from it, however late the invoice is.
    sent = [date(2026, 12, 20)]
    assert next_reminder_level(45, levels, sent, date(2027, 1, 2)) == 0
    assert next_reminder_level(46, levels, sent, date(2027, 1, 3)) == 2
    # Level 3 another 14 days after level 2 was sent; after the last level, nothing more.
    assert next_reminder_level(60, levels, [*sent, date(2027, 1, 3)], date(2027, 1, 17)) == 3
    assert next_reminder_level(99, levels, [*sent, date(2027, 1, 3), date(2027, 1, 17)], date(2027, 3, 1)) == 0


def _notice(account: Standing, level: int, **history: Any) -> str:
    return reminder_text(
        account,
        level,
        as_of=date(2026, 11, 30),
        issue_date=date(2026, 11, 1),
        due_date=date(2026, 11, 15),
        contact="Petra Kaufmann",
        seller="Print Partner GmbH",
        iban="DE89370400440532013000",
        **history,
    )


def test_the_notice_says_what_is_owed_and_speaks_of_earlier_reminders_only_when_there_were_some() -> None:
    first = _notice(_account("100.00", date(2026, 11, 30)), 1, final=True)
    for expected in (
        "final reminder 1 for invoice INV-000001",
        "Dear Petra Kaufmann",
        "to DE89370400440532013000",
        "84.21 EUR of it is still open.\n",
        "was due on 2026-11-15",
    ):
        assert expected in first, expected
    assert "earlier" not in first
    assert "remind" not in first.partition("\n\n")[2]
    second = _notice(_account("100.00", date(2026, 11, 30)), 2, reminded=[date(2026, 11, 23)])
    assert "We reminded you of it on 2026-11-23." in second
    assert "final" not in second


def test_with_a_plan_the_notice_lists_the_instalments_and_tells_overdue_from_open() -> None:
    # 385.63 in three: 128.54 on 1 Nov and 1 Dec, 128.55 on 31 Dec; on 10 Dec two are late: 257.08 of 385.63.
    plan = split(D("385.63"), 3, date(2026, 11, 1), 30, "EUR")
    account = standing(
        invoice_id=1,
        number="INV-000001",
        customer="ACME",
        currency="EUR",
        total=D("385.63"),
        due_date=date(2026, 10, 15),
        paid=D("100.00"),
        plan=plan,
        as_of=date(2026, 12, 10),
    )
    assert (account.overdue, account.open) == (D("157.08"), D("285.63"))
    text = reminder_text(
        account,
        2,
        as_of=date(2026, 12, 10),
        issue_date=date(2026, 10, 1),
        due_date=date(2026, 10, 15),
        contact="Petra Kaufmann",
        seller="Print Partner GmbH",
        iban=None,
        plan=plan,
    )
    for expected in (
        "We agreed that you pay what was open in instalments:\n",
        "  2026-11-01  128.54 EUR  overdue: 28.54 EUR of it unpaid\n",
        "  2026-12-01  128.54 EUR  overdue\n",
        "  2026-12-31  128.55 EUR  not overdue yet\n",
        "157.08 EUR of it is overdue; 285.63 EUR is open in all.",
        "transfer the overdue amount",
    ):
        assert expected in text, expected
    assert "still open" not in text


def test_a_plan_made_after_a_payment_covers_what_was_open_then() -> None:
    # 100.00 paid, then 84.21 planned as 42.11 (10 Dec) + 42.10 (9 Jan): on 20 Dec, 42.11 is late, not 0.
    plan = [Instalment(date(2026, 12, 10), D("42.11")), Instalment(date(2027, 1, 9), D("42.10"))]
    account = _account("100.00", date(2026, 12, 20), plan)
    assert (account.overdue, account.overdue_since, account.days_overdue) == (D("42.11"), date(2026, 12, 10), 10)


def late(days: int, overdue: str, currency: str = "EUR", invoice_id: int = 1) -> Standing:
    amount = D(overdue)
    since = date.fromordinal(date(2026, 12, 1).toordinal() - days) if amount > 0 else None
    return Standing(invoice_id, f"INV-{invoice_id}", "ACME", currency, amount, D(0), amount, amount, since, days)


def test_aging_puts_each_overdue_invoice_in_the_bucket_of_its_days_and_sums_per_currency() -> None:
    standings = [
        late(0, "0.00"),  # not overdue: in no bucket
        late(1, "10.00"),
        late(30, "20.00"),
        late(31, "30.00"),
        late(60, "40.00", "CHF"),
        late(61, "50.00"),
        late(90, "60.00"),
        late(91, "70.00"),
        late(400, "80.50", "CHF"),
        late(61, "0.25", "CHF"),
    ]
    buckets = aging(standings)
    assert [b.label for b in buckets] == ["0\N{EN DASH}30", "31\N{EN DASH}60", "61\N{EN DASH}90", "90+"]
    assert [b.invoices for b in buckets] == [2, 2, 3, 2]
    assert [b.overdue for b in buckets] == [
        {"EUR": D("30.00")},
        {"CHF": D("40.00"), "EUR": D("30.00")},
        {"CHF": D("0.25"), "EUR": D("110.00")},
        {"CHF": D("80.50"), "EUR": D("70.00")},
    ]


def test_with_nothing_overdue_every_bucket_is_still_listed_and_empty() -> None:
    assert [(b.invoices, b.overdue) for b in aging([late(0, "0.00")])] == [(0, {})] * 4


@given(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2000),
            st.decimals(min_value=D("0.01"), max_value=D(100_000), places=2, allow_nan=False),
            st.sampled_from(["EUR", "CHF", "TRY"]),
        ),
        max_size=30,
    )
)
def test_every_overdue_invoice_is_in_exactly_one_bucket_and_no_money_is_lost(
    items: list[tuple[int, Decimal, str]],
) -> None:
    standings = [late(max(days, 1), str(amount), currency, n) for n, (days, amount, currency) in enumerate(items)]
    buckets = aging(standings)
    assert sum(b.invoices for b in buckets) == len(standings)
    for currency in ("EUR", "CHF", "TRY"):
        owed = sum((s.overdue for s in standings if s.currency == currency), D(0))
        bucketed = sum((b.overdue.get(currency, D(0)) for b in buckets), D(0))
        assert bucketed == owed
        assert isinstance(bucketed, Decimal)
