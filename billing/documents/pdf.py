"""The invoice PDF: dealer header, customer block, one line per device x meter with its reads, totals and tax.

ReportLab (pure wheels, no system libraries) rather than WeasyPrint, which needs Pango
and friends on the agent box. Printed in the customer's language (billing.documents.i18n) with an
embedded TrueType font that has Turkish and Chinese glyphs: the built-in Helvetica has neither.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any, Final

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.documents.i18n import Words
from billing.documents.line_text import device_text, price_lines
from billing.documents.model import Document, Party, percent
from billing.invoicing import BASE_FEE, BillingError, InvoiceLine, line_pairs

ESTIMATED_MARK: Final = "E"
HELD_MARK: Final = "H"
# Debian's fonts-wqy-microhei (installed by ./dev): Latin, Latin Extended (Turkish) and CJK in one TrueType
# collection ReportLab can embed. Noto CJK ships as OpenType/CFF, which ReportLab cannot embed.
FONT_PATHS: Final = (Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),)
FONT: Final = "MeterdSans"
DETAIL_GREY: Final = "#555555"  # the device under a line: set apart, still 7:1 on white


@cache
def _font() -> str:
    path = next((p for p in FONT_PATHS if p.is_file()), None)
    if path is None:
        raise BillingError(
            f"no font for the invoice PDF at {', '.join(map(str, FONT_PATHS))}: "
            "install Debian's fonts-wqy-microhei (./dev does)"
        )
    pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
    pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT, italic=FONT, boldItalic=FONT)
    return FONT


def _styles() -> tuple[ParagraphStyle, ParagraphStyle, ParagraphStyle]:
    sheet = getSampleStyleSheet()
    font = _font()
    small = ParagraphStyle("small", parent=sheet["Normal"], fontName=font, fontSize=7.5, leading=9, wordWrap="CJK")
    normal = ParagraphStyle("normal", parent=sheet["Normal"], fontName=font, fontSize=9, leading=11, wordWrap="CJK")
    heading = ParagraphStyle("heading", parent=sheet["Heading2"], fontName=font)
    return small, normal, heading


def to_pdf(document: Document) -> bytes:
    buffer = io.BytesIO()
    words = Words(document.language)
    small, normal, heading = _styles()
    title = _title(document, words)
    pdf = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=15 * mm,
        rightMargin=15 * mm,
        topMargin=15 * mm,
        bottomMargin=15 * mm,
        title=title,
        author=document.seller.legal_name,
        lang=words.language,
    )
    story: list[Any] = [
        _parties(document, words, normal),
        Spacer(1, 6 * mm),
        Paragraph(f"<b>{_escape(title)}</b>", heading),
        _meta(document, words),
        Spacer(1, 4 * mm),
        _lines_table(document, words, small),
        Spacer(1, 4 * mm),
        _totals_table(document, words),
        Spacer(1, 4 * mm),
    ]
    story.extend(Paragraph(_escape(text), small) for text in _footnotes(document, words))
    pdf.build(story)
    return buffer.getvalue()


def _title(document: Document, words: Words) -> str:
    kind = words("credit_note" if document.is_credit_note else "invoice")
    return f"{kind} {document.number}" if document.number else words("draft", kind=kind.lower())


def _party_block(party: Party, heading: str, words: Words, style: ParagraphStyle) -> Paragraph:
    lines = [f"<b>{_escape(heading)}</b>", _escape(party.legal_name)]
    if party.trade_name:
        lines.append(_escape(party.trade_name))
    lines += [_escape(party.street), _escape(f"{party.postal_code} {party.city}".strip()), party.country]
    if party.vat_id:
        lines.append(f"{_escape(words('vat'))} {party.vat_id}")
    lines.append(_escape(party.email))
    return Paragraph("<br/>".join(lines), style)


def _parties(document: Document, words: Words, style: ParagraphStyle) -> Table:
    table = Table(
        [
            [
                _party_block(document.seller, words("from"), words, style),
                _party_block(document.buyer, words("bill_to"), words, style),
            ]
        ],
        colWidths=[90 * mm, 90 * mm],
    )
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _meta(document: Document, words: Words) -> Table:
    rows = [
        [words("customer"), document.buyer.code, words("period"), document.period.label],
        [words("issue_date"), words.date(document.issue_date), words("due_date"), words.date(document.due_date)],
        [words("currency"), document.currency, words("status"), words(f"{document.status}_status")],
    ]
    if document.credited_number:
        rows.append([words("credits"), document.credited_number, "", ""])
    table = Table(rows, colWidths=[32 * mm, 58 * mm, 32 * mm, 58 * mm])
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), _font()),
                ("FONTSIZE", (0, 0), (-1, -1), 8.5),
                ("TEXTCOLOR", (0, 0), (0, -1), colors.grey),
                ("TEXTCOLOR", (2, 0), (2, -1), colors.grey),
            ]
        )
    )
    return table


def describe(line: InvoiceLine, words: Words) -> str:
    """A usage line in the customer's words: "Mono pages KY1 2026-10: 3,100 pages, 1,000 included"."""
    detail = line.provenance or {}
    if not line.device or line.adjustment:
        return line.description  # pools and corrections keep the wording the billing run gave them
    device = f"{line.customer}: {line.device}" if line.description.startswith(f"{line.customer}: ") else line.device
    if line.kind == BASE_FEE:
        return f"{words('base_fee')} {device} {line.service.label}"
    if not line.meter or "pages" not in detail:
        return line.description
    included = detail.get("included") or 0
    pages = words.number(detail["pages"])
    usage = (
        words("usage", pages=pages, included=words.number(included)) if included else words("usage_all", pages=pages)
    )
    return f"{words.meter(line.meter)} {device} {line.service.label}: {usage}"


