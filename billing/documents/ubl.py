"""UBL 2.1 Invoice / CreditNote following Peppol BIS Billing 3.0 (EN 16931).

Written with the standard library's ElementTree in the schema's element order (UBL is an
ordered schema). Amounts on a credit note are positive: the document type says it credits.
A usage line keeps its pages as its quantity; where no unit price multiplies out exactly
(graduated tiers) its price is the amount per base quantity of all its pages, and its note
gives the pages and price of each tier in the customer's language, as the PDF prints them.
A device's cost centre is the line's buyer accounting reference. Other lines (prorated fees,
true-ups) go out as quantity 1 (or -1) at their amount. Zero lines for a meter a device does
not have are left out, as on the PDF.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Final
from xml.etree import ElementTree as ET

from billing.documents.i18n import Words
from billing.documents.line_text import price_text
from billing.documents.model import Document, Party, percent
from billing.invoicing import USAGE, InvoiceLine
from billing.rating import money

INVOICE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS: Final = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC: Final = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CUSTOMIZATION: Final = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE: Final = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
UNIT_ONE: Final = "C62"  # UN/ECE rec. 20 "one": pages and fees are counted, not measured
CREDIT_TRANSFER: Final = "30"

ET.register_namespace("cac", CAC)
ET.register_namespace("cbc", CBC)


def to_ubl(document: Document) -> bytes:
    """The document as UBL XML bytes (UTF-8, with declaration)."""
    credit = document.is_credit_note
    root = ET.Element(f"{{{CREDIT_NOTE_NS if credit else INVOICE_NS}}}{'CreditNote' if credit else 'Invoice'}")
    sign = Decimal(-1) if credit else Decimal(1)
    _cbc(root, "CustomizationID", CUSTOMIZATION)
    _cbc(root, "ProfileID", PROFILE)
    _cbc(root, "ID", document.number or f"DRAFT-{document.invoice_id}")
    _cbc(root, "IssueDate", document.issue_date.isoformat())
    if not credit and document.due_date is not None:
        _cbc(root, "DueDate", document.due_date.isoformat())
    _cbc(root, "CreditNoteTypeCode" if credit else "InvoiceTypeCode", "381" if credit else "380")
    _cbc(root, "Note", f"Meter usage {document.period.label}")
    _cbc(root, "DocumentCurrencyCode", document.currency)
    _cbc(root, "BuyerReference", document.buyer.code)
    period = ET.SubElement(root, f"{{{CAC}}}InvoicePeriod")
    _cbc(period, "StartDate", document.period.start.isoformat())
    _cbc(period, "EndDate", _last_day(document.period.end))
    if credit and document.credited_number:
        reference = ET.SubElement(
            ET.SubElement(root, f"{{{CAC}}}BillingReference"), f"{{{CAC}}}InvoiceDocumentReference"
        )
        _cbc(reference, "ID", document.credited_number)
    _party(ET.SubElement(root, f"{{{CAC}}}AccountingSupplierParty"), document.seller)
    _party(ET.SubElement(root, f"{{{CAC}}}AccountingCustomerParty"), document.buyer)
    _payment(root, document, credit=credit)
    _tax_total(root, document, sign)
    _monetary_total(root, document, sign)
    for position, line in enumerate(document.shown_lines, 1):
        _line(root, position, line, document, sign)
    xml: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return xml


def _cbc(parent: ET.Element, name: str, text: str, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{CBC}}}{name}", attributes)
    element.text = text
    return element


def _amount(parent: ET.Element, name: str, value: Decimal, currency: str) -> None:
    _cbc(parent, name, f"{money(value, currency)}", currencyID=currency)


def _last_day(end_exclusive: date) -> str:
    return (end_exclusive - timedelta(days=1)).isoformat()


def _party(holder: ET.Element, party: Party) -> None:
    element = ET.SubElement(holder, f"{{{CAC}}}Party")
    scheme, _, identifier = party.endpoint.partition(":")
    _cbc(element, "EndpointID", identifier, schemeID=scheme)
    if party.trade_name:
        _cbc(ET.SubElement(element, f"{{{CAC}}}PartyName"), "Name", party.trade_name)
    address = ET.SubElement(element, f"{{{CAC}}}PostalAddress")
    _cbc(address, "StreetName", party.street)
    _cbc(address, "CityName", party.city)
    if party.postal_code:
        _cbc(address, "PostalZone", party.postal_code)
    _cbc(ET.SubElement(address, f"{{{CAC}}}Country"), "IdentificationCode", party.country)
    if party.vat_id:
        tax_scheme = ET.SubElement(element, f"{{{CAC}}}PartyTaxScheme")
        _cbc(tax_scheme, "CompanyID", party.vat_id)
        _cbc(ET.SubElement(tax_scheme, f"{{{CAC}}}TaxScheme"), "ID", "VAT")
    legal = ET.SubElement(element, f"{{{CAC}}}PartyLegalEntity")
    _cbc(legal, "RegistrationName", party.legal_name)
    contact = ET.SubElement(element, f"{{{CAC}}}Contact")
    if party.contact_name:
        _cbc(contact, "Name", party.contact_name)
    if party.phone:
        _cbc(contact, "Telephone", party.phone)
    _cbc(contact, "ElectronicMail", party.email)


def _payment(root: ET.Element, document: Document, *, credit: bool) -> None:
    if document.iban and not credit:
        means = ET.SubElement(root, f"{{{CAC}}}PaymentMeans")
        _cbc(means, "PaymentMeansCode", CREDIT_TRANSFER)
        _cbc(means, "PaymentID", document.number or f"DRAFT-{document.invoice_id}")
        account = ET.SubElement(means, f"{{{CAC}}}PayeeFinancialAccount")
        _cbc(account, "ID", document.iban)
        if document.bic:
            _cbc(ET.SubElement(account, f"{{{CAC}}}FinancialInstitutionBranch"), "ID", document.bic)
    if not credit and document.payment_terms_days is not None:
        terms = ET.SubElement(root, f"{{{CAC}}}PaymentTerms")
        _cbc(terms, "Note", f"Payable within {document.payment_terms_days} days")


def _tax_category(parent: ET.Element, name: str, rate: Decimal) -> None:
    category = ET.SubElement(parent, f"{{{CAC}}}{name}")
    _cbc(category, "ID", "S" if rate > 0 else "Z")
    _cbc(category, "Percent", percent(rate))
    _cbc(ET.SubElement(category, f"{{{CAC}}}TaxScheme"), "ID", "VAT")


def _tax_total(root: ET.Element, document: Document, sign: Decimal) -> None:
    total = ET.SubElement(root, f"{{{CAC}}}TaxTotal")
    _amount(total, "TaxAmount", document.totals.tax * sign, document.currency)
    for rate, (taxable, tax) in document.totals.by_rate.items():
        subtotal = ET.SubElement(total, f"{{{CAC}}}TaxSubtotal")
        _amount(subtotal, "TaxableAmount", taxable * sign, document.currency)
        _amount(subtotal, "TaxAmount", tax * sign, document.currency)
        _tax_category(subtotal, "TaxCategory", rate)


def _monetary_total(root: ET.Element, document: Document, sign: Decimal) -> None:
    total = ET.SubElement(root, f"{{{CAC}}}LegalMonetaryTotal")
    _amount(total, "LineExtensionAmount", document.totals.net * sign, document.currency)
    _amount(total, "TaxExclusiveAmount", document.totals.net * sign, document.currency)
    _amount(total, "TaxInclusiveAmount", document.totals.total * sign, document.currency)
    _amount(total, "PayableAmount", document.totals.total * sign, document.currency)


def quantity_and_price(line: InvoiceLine, amount: Decimal, currency: str) -> tuple[Decimal, Decimal, Decimal]:
    """Quantity, unit price and price base quantity: quantity x price / base = ``amount`` exactly (EN 16931 BR-CO-10).

    A usage line keeps its pages as its quantity: at its one tier's price where that multiplies
    out, else (graduated tiers, a volume price that rounds) at the amount per base quantity of
    all its pages. Other lines (fees, true-ups) go out as one unit at their amount.
    """
    sign = Decimal(1) if amount >= 0 else Decimal(-1)
    if not line.quantity or line.kind != USAGE:
        return sign, abs(amount), Decimal(1)
    quantity = sign * abs(line.quantity)
    tiers = line.provenance.get("tiers") or []
    if len(tiers) == 1 and money(quantity * Decimal(tiers[0]["price"]), currency) == amount:
        return quantity, Decimal(tiers[0]["price"]), Decimal(1)
    return quantity, abs(amount), abs(quantity)


def _line(root: ET.Element, position: int, line: InvoiceLine, document: Document, sign: Decimal) -> None:
    credit, currency = document.is_credit_note, document.currency
    amount = line.amount * sign
    element = ET.SubElement(root, f"{{{CAC}}}{'CreditNoteLine' if credit else 'InvoiceLine'}")
    _cbc(element, "ID", str(position))
    if prices := price_text(line, Words(document.language), currency):
        _cbc(element, "Note", prices)
    quantity, price, base = quantity_and_price(line, amount, currency)
    _cbc(element, "CreditedQuantity" if credit else "InvoicedQuantity", f"{quantity.normalize():f}", unitCode=UNIT_ONE)
    _amount(element, "LineExtensionAmount", amount, currency)
    label = document.devices.get(line.device) if line.device else None
    if label is not None and label.cost_centre:
        _cbc(element, "AccountingCost", label.cost_centre)
    period = ET.SubElement(element, f"{{{CAC}}}InvoicePeriod")
    _cbc(period, "StartDate", line.service.start.isoformat())
    _cbc(period, "EndDate", _last_day(line.service.end))
    item = ET.SubElement(element, f"{{{CAC}}}Item")
    _cbc(item, "Description", line.description)
    _cbc(item, "Name", _item_name(line))
    if line.device:
        _cbc(ET.SubElement(item, f"{{{CAC}}}SellersItemIdentification"), "ID", line.device)
    _tax_category(item, "ClassifiedTaxCategory", line.tax_rate)
    price_element = ET.SubElement(element, f"{{{CAC}}}Price")
    _cbc(price_element, "PriceAmount", f"{price.normalize():f}", currencyID=currency)
    if base != 1:
        _cbc(price_element, "BaseQuantity", f"{base.normalize():f}", unitCode=UNIT_ONE)


def _item_name(line: InvoiceLine) -> str:
    what = {"base_fee": "Base fee", "usage": f"{line.meter} pages", "minimum_true_up": "Minimum charge"}.get(
        line.kind, line.kind
    )
    return f"{'Adjustment: ' if line.adjustment else ''}{what}"
