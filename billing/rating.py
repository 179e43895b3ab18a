"""Usage and a contract version in, priced lines out: Decimal, rounded half-up per line.

Every line keeps how it was computed (included pages, proration, tier by tier) so an
invoice can be explained line by line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final, Literal

from billing.contracts import ContractVersion, MeterTerms, Tier
from billing.periods import Period
from daemon.kernel.reading import Meter

# ISO 4217 minor units for the currencies that do not use two.
_MINOR_UNITS: Final = {"JPY": 0, "KRW": 0, "CLP": 0, "ISK": 0, "VND": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3}


@dataclass(frozen=True, slots=True)
class DeviceUsage:
    device: str
    meter: Meter
    pages: int
    estimated: bool = False
    held: bool = False
    reads: dict[str, Any] = field(default_factory=dict)  # the readings behind the pages, for provenance


@dataclass(frozen=True, slots=True)
class Line:
    kind: Literal["base_fee", "usage", "minimum_true_up"]
    description: str
    amount: Decimal
    device: str | None = None
    meter: Meter | None = None
    quantity: Decimal = Decimal(1)
    estimated: bool = False
    held: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rated:
    currency: str
    lines: tuple[Line, ...]
    net: Decimal
    tax: Decimal
    total: Decimal


def money(amount: Decimal, currency: str) -> Decimal:
    """Rounded half-up to the currency's minor unit."""
    return amount.quantize(Decimal(1).scaleb(-_MINOR_UNITS.get(currency, 2)), rounding=ROUND_HALF_UP)


def tier_charge(excess: int, tiers: list[Tier], tiering: str) -> tuple[Decimal, list[dict[str, Any]]]:
    """The charge for ``excess`` pages, and the pages and price of each tier used.

    Graduated: each tier's price for the pages inside it. Volume: the tier that the
    whole excess reaches prices every page (a boundary belongs to the lower tier).
    Each tier used keeps its range as the contract states it, ``from`` and ``up_to`` (None: open),
    for the invoice to print beside its price.
    """
    if excess <= 0:
        return Decimal(0), []
    floors = [1, *(t.up_to + 1 for t in tiers[:-1] if t.up_to is not None)]
    if tiering == "volume":
        index = next(i for i, t in enumerate(tiers) if t.up_to is None or excess <= t.up_to)
        tier = tiers[index]
        return tier.price * excess, [
            {"pages": excess, "price": str(tier.price), "from": floors[index], "up_to": tier.up_to}
        ]
    charge, used, floor = Decimal(0), [], 0
    for tier in tiers:
        ceiling = excess if tier.up_to is None else min(excess, tier.up_to)
        pages = ceiling - floor
        if pages <= 0:
            break
        charge += tier.price * pages
        used.append({"pages": pages, "price": str(tier.price), "from": floor + 1, "up_to": tier.up_to})
        floor = ceiling
    return charge, used


def rate(version: ContractVersion, period: Period, usage: list[DeviceUsage], active_days: dict[str, int]) -> Rated:
    """Price one usage period for the devices of one contract.

    ``active_days`` holds, per device, the days of the period it was under this
    contract: base fees and included pages are prorated by it.
    """
    currency = version.currency
    lines: list[Line] = []
    for device in sorted(active_days):
        share = Decimal(active_days[device]) / Decimal(period.days)
        if version.base_fee:
            lines.append(
                Line(
                    "base_fee",
                    f"base fee {period.start:%Y-%m}",
                    money(version.base_fee * share, currency),
                    device=device,
                    quantity=share,
                    detail={"base_fee": str(version.base_fee), "days": active_days[device], "of_days": period.days},
                )
            )
    pools: dict[tuple[Meter, str], list[DeviceUsage]] = {}
    for item in usage:
        terms = version.terms_for(item.meter)
        if terms is None or item.device not in active_days:
            continue  # a meter the contract does not bill (scans, unless listed)
        if terms.pool:
            pools.setdefault((item.meter, terms.pool), []).append(item)
        else:
            lines.append(
                _usage_line(
                    terms,
                    [item],
                    period=period,
                    active_days=active_days,
                    currency=currency,
                    description=f"{item.meter} {item.device}",
                )
            )
    for (meter, pool), members in sorted(pools.items()):
        terms = version.terms_for(meter)
        assert terms is not None
        lines.append(
            _usage_line(
                terms,
                members,
                period=period,
                active_days=active_days,
                currency=currency,
                description=f"{meter} pool {pool}",
            )
        )
    subtotal = sum((line.amount for line in lines), Decimal(0))
    if version.minimum_charge and subtotal < version.minimum_charge:
        lines.append(
            Line(
                "minimum_true_up",
                "minimum charge true-up",
                money(version.minimum_charge - subtotal, currency),
                detail={"minimum": str(version.minimum_charge), "before_true_up": str(subtotal)},
            )
        )
    net = sum((line.amount for line in lines), Decimal(0))
    tax = money(net * version.tax_rate, currency)
    return Rated(currency, tuple(lines), net, tax, net + tax)


def prorated_included(terms: MeterTerms, days: int, period: Period) -> int:
    """The pages ``terms`` include for a device under contract ``days`` of ``period`` (whole pages, half-up)."""
    return int((Decimal(terms.included) * days / period.days).quantize(Decimal(1), ROUND_HALF_UP))


def _usage_line(
    terms: MeterTerms,
    items: list[DeviceUsage],
    *,
    period: Period,
    active_days: dict[str, int],
    currency: str,
    description: str,
) -> Line:
    pages = sum(item.pages for item in items)
    included = sum(prorated_included(terms, active_days[item.device], period) for item in items)
    excess = max(0, pages - included)
    charge, tiers = tier_charge(excess, terms.tiers, terms.tiering)
    single = items[0].device if len(items) == 1 else None
    return Line(
        "usage",
        description,
        money(charge, currency),
        device=single,
        meter=terms.meter,
        quantity=Decimal(excess),
        estimated=any(item.estimated for item in items),
        held=any(item.held for item in items),
        detail={
            "pages": pages,
            "included": included,
            "excess": excess,
            "tiering": terms.tiering,
            "tiers": tiers,
            "devices": {item.device: item.pages for item in items},
            "reads": {item.device: item.reads for item in items if item.reads},
        },
    )
