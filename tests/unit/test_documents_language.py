"""Invoices and credit notes in the customer's language: phrases, meter names in words, Babel's number, money and
date formats, and glyphs the embedded font must carry (Turkish İ ş ğ, Chinese), read back with poppler's pdftotext."""

# ruff: noqa: RUF001 - Turkish dotless i and full-width Chinese punctuation are the point of these strings

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from decimal import Decimal
from xml.etree import ElementTree as ET

import pytest
from peppol import check_rules, validate_xsd

from billing.documents.i18n import LANGUAGES, Words, language_of
from billing.documents.model import DeviceLabel, Document
from billing.documents.pdf import to_pdf
from billing.documents.ubl import CAC, CBC, to_ubl
from billing.invoicing import InvoiceLine
from billing.lifecycle import credit_lines
from tests.unit.test_ubl import BUYER, OCT, document, line

D = Decimal
USAGE = InvoiceLine(
    "usage",
    False,
    "mono SER1 2026-10: 3,100 pages, 1,000 included",
    "ACME",
    "C1",
    "SER1",
    "mono",
    None,
    OCT,
    D("2100"),
    D("1234.56"),
    D("0.20"),
    provenance={"pages": 3100, "included": 1000},
)
LINES = (line("base_fee", "40.00"), USAGE)

# What a customer must read on the page, per language: title, a meter in words, the usage in local digits, the
# total in local money format, the issue date in local format, and the payment terms.
EXPECTED = {
    "en": [
        "Invoice INV-000007",
        "Mono pages SER1 2026-10: 3,100 pages, 1,000 included",
        "Base fee SER1 2026-10",
        "1,529.47",
        "2 Nov 2026",
        "Payable within 14 days.",
    ],
    "de": [
        "Rechnung INV-000007",
        "Schwarzweiß-Seiten SER1 2026-10: 3.100 Seiten",
        "Grundgebühr SER1 2026-10",
        "1.529,47",
        "02.11.2026",
        "Zahlbar innerhalb von 14 Tagen.",
    ],
    "fr": [
        "Facture INV-000007",
        "Pages noir et blanc SER1 2026-10",
        "Forfait de base SER1 2026-10",
        "1 529,47",
        "2 nov. 2026",
        "Payable sous 14 jours.",
    ],
    "tr": [
        "Fatura INV-000007",
        "Siyah-beyaz sayfa SER1 2026-10: 3.100 sayfa, 1.000 dahil",
        "Sabit ücret SER1",
        "1.529,47",
        "2 Kas 2026",
        "14 gün içinde ödenecektir.",
        "Düzenleme tarihi",
    ],
    "zh-Hans": [
        "发票 INV-000007",
        "黑白页数 SER1 2026-10",
        "基本费 SER1 2026-10",
        "1,529.47",
        "2026年11月2日",
        "请于 14 天内付款。",
        "价税合计 EUR",
    ],
}
CREDIT_TITLES = {
    "en": "Credit note CN-000002",
    "de": "Gutschrift CN-000002",
    "fr": "Avoir CN-000002",
    "tr": "İade faturası CN-000002",
    "zh-Hans": "红字发票 CN-000002",
}

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils: ./dev installs it")


def pdf_text(doc: Document) -> str:
    out = subprocess.run(["pdftotext", "-", "-"], input=to_pdf(doc), capture_output=True, check=True).stdout.decode()
    return " ".join(out.replace("\u00a0", " ").replace("\u202f", " ").split())  # one line: wrapped cells rejoin


@needs_pdftotext
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_invoice_is_printed_in_the_customers_language(language: str) -> None:
    text = pdf_text(replace(document(lines=LINES), language=language, buyer=replace(BUYER, legal_name="Şişli Ofis")))
    for expected in EXPECTED[language]:
        assert expected in text, (language, expected, text)
    assert "Şişli Ofis" in text  # Turkish glyphs in every language: the font carries them
    assert " mono " not in f" {text} "  # the meter in words, never its id


@needs_pdftotext
@pytest.mark.parametrize("language", LANGUAGES)
def test_the_credit_note_is_printed_in_the_customers_language(language: str) -> None:
    text = pdf_text(replace(document("credit_note", LINES), language=language))
    assert CREDIT_TITLES[language] in text, text


def test_a_language_tag_with_a_region_or_unknown_falls_back_sensibly() -> None:
    assert [language_of(tag) for tag in ("de-AT", "zh", "zh-Hans", "pt-BR", None)] == [
        "de",
        "zh-Hans",
        "zh-Hans",
        "en",
        "en",
    ]
    assert Words("fr").meter("scan_color") == "Scan color"  # no translation yet: its name, readable


