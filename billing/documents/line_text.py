"""What a customer needs to check a usage line: the device it is for, and pages x unit price per tier.

Pure and shared by the PDF (printed under the line) and the UBL XML (the line's note), so both say the
same pages at the same prices. The prices are the contract's, as the billing run used them (the line's
provenance); a tier's range counts the pages billed beyond the included ones, as the contract states it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from billing.documents.i18n import Words
from billing.documents.model import DeviceLabel
from billing.invoicing import USAGE, InvoiceLine


@dataclass(frozen=True, slots=True)
class PricePart:
    """Pages billed at one price: a tier of the contract, ``first``..``last`` (None: no upper end)."""

    pages: int
    price: Decimal
    first: int
    last: int | None
    volume: bool  # the tier the whole count reached prices every page


def price_parts(line: InvoiceLine) -> list[PricePart]:
    """The pages and unit price of each tier a usage line billed; none for other lines and adjustments.

    An adjustment bills a difference, which no single page count x price explains: its own wording says it.
    """
    if line.kind != USAGE or line.adjustment:
        return []
    detail = line.provenance
    tiers = detail.get("tiers") or []
    volume = detail.get("tiering") == "volume"
    parts, floor = [], 0
    for index, tier in enumerate(tiers):
        pages = int(tier["pages"])
        if "from" in tier:
            first, last = int(tier["from"]), tier.get("up_to")
        elif volume:  # lines rated before ranges were kept: the range is not known, the price is
            first, last = 1, None
        else:  # graduated: a tier used up to its end is known whole; the last one used only where it begins
            first, last = floor + 1, None if index == len(tiers) - 1 else floor + pages
        parts.append(PricePart(pages, Decimal(tier["price"]), first, None if last is None else int(last), volume))
        floor += pages
    return parts


def price_lines(line: InvoiceLine, words: Words, currency: str) -> list[str]:
    """One text per tier: its pages x unit price, and its range where the contract has tiers; none if nothing is priced.

    In English: "2,100 pages x EUR 0.010 (pages 1-5,000)", "690 pages x EUR 0.008 (from page 5,001)".
    """
    texts = []
    for part in price_parts(line):
        text = words("price", pages=words.number(part.pages), price=words.unit_price(part.price, currency))
        if tier := _tier(part, words):
            text += f" ({tier})"
        texts.append(text)
    return texts


def price_text(line: InvoiceLine, words: Words, currency: str) -> str:
    """The tiers of :func:`price_lines` on one line, "; " between them (the UBL line's note)."""
    return "; ".join(price_lines(line, words, currency))


def _tier(part: PricePart, words: Words) -> str:
    if part.first == 1 and part.last is None:
        return ""  # one price for every page: no tier to name
    first = words.number(part.first)
    span = (
        words("tier_open", first=first)
        if part.last is None
        else words("tier_range", first=first, last=words.number(part.last))
    )
    return words("tier_volume", range=span) if part.volume else span


def device_text(label: DeviceLabel | None, words: Words) -> str:
    """Model, name, location and cost centre, as far as known, on one line; "" when nothing is.

    In English: "KYOCERA ECOSYS M2540dn - Reception - 2nd floor - cost centre 4711" (a middle dot between).
    """
    if label is None:
        return ""
    parts = [label.model, label.name, label.location]
    if label.cost_centre:
        parts.append(words("cost_centre", code=label.cost_centre))
    return " · ".join(part for part in parts if part)
