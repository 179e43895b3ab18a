"""The e-mails a customer gets, in their language: an invoice with its PDF and UBL XML, a payment reminder.

Plain text and HTML from the same phrases (billing.documents.i18n), with the dealer's letterhead from
``[billing.seller]`` under both. Only the message is made here; the daemon's outbox sends it.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formataddr
from typing import Any, Final

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from billing.documents.i18n import Words
from billing.documents.model import Document

# HTML escaped, plain text not: a "&" in a company name must reach the text part as it is.
_TEMPLATES: Final = Environment(
    loader=PackageLoader("billing.documents"),
    undefined=StrictUndefined,
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
)


def invoice_mail(document: Document, pdf: bytes, xml: bytes, seller: dict[str, Any]) -> EmailMessage:
    """The finalised invoice (or credit note) to the customer's billing contact, PDF and XML attached."""
    words = Words(document.language)
    kind = words("credit_note" if document.is_credit_note else "invoice")
    number = document.number or ""
    subject = words(
        "mail_credit_subject" if document.is_credit_note else "mail_invoice_subject",
        seller=seller["name"],
        number=number,
    )
    body = words(
        "mail_invoice_body",
        kind=kind,
        number=number,
        period=document.period.label,
        total=words.money_with_currency(document.totals.total, document.currency),
        due=words.date(document.due_date),
    )
    values = {
        "words": words,
        "seller": seller,
        "contact": document.buyer.contact_name,
        "subject": subject,
        "body": body,
    }
    message = _message(document.buyer.contact_name, document.buyer.email, subject, "mail_invoice", values)
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{number}.pdf")
    message.add_attachment(xml, maintype="application", subtype="xml", filename=f"{number}.xml")
    message["Content-Language"] = words.language  # after the parts: making them moves Content-* headers down
    return message


def reminder_mail(
    text: str, *, language: str, number: str, contact: str, email: str, seller: dict[str, Any]
) -> EmailMessage:
    """A payment reminder: ``text`` as the receivables code rendered it (and the console previews it)."""
    words = Words(language)
    subject = words("mail_reminder_subject", seller=seller["name"], number=number)
    values = {"words": words, "seller": seller, "subject": subject, "text": text.strip()}
    return _message(contact, email, subject, "mail_reminder", values)


def notice_mail(
    *,
    language: str,
    contact: str,
    email: str,
    subject: str,
    paragraphs: list[str],
    seller: dict[str, Any],
    link: str | None = None,
    changes: list[tuple[str, str, str]] | None = None,
) -> EmailMessage:
    """A short notice to one person: paragraphs, an optional link and an optional list of changed fields.

    ``changes``: (field in words, before, after). Made for the portal's invitations, resets and decisions.
    """
    words = Words(language)
    values = {
        "words": words,
        "seller": seller,
        "contact": contact,
        "subject": subject,
        "paragraphs": paragraphs,
        "link": link,
        "changes": changes or [],
    }
    return _message(contact, email, subject, "mail_notice", values)


def _message(name: str, email: str, subject: str, template: str, values: dict[str, Any]) -> EmailMessage:
    message = EmailMessage()
    message["To"] = formataddr((name, email))
    message["Subject"] = subject
    message.set_content(_TEMPLATES.get_template(f"{template}.txt.j2").render(values))
    message.add_alternative(_TEMPLATES.get_template(f"{template}.html.j2").render(values), subtype="html")
    if template != "mail_invoice":  # the invoice's gets it after its attachments
        message["Content-Language"] = values["words"].language
    return message
