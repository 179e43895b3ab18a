"""What a customer checks a usage line by: pages x unit price per tier with its range, and the device as they know it.

The same text goes on the PDF and into the UBL line's note; the tiers come from the rating itself (tier_charge), so
their pages and prices must add up to the line's amount, and the UBL price to the same amount.
"""

# ruff: noqa: RUF001 - the en dash and the multiplication sign are the point of these strings

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from billing.contracts import Tier
from billing.documents.i18n import Words
from billing.documents.line_text import PricePart, device_text, price_parts, price_text
from billing.documents.model import DeviceLabel
from billing.documents.ubl import quantity_and_price
from billing.invoicing import InvoiceLine, lacks_meter
from billing.rating import money, tier_charge
from tests.unit.test_ubl import OCT, document

D = Decimal
TIERS = [Tier(up_to=5000, price=D("0.010")), Tier(price=D("0.008"))]


def usage(excess: int, tiers: list[Tier], tiering: str = "graduated", **detail: Any) -> InvoiceLine:
    """A usage line priced as the billing run prices one: tier_charge's tiers in its provenance."""
    charge, used = tier_charge(excess, tiers, tiering)
    provenance = {"pages": excess + 1000, "included": 1000, "tiering": tiering, "tiers": used} | detail
    return InvoiceLine(
        "usage",
        False,
        "mono SER1",
        "ACME",
        "C1",
        "SER1",
        "mono",
        None,
        OCT,
        D(excess),
        money(charge, "EUR"),
        D("0.19"),
        provenance=provenance,
    )


def test_graduated_tiers_print_one_part_per_tier_with_its_range_in_german_and_turkish() -> None:
    line = usage(7790, TIERS)
    assert price_text(line, Words("de"), "EUR") == (
        "5.000 Seiten × 0,010\u00a0€ (Seiten 1–5.000); 2.790 Seiten × 0,008\u00a0€ (ab Seite 5.001)"
    )
    assert price_text(line, Words("tr"), "EUR") == (
        "5.000 sayfa × €0,010 (1–5.000. sayfalar); 2.790 sayfa × €0,008 (5.001. sayfadan itibaren)"
    )
    assert price_text(line, Words("en"), "EUR") == (
        "5,000 pages × €0.010 (pages 1–5,000); 2,790 pages × €0.008 (from page 5,001)"
    )


def test_a_tier_used_in_part_still_names_the_contracts_range() -> None:
    assert price_text(usage(2100, TIERS), Words("en"), "EUR") == "2,100 pages × €0.010 (pages 1–5,000)"


def test_one_price_for_every_page_names_no_tier_and_keeps_the_contracts_decimals() -> None:
    line = usage(2790, [Tier(price=D("0.0080"))])
    assert price_text(line, Words("de"), "EUR") == "2.790 Seiten × 0,0080\u00a0€"
    assert price_text(line, Words("tr"), "TRY") == "2.790 sayfa × ₺0,0080"


def test_a_volume_tier_says_its_price_holds_for_every_page() -> None:
    line = usage(7790, TIERS, "volume")
    assert price_text(line, Words("en"), "EUR") == "7,790 pages × €0.008 (from page 5,001: this price for every page)"


def test_lines_rated_before_ranges_were_kept_still_print_their_prices() -> None:
    old = usage(7790, TIERS)
    old = replace(
        old,
        provenance=old.provenance | {"tiers": [{"pages": 5000, "price": "0.010"}, {"pages": 2790, "price": "0.008"}]},
    )
    assert price_text(old, Words("en"), "EUR") == (
        "5,000 pages × €0.010 (pages 1–5,000); 2,790 pages × €0.008 (from page 5,001)"
    )


def test_nothing_is_priced_within_the_included_pages_on_adjustments_or_fees() -> None:
    assert price_text(usage(0, TIERS), Words("en"), "EUR") == ""
    assert price_text(replace(usage(2100, TIERS), adjustment=True), Words("en"), "EUR") == ""
    assert price_text(replace(usage(2100, TIERS), kind="base_fee"), Words("en"), "EUR") == ""


@given(
    st.lists(st.integers(1, 20_000), min_size=0, max_size=4, unique=True),
    st.lists(st.decimals(D("0.000001"), D(1), places=6), min_size=5, max_size=5),
    st.integers(0, 100_000),
    st.sampled_from(["graduated", "volume"]),
)
def test_the_printed_parts_add_up_to_the_line_and_agree_with_the_ubl_price(
    bounds: list[int], prices: list[Decimal], excess: int, tiering: str
) -> None:
    tiers = [Tier(up_to=bound, price=price) for bound, price in zip(sorted(bounds), prices, strict=False)]
    tiers.append(Tier(price=prices[-1]))
    line = usage(excess, tiers, tiering)
    parts = price_parts(line)
    assert sum(part.pages for part in parts) == excess == line.quantity
    assert money(sum((part.pages * part.price for part in parts), D(0)), "EUR") == line.amount
    for part in parts:
        assert part.last is None or part.last >= part.first
        if tiering == "graduated":
            assert part.last is None or part.first + part.pages - 1 <= part.last  # the pages fit the tier
        else:
            assert part.first <= excess  # the whole count reached this tier
            assert part.last is None or excess <= part.last
    if tiering == "graduated":  # tiers follow each other without a gap
        assert all(b.first == a.first + a.pages for a, b in pairwise(parts))
    if excess:
        quantity, price, base = quantity_and_price(line, line.amount, "EUR")
        assert quantity == excess
        assert money(quantity * price / base, "EUR") == line.amount
        if len(parts) == 1:
            assert price == parts[0].price  # one tier: the UBL unit price is the printed one


def test_price_parts_carry_the_rated_tiers() -> None:
    assert price_parts(usage(7790, TIERS)) == [
        PricePart(5000, D("0.010"), 1, 5000, volume=False),
        PricePart(2790, D("0.008"), 5001, None, volume=False),
    ]


def test_the_device_is_named_as_its_customer_knows_it() -> None:
    label = DeviceLabel.of("Kyocera", "ECOSYS M2540dn", name="Empfang", location="2. OG", cost_centre="4711")
    assert device_text(label, Words("de")) == "Kyocera ECOSYS M2540dn · Empfang · 2. OG · Kostenstelle 4711"
    assert device_text(label, Words("tr")) == "Kyocera ECOSYS M2540dn · Empfang · 2. OG · masraf merkezi 4711"
    assert DeviceLabel.of("KYOCERA", "KYOCERA ECOSYS M2540dn").model == "KYOCERA ECOSYS M2540dn"  # not twice
    assert device_text(DeviceLabel.of(None, None), Words("en")) == ""
    assert device_text(None, Words("en")) == ""


def _piece(reports: list[str] | None) -> dict[str, Any]:
    read = {"value": None, "at": None, "estimated": False, "first_read": False}
    piece: dict[str, Any] = {"meter": "color", "start": read, "end": read, "pages": 0, "no_reads": True}
    return piece | ({"reports": reports} if reports else {})


def test_a_zero_line_for_a_meter_the_device_does_not_have_is_not_shown() -> None:
    mono_printer = replace(
        usage(0, TIERS), meter="color", amount=D(0), provenance={"reads": {"SER1": {"pieces": [_piece(["mono"])]}}}
    )
    missing_read = replace(mono_printer, provenance={"reads": {"SER1": {"pieces": [_piece(None)]}}})
    billed = usage(2100, TIERS)
    assert lacks_meter(mono_printer)
    assert not lacks_meter(missing_read)  # a reading may still come: that one stays, saying so
    assert document(lines=(billed, mono_printer, missing_read)).shown_lines == (billed, missing_read)
