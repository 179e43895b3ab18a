"""The invoice life cycle without a database: states, overrides, numbers, dates, credit notes."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.invoicing import BillingError, InvoiceLine, totals
from billing.lifecycle import (
    CREDIT_NOTE,
    DRAFT,
    FINALIZED,
    INVOICE,
    VOIDED,
    Invoice,
    InvoiceStateError,
    Series,
    check_issue_window,
    check_month_order,
    finalise,
    replaces_stored,
    take_number,
    void,
)
from billing.periods import Period
from daemon.kernel.errors import MeterdError

OCTOBER = Period(date(2026, 10, 1), date(2026, 11, 1))
ISSUED = date(2026, 11, 3)
SNAPSHOT = {"payment_terms_days": 14}


def line(amount: str, rate: str = "0.19", *, held: bool = False, quantity: str = "1") -> InvoiceLine:
    return InvoiceLine(
        "usage",
        False,
        "mono pages",
        "ACME",
        "C1",
        "KM1",
        "mono",
        None,
        OCTOBER,
        Decimal(quantity),
        Decimal(amount),
        Decimal(rate),
        held=held,
    )


def draft(*lines: InvoiceLine, status: str = DRAFT, kind: str = INVOICE) -> Invoice:
    sums = totals(lines, "EUR")
    return Invoice(
        id=7,
        kind=kind,
        status=status,
        customer="ACME",
        period=OCTOBER,
        currency="EUR",
        net=sums.net,
        tax=sums.tax,
        total=sums.total,
        number=None,
        issue_date=None,
        due_date=None,
        snapshot=None,
        credited_invoice_id=None,
        finalized_by=None,
        hold_override=None,
        void_reason=None,
        lines=lines,
    )


def test_a_draft_is_numbered_dated_and_due_after_the_customers_terms() -> None:
    done = finalise(
        draft(line("100.00")), Series("INV", 6, 42, date(2026, 11, 2)), issue_date=ISSUED, snapshot=SNAPSHOT, actor="al"
    )
    final = done.invoice
    assert (final.status, final.number, done.number.value) == (FINALIZED, "INV-000042", 42)
    assert (final.issue_date, final.due_date) == (ISSUED, date(2026, 11, 17))
    assert (final.finalized_by, final.hold_override, done.overridden) == ("al", None, [])
    assert (done.series.next_number, done.series.last_issue) == (43, ISSUED)


def test_the_error_root_is_meterds() -> None:
    assert issubclass(InvoiceStateError, BillingError)
    assert issubclass(InvoiceStateError, MeterdError)


@pytest.mark.parametrize("status", [FINALIZED, VOIDED])
def test_only_a_draft_is_finalised(status: str) -> None:
    with pytest.raises(InvoiceStateError, match=f"invoice 7 is {status}; only a draft can be finalised"):
        finalise(draft(line("1.00"), status=status), Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al")


@pytest.mark.parametrize("override", [None, ""])
def test_a_held_line_blocks_finalising_unless_an_override_gives_a_reason(override: str | None) -> None:
    held = draft(line("10.00"), line("900.00", held=True))
    with pytest.raises(InvoiceStateError, match=r"has 1 blocking item\(s\): HELD: mono pages \(900.00\)"):
        finalise(held, Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al", override=override)
    done = finalise(held, Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al", override="meter photo checked")
    assert done.invoice.hold_override == "meter photo checked"
    assert [item.split(":")[0] for item in done.overridden] == ["HELD"]


def test_an_override_without_blocking_items_is_not_kept() -> None:
    done = finalise(draft(line("5.00")), Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al", override="x")
    assert done.invoice.hold_override is None
    assert done.invoice.due_date == ISSUED  # no terms in the snapshot: due on issue


def test_totals_that_do_not_add_up_from_the_lines_are_refused() -> None:
    tampered = replace(draft(line("100.00")), total=Decimal("120.00"))
    with pytest.raises(InvoiceStateError, match=r"totals 100.00/19.00/120.00 do not match its lines"):
        finalise(tampered, Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al")


def test_an_issue_date_before_the_series_latest_is_refused_and_the_same_day_is_not() -> None:
    series = Series("INV", 4, 9, ISSUED)
    with pytest.raises(BillingError, match="before 2026-11-03, the latest issue date in series INV"):
        finalise(draft(line("1.00")), series, issue_date=ISSUED - timedelta(days=1), snapshot={}, actor="al")
    assert finalise(draft(line("1.00")), series, issue_date=ISSUED, snapshot={}, actor="al").number.text == "INV-0009"


def test_the_issue_date_stays_within_the_window_of_today() -> None:
    today = date(2026, 12, 4)
    check_issue_window(today + timedelta(days=30), today=today, window_days=30)
    check_issue_window(today - timedelta(days=30), today=today, window_days=30)
    with pytest.raises(BillingError, match=r"issue date 1970-01-01: more than 30 days from today \(2026-12-04\)"):
        check_issue_window(date(1970, 1, 1), today=today, window_days=30)
    with pytest.raises(BillingError, match=r"change billing\.issue_date_window_days"):
        check_issue_window(today + timedelta(days=31), today=today, window_days=30)


def test_voiding_keeps_the_number_and_issues_a_credit_note_due_at_once() -> None:
    final = finalise(draft(line("100.00")), Series("INV", 4, 5), issue_date=ISSUED, snapshot=SNAPSHOT, actor="al")
    done = void(final.invoice, Series("CN", 4, 1), issue_date=date(2026, 11, 20), reason="wrong meter", actor="bo")
    assert (done.invoice.status, done.invoice.number, done.invoice.void_reason) == (VOIDED, "INV-0005", "wrong meter")
    credit = done.credit_note
    assert (credit.kind, credit.status, credit.number, credit.credited_invoice_id) == (
        CREDIT_NOTE,
        FINALIZED,
        "CN-0001",
        7,
    )
    assert credit.issue_date == credit.due_date == date(2026, 11, 20)
    assert credit.snapshot == SNAPSHOT
    assert credit.lines[0].description == "credit: mono pages"


def test_a_credit_note_is_not_held_to_its_series_date_order() -> None:
    final = finalise(draft(line("1.00")), Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al")
    earlier = void(
        final.invoice, Series("CN", 4, 3, ISSUED), issue_date=ISSUED - timedelta(days=2), reason="r", actor="b"
    )
    assert earlier.number.text == "CN-0003"


@pytest.mark.parametrize(("status", "kind"), [(DRAFT, INVOICE), (VOIDED, INVOICE), (FINALIZED, CREDIT_NOTE)])
def test_only_a_finalised_invoice_is_voided(status: str, kind: str) -> None:
    with pytest.raises(InvoiceStateError, match=f"invoice 7 is a {status} {kind}; only finalised invoices are voided"):
        void(draft(line("1.00"), status=status, kind=kind), Series("CN", 4), issue_date=ISSUED, reason="r", actor="b")


def test_months_are_billed_in_order_and_only_a_draft_is_redrawn() -> None:
    check_month_order("ACME", None, OCTOBER)
    with pytest.raises(
        BillingError, match=r"ACME still has a draft for 2026-09; finalise or void it before billing 2026-10"
    ):
        check_month_order("ACME", date(2026, 9, 1), OCTOBER)
    assert [replaces_stored(status) for status in (None, DRAFT, FINALIZED, VOIDED)] == [True, True, False, False]


# -- properties -------------------------------------------------------------------------------

amounts = st.decimals(min_value=Decimal(-5000), max_value=Decimal(5000), places=2, allow_nan=False)
rates = st.sampled_from([Decimal(0), Decimal("0.07"), Decimal("0.19"), Decimal("0.20")])
quantities = st.decimals(min_value=Decimal(0), max_value=Decimal(100_000), places=0, allow_nan=False)
any_lines = st.lists(
    st.builds(
        lambda amount, rate, quantity: line(str(amount), str(rate), quantity=str(quantity)), amounts, rates, quantities
    ),
    max_size=12,
)
days = st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31))


@given(steps=st.lists(st.integers(min_value=-40, max_value=40), min_size=1, max_size=30), first=days)
def test_numbers_rise_by_one_within_a_series_and_dates_never_go_back(steps: list[int], first: date) -> None:
    series, numbers, issued, day = Series("INV", 5, 1), [], [], first
    for step in steps:
        day += timedelta(days=step)
        try:
            done = finalise(draft(line("1.00")), series, issue_date=day, snapshot={}, actor="al")
        except BillingError:
            assert series.last_issue is not None
            assert day < series.last_issue  # refused only for a date before the series' latest
            continue
        series = done.series
        numbers.append(done.number.value)
        issued.append(day)
        assert done.invoice.number == f"INV-{done.number.value:05d}"
    assert numbers == list(range(1, len(numbers) + 1))
    assert issued == sorted(issued)


@given(issued=days, terms=st.integers(min_value=0, max_value=365))
def test_the_due_date_is_the_issue_date_plus_the_terms(issued: date, terms: int) -> None:
    done = finalise(
        draft(line("1.00")), Series("INV", 4), issue_date=issued, snapshot={"payment_terms_days": terms}, actor="al"
    )
    assert done.invoice.due_date == issued + timedelta(days=terms)
    assert (done.invoice.due_date - issued).days == terms


@given(lines=any_lines, override=st.one_of(st.none(), st.text(max_size=5)), on=days)
def test_nothing_leaves_the_voided_state(lines: list[InvoiceLine], override: str | None, on: date) -> None:
    voided = draft(*lines, status=VOIDED)
    with pytest.raises(InvoiceStateError):
        finalise(voided, Series("INV", 4), issue_date=on, snapshot={}, actor="al", override=override)
    with pytest.raises(InvoiceStateError):
        void(voided, Series("CN", 4), issue_date=on, reason="again", actor="al")


@given(lines=any_lines)
def test_a_credit_note_mirrors_the_voided_invoice_line_by_line_and_in_its_totals(lines: list[InvoiceLine]) -> None:
    final = finalise(draft(*lines), Series("INV", 4), issue_date=ISSUED, snapshot={}, actor="al")
    credit = void(final.invoice, Series("CN", 4), issue_date=ISSUED, reason="r", actor="al").credit_note
    assert len(credit.lines) == len(lines)
    for original, mirrored in zip(lines, credit.lines, strict=True):
        assert isinstance(mirrored.amount, Decimal)
        assert (mirrored.amount, mirrored.quantity) == (-original.amount, -original.quantity)
        assert (mirrored.tax_rate, mirrored.service, mirrored.device) == (original.tax_rate, original.service, "KM1")
    assert (credit.net, credit.tax, credit.total) == (-final.invoice.net, -final.invoice.tax, -final.invoice.total)
    again = totals(credit.lines, "EUR")
    assert (again.net, again.total) == (credit.net, credit.total)
    assert all(isinstance(value, Decimal) for value in (credit.net, credit.tax, credit.total))


def test_taking_a_number_advances_the_series_without_the_store() -> None:
    first, series = take_number(Series("X", 3), date(2026, 1, 5))
    second, series = take_number(series, date(2026, 1, 5))
    assert [first.text, second.text] == ["X-001", "X-002"]
    assert series == Series("X", 3, 3, date(2026, 1, 5))