def test_the_meters_a_contract_sums_or_prices_apart_have_words_too() -> None:
    # A contract may bill copy clicks on a line of their own (meter = "copy_mono"): not "Copy mono" on a German bill.
    assert [Words("de").meter(m) for m in ("print_mono", "copy_mono", "copy_color")] == [
        "Druckseiten Schwarzweiß",
        "Kopien Schwarzweiß",
        "Kopien Farbe",
    ]
    assert Words("tr").meter("copy_mono") == "Siyah-beyaz kopya"


# A usage line priced in two graduated tiers (5,000 x 0.010 + 2,790 x 0.008 = 72.32) on a named device, and a mono
# printer's colour line that bills nothing.
TIERED = replace(
    USAGE,
    quantity=D(7790),
    amount=D("72.32"),
    provenance={
        "pages": 8790,
        "included": 1000,
        "tiering": "graduated",
        "tiers": [
            {"pages": 5000, "price": "0.010", "from": 1, "up_to": 5000},
            {"pages": 2790, "price": "0.008", "from": 5001, "up_to": None},
        ],
    },
)
NO_COLOUR = replace(
    USAGE,
    meter="color",
    quantity=D(0),
    amount=D(0),
    provenance={
        "pages": 0,
        "included": 0,
        "reads": {
            "SER1": {
                "pieces": [
                    {
                        "meter": "color",
                        "start": {"value": None},
                        "end": {"value": None},
                        "pages": 0,
                        "no_reads": True,
                        "reports": ["mono"],
                    }
                ]
            }
        },
    },
)
LABELS = {"SER1": DeviceLabel.of("Kyocera", "ECOSYS M2540dn", name="Empfang", location="2. OG", cost_centre="4711")}
CHECKABLE = {
    "de": [
        "Schwarzweiß-Seiten SER1 2026-10: 8.790 Seiten, 1.000 inklusive",
        "Kyocera ECOSYS M2540dn · Empfang · 2. OG · Kostenstelle 4711",
        "5.000 Seiten × 0,010 € (Seiten 1–5.000) 2.790 Seiten × 0,008 € (ab Seite 5.001)",  # a line per tier
        "72,32",
    ],
    "tr": [
        "Siyah-beyaz sayfa SER1 2026-10: 8.790 sayfa, 1.000 dahil",
        "Kyocera ECOSYS M2540dn · Empfang · 2. OG · masraf merkezi 4711",
        "5.000 sayfa × €0,010 (1–5.000. sayfalar) 2.790 sayfa × €0,008 (5.001. sayfadan itibaren)",
        "72,32",
    ],
}


@needs_pdftotext
@pytest.mark.parametrize("kind", ["invoice", "credit_note"])
@pytest.mark.parametrize("language", ["de", "tr"])
def test_each_usage_line_shows_its_device_and_its_pages_at_each_tiers_unit_price(kind: str, language: str) -> None:
    lines = (line("base_fee", "40.00"), TIERED, NO_COLOUR)
    if kind == "credit_note":
        lines = credit_lines(lines)
    text = pdf_text(replace(document(kind, lines), language=language, devices=LABELS))
    for expected in CHECKABLE[language]:
        assert expected in text, (language, expected, text)
    # No line for the colour pages the mono printer does not have: it would read as a reading gone missing.
    assert Words(language).meter("color") not in text, text
    assert Words(language)("not_reported") not in text, text


def test_the_ubl_line_carries_the_same_tiers_and_the_cost_centre() -> None:
    doc = replace(document(lines=(line("base_fee", "40.00"), TIERED, NO_COLOUR)), language="de", devices=LABELS)
    xml = to_ubl(doc)
    valid, errors = validate_xsd(xml)
    assert valid, errors
    assert [str(f) for f in check_rules(xml) if f.severity == "fatal"] == []
    root = ET.fromstring(xml)
    lines = list(root.iter(f"{{{CAC}}}InvoiceLine"))
    assert len(lines) == 2  # the colour line that bills nothing is left out, as on the PDF
    usage = lines[1]
    assert usage.findtext(f"{{{CBC}}}Note") == (
        "5.000 Seiten × 0,010\u00a0€ (Seiten 1–5.000); 2.790 Seiten × 0,008\u00a0€ (ab Seite 5.001)"
    )
    assert usage.findtext(f"{{{CBC}}}InvoicedQuantity") == "7790"
    assert usage.findtext(f"{{{CBC}}}AccountingCost") == "4711"
