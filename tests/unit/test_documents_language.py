"""Invoices and credit notes in the customer's language: phrases, meter names in words, Babel's number, money and
date formats, and glyphs the embedded font must carry (Turkish İ ş ğ, Chinese), read back with poppler's pdftotext."""

# ruff: noqa: RUF001 - Turkish dotless i and full-width Chinese punctuation are the point of these strings

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from decimal import Decimal

import pytest

from billing.documents.i18n import LANGUAGES, Words, language_of
from billing.documents.model import Document
from billing.documents.pdf import to_pdf
from billing.invoicing import InvoiceLine
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
