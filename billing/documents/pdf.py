"""The invoice PDF: dealer header, customer block, one line per device x meter with its reads, totals and tax.

ReportLab (pure wheels, no system libraries) rather than WeasyPrint, which needs Pango
and friends on the agent box.
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any, Final

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from billing.documents.model import Document, Party, percent
from billing.invoicing import InvoiceLine, line_pairs

ESTIMATED_MARK: Final = "E"
HELD_MARK: Final = "H"
_STYLES = getSampleStyleSheet()
_SMALL = ParagraphStyle("small", parent=_STYLES["Normal"], fontSize=7.5, leading=9)
_NORMAL = ParagraphStyle("normal", parent=_STYLES["Normal"], fontSize=9, leading=11)


def to_pdf(document: Document) -> bytes:
    buffer = io.BytesIO()
    title = _title(document)
    pdf = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm, title=title, author=document.seller.legal_name)  # fmt: skip
    story: list[Any] = [
        _parties(document),
        Spacer(1, 6 * mm),
        Paragraph(f"<b>{title}</b>", _STYLES["Heading2"]),
        _meta(document),
        Spacer(1, 4 * mm),
        _lines_table(document),
        Spacer(1, 4 * mm),
        _totals_table(document),
        Spacer(1, 4 * mm),
    ]
    story.extend(Paragraph(text, _SMALL) for text in _footnotes(document))
    pdf.build(story)
    return buffer.getvalue()


def _title(document: Document) -> str:
    kind = "Credit note" if document.is_credit_note else "Invoice"
    return f"{kind} {document.number}" if document.number else f"DRAFT {kind.lower()} (not numbered)"


def _party_block(party: Party, heading: str) -> Paragraph:
    lines = [f"<b>{heading}</b>", _escape(party.legal_name)]
    if party.trade_name:
        lines.append(_escape(party.trade_name))
    lines += [_escape(party.street), _escape(f"{party.postal_code} {party.city}".strip()), party.country]
    if party.vat_id:
        lines.append(f"VAT {party.vat_id}")
    lines.append(_escape(party.email))
    return Paragraph("<br/>".join(lines), _NORMAL)


def _parties(document: Document) -> Table:
    table = Table([[_party_block(document.seller, "From"), _party_block(document.buyer, "Bill to")]],
                  colWidths=[90 * mm, 90 * mm])  # fmt: skip
    table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def _meta(document: Document) -> Table:
    rows = [
        ["Customer", document.buyer.code, "Period", document.period.label],
        ["Issue date", document.issue_date.isoformat(), "Due date", str(document.due_date or "-")],
        ["Currency", document.currency, "Status", document.status],
    ]  # fmt: skip
    if document.credited_number:
        rows.append(["Credits invoice", document.credited_number, "", ""])
    table = Table(rows, colWidths=[28 * mm, 62 * mm, 28 * mm, 62 * mm])
    table.setStyle(TableStyle([("FONTSIZE", (0, 0), (-1, -1), 8.5), ("TEXTCOLOR", (0, 0), (0, -1), colors.grey),
                               ("TEXTCOLOR", (2, 0), (2, -1), colors.grey)]))  # fmt: skip
    return table


def line_reads(line: InvoiceLine) -> list[tuple[str, str]]:
    """A line's read pairs as printed, one per device x segment: value and date, ``~`` before an estimate.

    A segment after a reset starts at the value the counter restarted from; a start that is the
    device's first read (an installation) says so; a meter the device never reported says that, not "no read".
    """
    pairs = line_pairs(line)
    if not pairs:
        return [("", "")]
    several = len({device for device, _ in pairs}) > 1
    return [((f"{device}: " if several else "") + _read_text(pair["start"], pair), _read_text(pair["end"], pair))
            for device, pair in pairs]  # fmt: skip


def _read_text(read: dict[str, Any], pair: dict[str, Any]) -> str:
    if read.get("value") is None:
        return "meter not reported" if pair.get("reports") else "no read"
    mark = "~" if read.get("estimated") else ""
    text = f"{mark}{read['value']:,} ({str(read['at'])[:10]})"
    if read.get("restart"):
        return f"{text} reset"
    if read.get("first_read"):
        return f"{text} first read"
    return text if pair["segment"] == 1 else f"{text} seg. {pair['segment']}"


def _lines_table(document: Document) -> Table:
    header = ["Description", "Start read", "End read", "Qty", "Amount", ""]
    rows: list[list[Any]] = [header]
    for line in document.lines:
        (start, end), *more = line_reads(line)
        flags = (ESTIMATED_MARK if line.estimated else "") + (HELD_MARK if line.held else "")
        rows.append([Paragraph(_escape(line.description), _SMALL), _cell(start), _cell(end), _quantity(line.quantity),
                     _money(line.amount), flags])  # fmt: skip
        rows.extend(["", _cell(segment_start), _cell(segment_end), "", "", ""] for segment_start, segment_end in more)
    table = Table(rows, colWidths=[78 * mm, 30 * mm, 30 * mm, 14 * mm, 20 * mm, 8 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTSIZE", (0, 0), (-1, -1), 7.5), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("ALIGN", (3, 0), (4, -1), "RIGHT"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
    ]))  # fmt: skip
    return table


def _cell(text: str) -> Paragraph:
    """A read as a wrapping cell: a note (reset, first read) or a device name must not run into the next column."""
    return Paragraph(_escape(text), _SMALL)


def _totals_table(document: Document) -> Table:
    sums = document.totals
    rows = [["Net", _money(sums.net)]]
    rows += [
        [f"Tax {percent(rate)} % on {_money(taxable)}", _money(tax)] for rate, (taxable, tax) in sums.by_rate.items()
    ]
    rows.append([f"Total {document.currency}", _money(sums.total)])
    table = Table(rows, colWidths=[150 * mm, 30 * mm])
    table.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "RIGHT"), ("FONTSIZE", (0, 0), (-1, -1), 9),
                               ("FONTNAME", (0, -1), (-1, -1), "Helvetica-Bold"),
                               ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black)]))  # fmt: skip
    return table


def _footnotes(document: Document) -> list[str]:
    notes = []
    if any(line.estimated for line in document.lines):
        notes.append(
            f"{ESTIMATED_MARK} / ~: estimated read (no reading within the window); corrected on a later invoice."
        )
    if any(pair["start"].get("first_read") for line in document.lines for _, pair in line_pairs(line)):
        notes.append("first read: the device's first reading after the period began (installed then).")
    if any(pair["start"].get("restart") for line in document.lines for _, pair in line_pairs(line)):
        notes.append("reset: the counter was reset and counts again from the value shown; one row per segment.")
    if any(line.held for line in document.lines):
        notes.append(f"{HELD_MARK}: readings under review when this was issued.")
    if document.iban and not document.is_credit_note:
        bank = f"IBAN {document.iban}" + (f", BIC {document.bic}" if document.bic else "")
        notes.append(f"Please pay by bank transfer to {bank}, quoting {document.number or 'the invoice number'}.")
    if document.payment_terms_days is not None and not document.is_credit_note:
        notes.append(f"Payable within {document.payment_terms_days} days.")
    return notes


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}" if amount.as_tuple().exponent == -2 else f"{amount:,}"  # noqa: PLR2004 - cents


def _quantity(quantity: Decimal) -> str:
    return f"{quantity.normalize():,f}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
