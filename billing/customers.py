"""Customer accounts as data: validated whole, tax numbers checked per country with python-stdnum."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from billing.contracts import Currency, Strict, parse_record
from daemon.kernel.errors import MeterdError

# EU member states: their VAT numbers carry the country prefix (Greece's is EL), as Peppol expects.
_EU: Final = frozenset(
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK".split()  # noqa: SIM905
)
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Schemes python-stdnum knows under another module name than the scheme's.
_MODULE_FOR: Final = {"tckn": "tckimlik"}
UNVALIDATED: Final = "other"


class CustomerError(MeterdError):
    """A customer record that cannot be accepted; the message names the customer and field."""


def _country(code: str) -> str:
    if len(code) != 2 or not code.isalpha() or not code.isupper():  # noqa: PLR2004 - ISO 3166 alpha-2
        msg = "must be an ISO 3166 two-letter code such as DE, TR, CN"
        raise ValueError(msg)
    return code


def _email(text: str) -> str:
    if not _EMAIL.match(text):
        msg = "is not an e-mail address"
        raise ValueError(msg)
    return text


Country = Annotated[str, AfterValidator(_country)]
Email = Annotated[str, AfterValidator(_email)]


class Address(Strict):
    street: str = Field(min_length=1)
    city: str = Field(min_length=1)
    postal_code: str = ""
    region: str = ""
    country: Country


class Contact(Strict):
    name: str = Field(min_length=1)
    role: str = ""
    email: Email | None = None
    phone: str = ""
    billing: bool = False


class Customer(Strict):
    code: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    legal_name: str = Field(min_length=1, max_length=256)
    trade_name: str | None = None
    country: Country
    tax_id: str | None = None
    tax_scheme: str = Field(default="vat", description="vat, vkn, tckn, uscc, ein … or 'other' (not validated)")
    electronic_address: str | None = Field(
        default=None, pattern=r"^[0-9A-Z]{2,4}:\S+$", description="Peppol endpoint 'scheme:id', e.g. 0208:0123456789"
    )
    address: Address
    contacts: list[Contact] = Field(min_length=1)
    payment_method: Literal["bank_transfer", "direct_debit", "card", "cash", "cheque"] = "bank_transfer"
    payment_terms_days: int = Field(default=30, ge=0, le=365)
    currency: Currency
    language: str = Field(default="en", pattern=r"^[a-z]{2}(-[A-Z][a-z]{3})?(-[A-Z]{2})?$")  # zh-Hans: a script
    parent: str | None = Field(default=None, description="code of the head office that pays for this customer")
    notes: str = ""
    sites: list[str] = Field(default_factory=list, description="agent site names that belong to this customer")
    tags: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]] = Field(
        default_factory=list, description="classification: lowercase words (key-account, education, …)"
    )
    custom: dict[str, str] = Field(default_factory=dict, description="the deployment's own fields ([customers.fields])")

    @model_validator(mode="after")
    def _checked(self) -> Customer:
        billing = [contact for contact in self.contacts if contact.billing]
        if len(billing) != 1:
            msg = "contacts: exactly one contact must have billing = true"
            raise ValueError(msg)
        if billing[0].email is None:
            msg = "contacts: the billing contact needs an email"
            raise ValueError(msg)
        if self.parent == self.code:
            msg = "parent: a customer cannot be its own parent"
            raise ValueError(msg)
        if self.tax_id is not None:
            try:
                compact = normalise_tax_id(self.tax_id, self.country, self.tax_scheme)
            except ValueError as err:
                msg = f"tax_id: {err}"
                raise ValueError(msg) from err
            object.__setattr__(self, "tax_id", compact)
        return self

    @property
    def billing_contact(self) -> Contact:
        return next(contact for contact in self.contacts if contact.billing)

    @property
    def display_name(self) -> str:
        return self.trade_name or self.legal_name


def normalise_tax_id(number: str, country: str, scheme: str) -> str:
    """The tax number in its compact form, after python-stdnum accepted it for the country and scheme.

    Raises:
        ValueError: invalid for that scheme, or no validator exists (use scheme 'other' to skip).
    """
    if scheme == UNVALIDATED:
        return number.strip()
    # python-stdnum's EU VAT module loads every member state's (~4 MB): only where a number is checked,
    # not in every process that reads the settings (an agent never does).
    from stdnum import get_cc_module  # noqa: PLC0415 - see above
    from stdnum.eu import vat as eu_vat  # noqa: PLC0415 - see above

    if scheme == "vat" and country in _EU:
        prefixed = number if number[:2].upper() in {country, "EL"} else ("EL" if country == "GR" else country) + number
        return _validated(eu_vat, prefixed, f"not a valid {country} VAT number")
    module = get_cc_module(country.lower(), _MODULE_FOR.get(scheme, scheme))
    if module is None:
        msg = f"python-stdnum has no {scheme!r} validator for {country}; set tax_scheme = 'other' to keep it unchecked"
        raise ValueError(msg)
    return _validated(module, number, f"not a valid {country} {scheme} number")


def _validated(module: object, number: str, message: str) -> str:
    from stdnum.exceptions import ValidationError as StdnumError  # noqa: PLC0415 - loaded with the validator

    try:
        compact: str = module.validate(number)  # type: ignore[attr-defined]
    except StdnumError as err:
        msg = f"{message} ({err})"
        raise ValueError(msg) from err
    return compact


def parse_customer(data: object) -> Customer:
    """A customer from plain data (TOML, JSON, CSV row).

    Raises:
        CustomerError: naming the customer, the field and the rule.
    """
    return parse_record(Customer, data, key="code", record="customer", error=CustomerError)


@dataclass(frozen=True, slots=True)
class CustomField:
    """A field a deployment adds to its customer cards: text, number, date, or one of some choices."""

    name: str
    kind: Literal["text", "number", "date", "choice"]
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CardRules:
    """What this deployment requires of a customer card, and the fields it adds."""

    required: tuple[str, ...] = ()  # card fields ("tax_id") or custom ones ("custom.account_manager")
    fields: tuple[CustomField, ...] = ()

    def check(self, card: Customer) -> Customer:
        """The card with its custom values in their canonical form.

        Raises:
            CustomerError: naming the customer and the field: missing, unknown, or not of its kind.
        """
        known = {field.name: field for field in self.fields}
        canonical = {}
        for name, value in card.custom.items():
            if name not in known:
                raise CustomerError(
                    f"customer {card.code}: custom.{name}: not a field here; [customers.fields] has "
                    f"{', '.join(sorted(known)) or 'none'}"
                )
            if value.strip():
                canonical[name] = _canonical(card.code, known[name], value.strip())
        for required in self.required:
            present: object = (
                canonical.get(required.removeprefix("custom."))
                if required.startswith("custom.")
                else getattr(card, required, None)
            )
            if present in (None, "", []):
                raise CustomerError(f"customer {card.code}: {required}: required here ([customers] required)")
        return card.model_copy(update={"custom": canonical})


def _canonical(code: str, field: CustomField, value: str) -> str:
    where = f"customer {code}: custom.{field.name}"
    if field.kind == "number":
        try:
            return str(Decimal(value).normalize()) if Decimal(value).is_finite() else _bad(where, "a number")
        except InvalidOperation:
            return _bad(where, "a number, e.g. 12.5")
    if field.kind == "date":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            return _bad(where, "a date as YYYY-MM-DD")
    if field.kind == "choice" and value not in field.choices:
        return _bad(where, f"one of {', '.join(field.choices)}")
    return value


def _bad(where: str, wanted: str) -> str:
    raise CustomerError(f"{where}: must be {wanted}")
