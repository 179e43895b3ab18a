"""One invoice or credit note as every output format needs it, frozen from the snapshot taken at finalising."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from billing.invoicing import InvoiceLine, Totals, lacks_meter, totals
from billing.periods import Period


def percent(rate: Decimal) -> str:
    """A tax rate as printed and as UBL wants it: 0.19 -> "19", 0.055 -> "5.5"."""
    return f"{(rate * 100).normalize():f}"


@dataclass(frozen=True, slots=True)
class Party:
    code: str
    legal_name: str
    trade_name: str | None
    street: str
    city: str
    postal_code: str
    country: str
    vat_id: str | None
    endpoint: str  # Peppol electronic address "scheme:id"; "EM:" + e-mail when none is known
    email: str
    phone: str = ""
    contact_name: str = ""

    @classmethod
    def seller(cls, data: dict[str, Any]) -> Party:
        """From the ``[billing.seller]`` settings as dumped into a snapshot."""
        return cls(
            code="seller",
            legal_name=data["name"],
            trade_name=None,
            street=data["street"],
            city=data["city"],
            postal_code=data.get("postal_code") or "",
            country=data["country"],
            vat_id=data.get("tax_id"),
            endpoint=data.get("electronic_address") or f"EM:{data['email']}",
            email=data["email"],
            phone=data.get("phone") or "",
        )

    @classmethod
    def customer(cls, data: dict[str, Any]) -> Party:
        """From a billing.customers.Customer as dumped into a snapshot."""
        contact = next(c for c in data["contacts"] if c.get("billing"))
        address = data["address"]
        vat = data.get("tax_id") if data.get("tax_scheme", "vat") == "vat" else None
        return cls(
            code=data["code"],
            legal_name=data["legal_name"],
            trade_name=data.get("trade_name"),
            street=address["street"],
            city=address["city"],
            postal_code=address.get("postal_code") or "",
            country=address["country"],
            vat_id=vat,
            endpoint=data.get("electronic_address") or f"EM:{contact['email']}",
            email=contact["email"],
            phone=contact.get("phone") or "",
            contact_name=contact["name"],
        )


@dataclass(frozen=True, slots=True)
class DeviceLabel:
    """A device as its customer knows it, frozen with the invoice: model, the office's name, location, cost centre."""

    model: str | None = None
    name: str | None = None
    location: str | None = None
    cost_centre: str | None = None

    @classmethod
    def of(cls, vendor: str | None, model: str | None, **labels: str | None) -> DeviceLabel:
        """The model with its vendor in front, unless the model names it already ("KYOCERA ECOSYS M2540dn")."""
        if vendor and model and vendor.split()[0].lower() not in model.lower():
            model = f"{vendor} {model}"
        return cls(model or vendor, labels.get("name"), labels.get("location"), labels.get("cost_centre"))


@dataclass(frozen=True, slots=True)
class Document:
    invoice_id: int
    kind: str  # invoice | credit_note
    status: str
    number: str | None
    issue_date: date
    due_date: date | None
    period: Period
    currency: str
    seller: Party
    buyer: Party
    lines: tuple[InvoiceLine, ...]
    iban: str | None = None
    bic: str | None = None
    payment_terms_days: int | None = None
    credited_number: str | None = None
    language: str = "en"
    devices: Mapping[str, DeviceLabel] = field(default_factory=dict)  # by device key

    @property
    def is_credit_note(self) -> bool:
        return self.kind == "credit_note"

    @property
    def totals(self) -> Totals:
        return totals(self.lines, self.currency)

    @property
    def shown_lines(self) -> tuple[InvoiceLine, ...]:
        """The lines the customer reads: all but zero lines for a meter the device does not have.

        A mono printer's colour pages bill nothing and would read as a missing reading.
        """
        return tuple(line for line in self.lines if not lacks_meter(line))