def explain(line: InvoiceLine, document: Document, words: Words) -> str:
    """A line's description cell (ReportLab markup), one thing a line.

    What it bills; the device as the customer knows it (model, name, location, cost centre), in grey;
    its pages x unit price, one line per tier.
    """
    device = device_text(document.devices.get(line.device), words) if line.device else ""
    texts = [_escape(describe(line, words))]
    if device:
        texts.append(f'<font color="{DETAIL_GREY}">{_escape(device)}</font>')
    texts += [_escape(text) for text in price_lines(line, words, document.currency)]
    return "<br/>".join(texts)


def line_reads(line: InvoiceLine, words: Words | None = None) -> list[tuple[str, str]]:
    """A line's read pairs as printed, one per device x segment: value and date, ``~`` before an estimate.

    A segment after a reset starts at the value the counter restarted from; a start that is the
    device's first read (an installation) says so; a meter the device never reported says that, not "no read".
    In a pool, a device without the meter is left out: the others' reads are the line's.
    """
    words = words or Words("en")
    pairs = [pair for pair in line_pairs(line) if not pair[1].get("reports")] or line_pairs(line)
    if not pairs:
        return [("", "")]
    several = len({device for device, _ in pairs}) > 1
    return [
        (
            (f"{device}: " if several else "") + _read_text(pair["start"], pair, words),
            _read_text(pair["end"], pair, words),
        )
        for device, pair in pairs
    ]


def _read_text(read: dict[str, Any], pair: dict[str, Any], words: Words) -> str:
    if read.get("value") is None:
        return words("not_reported") if pair.get("reports") else words("no_read")
    mark = "~" if read.get("estimated") else ""
    text = f"{mark}{words.number(read['value'])} ({str(read['at'])[:10]})"  # ISO: short, and no month names to wrap
    if read.get("restart"):
        return f"{text} {words('reset')}"
    if read.get("first_read"):
        return f"{text} {words('first_read')}"
    return text if pair["segment"] == 1 else f"{text} {words('segment', n=pair['segment'])}"


def _lines_table(document: Document, words: Words, small: ParagraphStyle) -> Table:
    header = [words("description"), words("start"), words("end"), words("qty"), words("amount"), ""]
    rows: list[list[Any]] = [header]
    for line in document.shown_lines:
        (start, end), *more = line_reads(line, words)
        flags = (ESTIMATED_MARK if line.estimated else "") + (HELD_MARK if line.held else "")
        rows.append(
            [
                Paragraph(explain(line, document, words), small),
                _cell(start, small),
                _cell(end, small),
                words.number(line.quantity.normalize()),
                words.money(line.amount),
                flags,
            ]
        )
        rows.extend(
            ["", _cell(segment_start, small), _cell(segment_end, small), "", "", ""]
            for segment_start, segment_end in more
        )
    table = Table(rows, colWidths=[82 * mm, 28 * mm, 28 * mm, 16 * mm, 20 * mm, 6 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), _font()),
                ("FONTSIZE", (0, 0), (-1, -1), 7.5),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("ALIGN", (3, 0), (4, -1), "RIGHT"),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
            ]
        )
    )
    return table


def _cell(text: str, small: ParagraphStyle) -> Paragraph:
    """A read as a wrapping cell: a note (reset, first read) or a device name must not run into the next column."""
    return Paragraph(_escape(text), small)


def _totals_table(document: Document, words: Words) -> Table:
    sums = document.totals
    rows = [[words("net"), words.money(sums.net)]]
    rows += [
        [words("tax_on", rate=percent(rate), taxable=words.money(taxable)), words.money(tax)]
        for rate, (taxable, tax) in sums.by_rate.items()
    ]
    rows.append([words("total", currency=document.currency), words.money(sums.total)])
    table = Table(rows, colWidths=[150 * mm, 30 * mm])
    table.setStyle(
        TableStyle(
            [
                ("FONTNAME", (0, 0), (-1, -1), _font()),
                ("ALIGN", (0, 0), (-1, -1), "RIGHT"),
                ("FONTSIZE", (0, 0), (-1, -1), 9),
                ("FONTSIZE", (0, -1), (-1, -1), 10),
                ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black),
            ]
        )
    )
    return table


def _footnotes(document: Document, words: Words) -> list[str]:
    notes = []
    lines = document.shown_lines
    if any(line.estimated for line in lines):
        notes.append(words("note_estimated", mark=ESTIMATED_MARK))
    if any(pair["start"].get("first_read") for line in lines for _, pair in line_pairs(line)):
        notes.append(words("note_first"))
    if any(pair["start"].get("restart") for line in lines for _, pair in line_pairs(line)):
        notes.append(words("note_reset"))
    if any(line.held for line in lines):
        notes.append(words("note_held", mark=HELD_MARK))
    if document.iban and not document.is_credit_note:
        bank = f"IBAN {document.iban}" + (f", BIC {document.bic}" if document.bic else "")
        notes.append(words("note_pay", bank=bank, number=document.number or words("invoice")))
    if document.payment_terms_days is not None and not document.is_credit_note:
        notes.append(words("note_terms", days=document.payment_terms_days))
    return notes


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
