"""A deployment's own customer card: required fields, typed custom fields, tags."""

from __future__ import annotations

import pytest

from billing.customers import CardRules, CustomerError, CustomField, parse_customer
from tests.unit.test_invoicing import customer

RULES = CardRules(
    required=("tax_id", "custom.account_manager"),
    fields=(
        CustomField("account_manager", "choice", ("anna", "ben")),
        CustomField("fleet_size", "number"),
        CustomField("signed", "date"),
        CustomField("sector", "text"),
    ),
)
GOOD = {"tax_id": "DE136695976", "custom": {"account_manager": "anna", "fleet_size": "12.50", "signed": "2026-01-05"}}


def test_a_complete_card_passes_with_its_values_in_canonical_form() -> None:
    card = RULES.check(parse_customer(customer(**GOOD, tags=["key-account", "education"])))
    assert card.custom == {"account_manager": "anna", "fleet_size": "12.5", "signed": "2026-01-05"}
    assert card.tags == ["key-account", "education"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tax_id": None}, "customer ACME: tax_id: required here"),
        ({"custom": GOOD["custom"] | {"account_manager": ""}}, "customer ACME: custom.account_manager: required here"),
        ({"custom": GOOD["custom"] | {"account_manager": "carl"}}, "custom.account_manager: must be one of anna, ben"),
        ({"custom": GOOD["custom"] | {"fleet_size": "a dozen"}}, "custom.fleet_size: must be a number"),
        ({"custom": GOOD["custom"] | {"fleet_size": "NaN"}}, "custom.fleet_size: must be a number"),
        ({"custom": GOOD["custom"] | {"signed": "5.1.2026"}}, "custom.signed: must be a date as YYYY-MM-DD"),
        ({"custom": GOOD["custom"] | {"colour": "red"}}, "custom.colour: not a field here"),
    ],
)
def test_an_incomplete_or_wrong_card_is_refused_naming_the_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(CustomerError, match=message):
        RULES.check(parse_customer(customer(**(GOOD | change))))


def test_tags_are_lowercase_words() -> None:
    with pytest.raises(CustomerError, match=r"customer ACME: tags\.0: String should match pattern"):
        parse_customer(customer(tags=["Key Account"]))
