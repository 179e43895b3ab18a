"""Receivables worked by hand: instalment splits, what is late and since when, reminder levels and text."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing.invoicing import BillingError
from billing.receivables import Instalment, reminder_level, reminder_text, split, standing

D = Decimal


def test_a_split_rounds_each_part_to_the_currency_and_the_last_takes_the_rest() -> None:
    assert split(D("100.00"), 3, date(2026, 12, 1), 30, "EUR") == [
        Instalment(date(2026, 12, 1), D("33.33")), Instalment(date(2026, 12, 31), D("33.33")),
        Instalment(date(2027, 1, 30), D("33.34")),
    ]  # fmt: skip
    assert [p.amount for p in split(D("1000"), 3, date(2026, 12, 1), 30, "JPY")] == [D(333), D(333), D(334)]
    with pytest.raises(BillingError, match="at least 2 parts"):
        split(D("100.00"), 1, date(2026, 12, 1), 30, "EUR")


def _account(paid: str, as_of: date, plan: list[Instalment] | None = None):  # type: ignore[no-untyped-def]
    return standing(invoice_id=1, number="INV-000001", customer="ACME", currency="EUR", total=D("184.21"),
                    due_date=date(2026, 11, 15), paid=D(paid), plan=plan or [], as_of=as_of)  # fmt: skip


def test_without_a_plan_the_whole_open_amount_is_late_once_the_due_date_has_passed() -> None:
    on_time = _account("0", date(2026, 11, 15))  # the due date itself is not late
    assert (on_time.open, on_time.overdue, on_time.days_overdue) == (D("184.21"), 0, 0)
    late = _account("100.00", date(2026, 11, 20))
    # 184.21 - 100.00 = 84.21 open, all of it late since 15 Nov: 5 days.
    assert (late.open, late.overdue, late.overdue_since, late.days_overdue) == (
        D("84.21"), D("84.21"), date(2026, 11, 15), 5)  # fmt: skip


def test_with_a_plan_only_past_instalments_are_late_and_payments_cover_the_earliest_first() -> None:
    plan = [Instalment(date(2026, 12, 1), D("61.40")), Instalment(date(2026, 12, 31), D("61.40")),
            Instalment(date(2027, 1, 30), D("61.41"))]  # fmt: skip  # the whole 184.21
    # 5 Jan: two instalments are due (122.80); 70.00 paid covers the first and 8.60 of the second.
    account = _account("70.00", date(2027, 1, 5), plan)
    assert (account.overdue, account.overdue_since, account.days_overdue) == (D("52.80"), date(2026, 12, 31), 5)
    assert account.open == D("114.21")
    assert _account("122.80", date(2027, 1, 5), plan).overdue == 0


def test_reminder_levels_and_the_notice_say_what_is_owed() -> None:
    assert [reminder_level(days, [7, 21, 35]) for days in (0, 6, 7, 20, 21, 40)] == [0, 0, 1, 1, 2, 3]
    text = reminder_text(_account("100.00", date(2026, 11, 30)), 2, issue_date=date(2026, 11, 1),
                         due_date=date(2026, 11, 15), contact="Petra Kaufmann", seller="Print Partner GmbH",
                         iban="DE89370400440532013000")  # fmt: skip
    for expected in ("reminder 2 for invoice INV-000001", "Dear Petra Kaufmann", "to DE89370400440532013000",
                     "84.21 EUR of it is still open after our earlier reminder", "was due on 2026-11-15"):  # fmt: skip
        assert expected in text, expected


def test_a_plan_made_after_a_payment_covers_what_was_open_then() -> None:
    # 100.00 paid, then 84.21 planned as 42.11 (10 Dec) + 42.10 (9 Jan): on 20 Dec, 42.11 is late, not 0.
    plan = [Instalment(date(2026, 12, 10), D("42.11")), Instalment(date(2027, 1, 9), D("42.10"))]
    account = _account("100.00", date(2026, 12, 20), plan)
    assert (account.overdue, account.overdue_since, account.days_overdue) == (D("42.11"), date(2026, 12, 10), 10)
