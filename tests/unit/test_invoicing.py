"""Invoice lines from the book, worked by hand: base fees in advance, proration, credits, adjustments, refusals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.contracts import ContractError, parse_contract
from billing.customers import CustomerError, parse_customer
from billing.invoicing import (
    Assignment,
    BillingError,
    Book,
    InvoiceLine,
    assemble,
    blocking_items,
    check,
    line_pairs,
    mark_unsupplied,
    rate_jobs,
    reconcile,
    totals,
    unsupplied_meters,
    usage_jobs,
    usage_requests,
)
from billing.periods import Period, PeriodError
from billing.reads import period_usage

D = Decimal
OCT = Period.month(2026, 10)
NOV = Period.month(2026, 11)


def customer(code: str = "ACME", **extra: object) -> dict[str, object]:
    return {
        "code": code,
        "legal_name": f"{code} Ltd",
        "country": "DE",
        "currency": "EUR",
        "address": {"street": "Hauptstr. 1", "city": "Berlin", "country": "DE"},
        "contacts": [{"name": "AP", "email": "ap@example.com", "billing": True}],
    } | extra


def contract(cid: str = "C1", owner: str = "ACME", **version: object) -> dict[str, object]:
    terms = {
        "valid_from": "2026-01-01",
        "currency": "EUR",
        "base_fee": "31.00",
        "tax_rate": "0.20",
        "meters": [{"meter": "mono", "included": 310, "tiers": [{"price": "0.01"}]}],
    }
    return {"id": cid, "customer": owner, "versions": [terms | version]}


def book(
    *assignments: Assignment,
    customers: list[dict[str, object]] | None = None,
    contracts: list[dict[str, object]] | None = None,
) -> Book:
    people = [parse_customer(c) for c in (customers or [customer()])]
    return Book(
        {c.code: c for c in people}, [parse_contract(c) for c in (contracts or [contract()])], list(assignments)
    )


def daily_reads(device: str, per_day: int, first: str = "2026-09-20", days: int = 60) -> pd.DataFrame:
    times = pd.date_range(first, periods=days, freq="D", tz="UTC") + pd.Timedelta(hours=6)
    return pd.DataFrame(
        {
            "row_id": range(days),
            "device": device,
            "meter": "mono",
            "taken_at": times,
            "value": [per_day * i for i in range(days)],
        }
    )


def draft_for(the_book: Book, month: Period, reads: pd.DataFrame, billed: list[InvoiceLine] | None = None):  # type: ignore[no-untyped-def]
    jobs = usage_jobs(the_book, "ACME", [month.end])
    requests = usage_requests(jobs)
    usage = period_usage(reads, requests[["device", "meter", "start", "end"]])
    return assemble(the_book, "ACME", month, rate_jobs(jobs, requests, usage), billed or [])


def test_a_device_added_on_the_17th_pays_its_october_days_and_november_in_advance() -> None:
    the_book = book(Assignment("A", "ACME", date(2026, 10, 17), None))
    draft = draft_for(the_book, OCT, daily_reads("A", 20))
    lines = {(line.kind, line.service.label): line for line in draft.lines}
    # 17-31 Oct is 15 of 31 days: 31.00 x 15/31 = 15.00; November in advance: 31.00.
    assert lines[("base_fee", "2026-10-17..2026-11-01")].amount == D("15.00")
    assert lines[("base_fee", "2026-11")].amount == D("31.00")
    usage = lines[("usage", "2026-10")]
    # 17 Oct 06:00 -> 1 Nov 06:00 = 15 days x 20 = 300 pages; included 310 x 15/31 = 150; 150 x 0.01 = 1.50.
    assert usage.provenance["pages"] == 300
    assert usage.provenance["included"] == 150
    assert usage.amount == D("1.50")
    # net 15.00 + 31.00 + 1.50 = 47.50; tax 20 % = 9.50
    assert (draft.totals.net, draft.totals.tax, draft.totals.total) == (D("47.50"), D("9.50"), D("57.00"))


def test_base_fees_already_billed_are_not_billed_again_and_a_device_that_left_is_credited() -> None:
    holding = Assignment("A", "ACME", date(2026, 9, 1), None)
    october = draft_for(book(holding), OCT, daily_reads("A", 10))
    billed = [line for line in october.lines if line.kind == "base_fee"]
    assert [line.service.label for line in billed] == ["2026-10", "2026-11"]
    # The device leaves on 21 Nov; November was billed in advance on the October invoice.
    left = Assignment("A", "ACME", date(2026, 9, 1), date(2026, 11, 21))
    november = draft_for(book(left), NOV, daily_reads("A", 10, days=90), billed)
    base = [(line.service.label, line.amount, line.adjustment) for line in november.lines if line.kind == "base_fee"]
    # 21-30 Nov: 10 of 30 days back: -(31.00 x 10/30) = -10.33; nothing for December.
    assert base == [("2026-11-21..2026-12-01", D("-10.33"), True)]


def test_a_late_read_becomes_an_adjustment_and_nothing_changes_when_nothing_did() -> None:
    the_book = book(Assignment("A", "ACME", date(2026, 9, 1), None))
    reads = daily_reads("A", 20)
    silent_end = reads[(reads["taken_at"] < "2026-10-25") | (reads["taken_at"] > "2026-11-06")]
    first = draft_for(the_book, OCT, silent_end)
    october_usage = [line for line in first.lines if line.kind == "usage"]
    assert october_usage[0].estimated
    # The reads arrive after October was finalised: November's draft re-rates October and bills the difference.
    jobs = usage_jobs(the_book, "ACME", [OCT.end])
    requests = usage_requests(jobs)
    corrected = rate_jobs(jobs, requests, period_usage(reads, requests[["device", "meter", "start", "end"]]))
    adjustments = reconcile(corrected, october_usage, NOV)
    assert len(adjustments) == 1
    assert adjustments[0].adjustment
    assert adjustments[0].amount == corrected[0].amount - october_usage[0].amount
    assert reconcile(corrected, corrected, NOV) == []


def test_refusals_name_the_record_and_field() -> None:
    held = Assignment("A", "ACME", date(2026, 9, 1), None)
    with pytest.raises(BillingError, match=r"customer ACME: device A is held 2026-10-01\.\.2026-11-01 but no contract"):
        check(book(held, contracts=[contract(owner="OTHER")], customers=[customer(), customer("OTHER")]), "ACME", OCT)
    with pytest.raises(BillingError, match=r"device A is covered by contracts C1 and C2 on 2026-10-01"):
        check(book(held, contracts=[contract("C1"), contract("C2")]), "ACME", OCT)
    with pytest.raises(BillingError, match=r"contract C1: currency: USD but customer ACME bills in EUR"):
        check(book(held, contracts=[contract(currency="USD")]), "ACME", OCT)
    late = contract(valid_from="2026-10-10")
    with pytest.raises(BillingError, match=r"held 2026-10-01\.\.2026-10-10 but no contract covers it"):
        check(book(held, contracts=[late]), "ACME", OCT)


def test_a_branch_is_billed_on_its_head_office_invoice() -> None:
    people = [customer(), customer("ACME-HH", parent="ACME")]
    the_book = book(
        Assignment("B", "ACME-HH", date(2026, 9, 1), None), customers=people, contracts=[contract(owner="ACME-HH")]
    )
    assert the_book.payers() == ["ACME"]
    draft = draft_for(the_book, OCT, daily_reads("B", 5))
    assert {line.customer for line in draft.lines} == {"ACME-HH"}
    assert all(line.description.startswith("ACME-HH: ") for line in draft.lines)


@pytest.mark.parametrize(
    ("country", "scheme", "number", "stored"),
    [
        ("DE", "vat", "136695976", "DE136695976"),  # the prefix is added
        ("GR", "vat", "094259216", "EL094259216"),  # Greece's VAT prefix is EL
        ("TR", "vkn", "4540536920", "4540536920"),
        ("TR", "tckn", "17291716060", "17291716060"),
        ("CN", "uscc", "91110000600037341L", "91110000600037341L"),
    ],
)
def test_tax_numbers_are_checked_per_country(country: str, scheme: str, number: str, stored: str) -> None:
    address = {"street": "x", "city": "y", "country": country}
    assert parse_customer(customer(country=country, tax_scheme=scheme, tax_id=number, address=address)).tax_id == stored
    broken = number[:-1] + ("0" if number[-1] != "0" else "1")
    with pytest.raises(CustomerError, match=rf"customer ACME: tax_id: not a valid {country}"):
        parse_customer(customer(country=country, tax_scheme=scheme, tax_id=broken, address=address))


def test_a_customer_needs_one_billing_contact_with_an_email() -> None:
    with pytest.raises(CustomerError, match="contacts: exactly one contact must have billing = true"):
        parse_customer(customer(contacts=[{"name": "a", "email": "a@x.de"}]))
    with pytest.raises(CustomerError, match=r"customer ACME: contacts\.0\.email: .*not an e-mail"):
        parse_customer(customer(contacts=[{"name": "a", "email": "nope", "billing": True}]))


amounts = st.decimals(min_value=-1000, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
rates = st.sampled_from([D(0), D("0.07"), D("0.19"), D("0.20")])


@given(st.lists(st.tuples(amounts, rates), min_size=1, max_size=30))
def test_invoice_total_is_the_sum_of_lines_plus_tax_rounded_once_per_rate(items: list[tuple[Decimal, Decimal]]) -> None:
    lines = [
        InvoiceLine("usage", False, "x", "ACME", "C1", None, "mono", None, OCT, D(1), amount, rate)
        for amount, rate in items
    ]
    result = totals(lines, "EUR")
    assert result.net == sum(amount for amount, _ in items)
    expected_tax = sum(
        (sum(a for a, r in items if r == rate) * rate).quantize(D("0.01"), rounding="ROUND_HALF_UP")
        for rate in {r for _, r in items}
    )
    assert result.tax == expected_tax
    assert result.total == result.net + result.tax


def test_quarterly_usage_is_billed_at_the_quarter_end_and_a_quarterly_base_fee_before_its_quarter() -> None:
    quarterly = contract(usage_cycle="quarterly", base_cycle="quarterly", base_fee="90.00")
    the_book = book(Assignment("A", "ACME", date(2026, 7, 1), None), contracts=[quarterly])
    reads = daily_reads("A", 10, first="2026-06-25", days=120)
    november = draft_for(the_book, NOV, reads, billed=_base_paid_to(date(2026, 10, 1), date(2027, 1, 1)))
    assert november.lines == []  # mid-quarter: no usage cycle ends, Q4 was billed in advance
    september = draft_for(
        the_book, Period.month(2026, 9), reads, billed=_base_paid_to(date(2026, 7, 1), date(2026, 10, 1))
    )
    by_kind = {(line.kind, line.service.label) for line in september.lines}
    # Q3 usage (1 Jul .. 1 Oct) at its end; Q4's base fee in advance, because October falls in it.
    assert by_kind == {("usage", "2026-07-01..2026-10-01"), ("base_fee", "2026-10-01..2027-01-01")}
    usage = next(line for line in september.lines if line.kind == "usage")
    # 1 Jul 06:00 -> 1 Oct 06:00 = 92 days x 10 = 920 pages, 310 included (a quarter's, whole): 610 x 0.01 = 6.10.
    assert usage.amount == D("6.10")


def _base_paid_to(start: date, end: date) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            "base_fee", False, "paid", "ACME", "C1", "A", None, None, Period(start, end), D(1), D("90.00"), D("0.20")
        )
    ]


@pytest.mark.parametrize("text", ["0000-01", "2026-13", "October", "9999-12"])
def test_a_month_that_is_not_one_is_refused_with_the_form_to_use(text: str) -> None:
    with pytest.raises(PeriodError, match="write it as YYYY-MM"):
        Period.parse_month(text)


def test_a_start_read_outside_the_window_says_it_is_the_first_read_and_an_estimate_says_so() -> None:
    # Issue 17 item 7: assigned from 1 Sep, first reading on 25 Sep (6 days x 20 to 1 Oct 06:00); silent from 20 Oct.
    the_book = book(Assignment("A", "ACME", date(2026, 9, 1), None))
    reads = daily_reads("A", 20, first="2026-09-25", days=25)
    september = draft_for(the_book, Period.month(2026, 9), reads)
    [usage] = [line for line in september.lines if line.kind == "usage"]
    [(_, pair)] = line_pairs(usage)
    assert pair["start"]["first_read"]
    assert "first read (installation, outside the read window): mono A 2026-09: 120 pages" in " ".join(september.checks)
    assert "A 2026-09-25" in " ".join(september.checks)
    october = draft_for(the_book, OCT, reads)
    [usage] = [line for line in october.lines if line.kind == "usage"]
    [(_, pair)] = line_pairs(usage)
    assert (pair["start"]["first_read"], pair["end"]["estimated"]) == (False, True)
    assert any(note.startswith("estimated: mono A 2026-10") for note in october.checks)


def test_a_line_can_bill_a_sum_of_meters_and_a_sum_needs_two_different_meters() -> None:
    summed = contract(meters=[{"meter": "mono", "sum_of": ["print_mono", "copy_mono"], "tiers": [{"price": "0.01"}]}])
    the_book = book(Assignment("A", "ACME", date(2026, 9, 1), None), contracts=[summed])
    prints, copies = daily_reads("A", 20), daily_reads("A", 7)
    reads = pd.concat(
        [prints.assign(meter="print_mono"), copies.assign(meter="copy_mono", row_id=copies["row_id"] + 100)]
    )
    [usage] = [line for line in draft_for(the_book, OCT, reads).lines if line.kind == "usage"]
    assert usage.meter == "mono"
    assert usage.provenance["pages"] == (20 + 7) * 31
    assert sorted(pair["meter"] for _, pair in line_pairs(usage)) == ["copy_mono", "print_mono"]
    with pytest.raises(ContractError, match="sum_of names two or more different meters"):
        parse_contract(contract(meters=[{"meter": "mono", "sum_of": ["print_mono"], "tiers": [{"price": "0.01"}]}]))


def test_assigning_a_device_to_meters_it_never_reported_warns_and_a_missing_meter_blocks_finalising() -> None:
    # Issue 17 items 2 and 8: a device that splits by function under a contract that bills mono.
    the_book = book(Assignment("K", "ACME", date(2026, 9, 1), None))
    reported = ["copy_mono", "print_mono", "total"]
    [warning] = unsupplied_meters(the_book, the_book.assignments[0], reported)
    assert warning.startswith(
        "device K: contract C1 bills meter mono, which the device has never reported "
        "(it reports copy_mono, print_mono, total)"
    )
    assert unsupplied_meters(the_book, the_book.assignments[0], ["mono", "total"]) == []
    reads = daily_reads("K", 20).assign(meter="print_mono")
    draft = draft_for(the_book, OCT, reads)
    marked = mark_unsupplied(draft.lines, {"K": set(reported)})
    [blocking] = blocking_items(marked)
    assert blocking.startswith("meter not reported: mono K 2026-10")
    assert "K mono (it reports copy_mono, print_mono, total)" in blocking
    # Without knowing what it reports, the same line is a missing read: blocking too, and said as such.
    [missing] = blocking_items(draft.lines)
    assert missing.startswith("no reads at all: mono K 2026-10")
