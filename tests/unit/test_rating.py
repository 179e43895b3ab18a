"""Rating worked by hand: the arithmetic is written next to each expected figure."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.contracts import ContractError, ContractVersion, MeterTerms, Tier, parse_contract
from billing.customers import parse_customer
from billing.periods import Period
from billing.rating import DeviceUsage, money, rate, tier_charge
from daemon.kernel.reading import Meter

NOV = Period.month(2026, 11)  # 30 days
D = Decimal
TIERS = [Tier(up_to=1000, price=D("0.02")), Tier(up_to=5000, price=D("0.015")), Tier(price=D("0.01"))]


def mono(included: int, price: str, **extra: object) -> MeterTerms:
    return MeterTerms.model_validate(
        {"meter": Meter.MONO, "included": included, "tiers": [Tier(price=D(price))]} | extra
    )


def version(**terms: object) -> ContractVersion:
    base = {"valid_from": date(2026, 1, 1), "currency": "EUR", "tax_rate": D("0.20")}
    return ContractVersion.model_validate(base | terms)


def test_base_fee_included_pages_and_overage() -> None:
    contract = version(
        base_fee=D("50.00"), meters=[MeterTerms(meter=Meter.MONO, included=1000, tiers=[Tier(price=D("0.012"))])]
    )
    rated = rate(contract, NOV, [DeviceUsage("SER1", Meter.MONO, 1234)], {"SER1": 30})
    # base 50.00; overage (1234 - 1000) x 0.012 = 2.808 -> 2.81; net 52.81; tax 20% = 10.562 -> 10.56
    assert [line.amount for line in rated.lines] == [D("50.00"), D("2.81")]
    assert (rated.net, rated.tax, rated.total) == (D("52.81"), D("10.56"), D("63.37"))
    assert rated.lines[1].detail["excess"] == 234


@pytest.mark.parametrize(
    ("excess", "graduated", "volume"),
    [
        (1000, D("20.00"), D("20.00")),  # 1000 x 0.02 both ways: the boundary belongs to the lower tier
        (1001, D("20.015"), D("15.015")),  # graduated 20 + 1 x 0.015; volume 1001 x 0.015
        (5000, D("80.000"), D("75.000")),  # graduated 20 + 4000 x 0.015; volume 5000 x 0.015
        (6000, D("90.000"), D("60.00")),  # graduated 20 + 60 + 1000 x 0.01; volume 6000 x 0.01
    ],
)
def test_graduated_and_volume_tiers_at_the_boundaries(excess: int, graduated: Decimal, volume: Decimal) -> None:
    assert tier_charge(excess, TIERS, "graduated")[0] == graduated
    assert tier_charge(excess, TIERS, "volume")[0] == volume
    assert money(D("20.015"), "EUR") == D("20.02")  # half-up, never banker's rounding


def test_pooled_allowance_over_three_devices() -> None:
    pooled = version(meters=[MeterTerms(meter=Meter.MONO, included=1000, pool="hq", tiers=[Tier(price=D("0.01"))])])
    single = version(meters=[MeterTerms(meter=Meter.MONO, included=1000, tiers=[Tier(price=D("0.01"))])])
    usage = [DeviceUsage("A", Meter.MONO, 500), DeviceUsage("B", Meter.MONO, 1500), DeviceUsage("C", Meter.MONO, 1800)]
    days = {"A": 30, "B": 30, "C": 30}
    # pooled: 3 x 1000 = 3000 included, 3800 printed -> 800 x 0.01 = 8.00, on one line
    assert [line.amount for line in rate(pooled, NOV, usage, days).lines] == [D("8.00")]
    # not pooled: A 0, B 500 x 0.01 = 5.00, C 800 x 0.01 = 8.00 -> 13.00
    assert sum(line.amount for line in rate(single, NOV, usage, days).lines) == D("13.00")


def test_a_device_added_on_the_17th_is_prorated() -> None:
    contract = version(
        base_fee=D("30.00"), meters=[MeterTerms(meter=Meter.MONO, included=1000, tiers=[Tier(price=D("0.01"))])]
    )
    rated = rate(contract, NOV, [DeviceUsage("NEW", Meter.MONO, 600)], {"NEW": 14})  # 17th to 30th November
    # base 30.00 x 14/30 = 14.00; included 1000 x 14/30 = 466.67 -> 467; 600 - 467 = 133 x 0.01 = 1.33
    assert [line.amount for line in rated.lines] == [D("14.00"), D("1.33")]
    assert rated.lines[1].detail["included"] == 467


def test_minimum_charge_is_its_own_true_up_line() -> None:
    contract = version(base_fee=D("50.00"), minimum_charge=D("100.00"), meters=[mono(1000, "0.012")])
    rated = rate(contract, NOV, [DeviceUsage("SER1", Meter.MONO, 1234)], {"SER1": 30})
    # 50.00 + 2.81 = 52.81 < 100.00 -> true-up 47.19; net 100.00; tax 20.00
    assert [(line.kind, line.amount) for line in rated.lines][-1] == ("minimum_true_up", D("47.19"))
    assert (rated.net, rated.tax, rated.total) == (D("100.00"), D("20.00"), D("120.00"))


def test_meters_the_contract_does_not_list_are_not_billed_and_flags_travel() -> None:
    contract = version(meters=[MeterTerms(meter=Meter.COLOR, tiers=[Tier(price=D("0.08"))])])
    usage = [
        DeviceUsage("SER1", Meter.SCAN_TOTAL, 9999),
        DeviceUsage("SER1", Meter.COLOR, 10, estimated=True, held=True),
    ]
    rated = rate(contract, NOV, usage, {"SER1": 30})
    assert [(line.meter, line.amount, line.estimated, line.held) for line in rated.lines] == [
        (Meter.COLOR, D("0.80"), True, True)
    ]


def _versions(*versions: dict[str, object]) -> dict[str, object]:
    return {"versions": [{"valid_from": "2026-01-01", "currency": "EUR"} | v for v in versions]}


def _tiers(*tiers: dict[str, str | int]) -> dict[str, object]:
    return {"meters": [{"meter": "mono", "tiers": list(tiers)}]}


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (_versions({}, {}), "versions overlap"),
        (_versions({"base_fee": "-1"}), r"versions\.0\.base_fee: .*negative"),
        (_versions(_tiers({"up_to": 1000, "price": "0.01"})), "last tier"),
        (
            _versions(_tiers({"up_to": 5000, "price": "0.01"}, {"up_to": 1000, "price": "0.02"}, {"price": "0.01"})),
            "increasing",
        ),
        (_versions({}, {"valid_from": "2026-06-01", "currency": "USD"}), "one currency"),
        (_versions({"currency": "euro"}), "ISO 4217"),
        (_versions(_tiers({"price": "0.0000001"})), "more than 6 decimals"),
        (_versions({}) | {"detectors": {"spike_madz": 4}}, "detectors: spike_madz is not a detector knob"),
    ],
)
def test_bad_contracts_are_refused_naming_the_field(mutation: dict[str, object], message: str) -> None:
    with pytest.raises(ContractError, match=rf"contract C-1: .*{message}"):
        parse_contract({"id": "C-1", "customer": "acme"} | mutation)


def test_the_version_in_force_follows_the_date() -> None:
    contract = parse_contract(
        {
            "id": "C-1",
            "customer": "acme",
            "versions": [
                {"valid_from": "2026-01-01", "currency": "EUR", "base_fee": "40"},
                {"valid_from": "2026-07-01", "currency": "EUR", "base_fee": "45"},
            ],
        }
    )
    assert contract.version_at(date(2025, 12, 31)) is None
    assert contract.version_at(date(2026, 6, 30)).base_fee == D("40")  # type: ignore[union-attr]
    assert contract.version_at(date(2026, 7, 1)).base_fee == D("45")  # type: ignore[union-attr]


@given(
    st.lists(st.integers(0, 200_000), min_size=1, max_size=6),
    st.integers(1, 30),
    st.sampled_from(["graduated", "volume"]),
    st.booleans(),
)
def test_totals_are_the_sum_of_lines_plus_tax_and_never_negative(
    pages: list[int], days: int, tiering: str, pooled: bool
) -> None:
    contract = version(
        base_fee=D("12.34"),
        minimum_charge=D("25"),
        meters=[MeterTerms(meter=Meter.MONO, included=500, tiers=TIERS, tiering=tiering, pool="p" if pooled else None)],
    )
    usage = [DeviceUsage(f"D{n}", Meter.MONO, count) for n, count in enumerate(pages)]
    rated = rate(contract, NOV, usage, {f"D{n}": days for n in range(len(pages))})
    assert rated.net == sum(line.amount for line in rated.lines)
    assert rated.total == rated.net + rated.tax
    assert all(line.amount >= 0 for line in rated.lines)
    assert rated.net >= D("25")
    assert all(line.amount == money(line.amount, "EUR") for line in rated.lines)


def test_the_example_billing_file_loads() -> None:

    data = tomllib.loads((Path(__file__).resolve().parents[2] / "config" / "billing.example.toml").read_text())
    customers = [parse_customer(c) for c in data["customer"]]
    contracts = [parse_contract(c) for c in data["contract"]]
    assert {c.customer for c in contracts} <= {c.code for c in customers}
    assert any(c.detectors for c in contracts)
