"""Contract terms: versioned from a date, validated whole; money is Decimal throughout.

A version holds from its ``valid_from`` until the next version's. A bad contract is
refused with the version and field named, before anything is written.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from billing.anomalies import DetectorSettings
from daemon.kernel.errors import MeterdError
from daemon.kernel.reading import Meter

Cycle = Literal["monthly", "quarterly", "semiannual", "annual"]
MAX_PRICE_DECIMALS = 6


def _price(value: Decimal) -> Decimal:
    if value < 0:
        msg = "must not be negative"
        raise ValueError(msg)
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_PRICE_DECIMALS:
        msg = f"has more than {MAX_PRICE_DECIMALS} decimals"
        raise ValueError(msg)
    return value


def _currency(code: str) -> str:
    if len(code) != 3 or not code.isalpha() or not code.isupper():  # noqa: PLR2004 - ISO 4217 codes
        msg = "must be an ISO 4217 code such as EUR, USD, TRY"
        raise ValueError(msg)
    return code


RecordT = TypeVar("RecordT", bound=BaseModel)
Price = Annotated[Decimal, AfterValidator(_price)]
Currency = Annotated[str, AfterValidator(_currency)]


class ContractError(MeterdError):
    """A contract that cannot be accepted; the message names the contract, version and field."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(Strict):
    """Pages up to ``up_to`` (of the overage) at ``price`` each; the last tier has no ``up_to``."""

    up_to: int | None = Field(default=None, gt=0)
    price: Price


class MeterTerms(Strict):
    meter: Meter = Field(description="the meter the line bills, and its name on the invoice")
    sum_of: list[Meter] = Field(
        default_factory=list,
        description="bill the sum of these meters as ``meter`` (mono = print_mono + copy_mono); empty: ``meter``",
    )
    included: int = Field(default=0, ge=0, description="pages included per device per usage period")
    tiers: list[Tier] = Field(min_length=1)
    tiering: Literal["graduated", "volume"] = "graduated"
    pool: str | None = Field(default=None, description="devices sharing one allowance")

    @property
    def sources(self) -> list[Meter]:
        """The meters whose pages this line bills."""
        return self.sum_of or [self.meter]

    @model_validator(mode="after")
    def _tiers_cover_everything(self) -> MeterTerms:
        if self.sum_of and (len(self.sum_of) < 2 or len(set(self.sum_of)) != len(self.sum_of)):  # noqa: PLR2004 - a sum
            msg = "sum_of names two or more different meters (e.g. [print_mono, copy_mono]); leave it out for one"
            raise ValueError(msg)
        bounds = [tier.up_to for tier in self.tiers]
        if bounds[-1] is not None:
            msg = "the last tier must have no up_to (it covers every page above the others)"
            raise ValueError(msg)
        limits = [b for b in bounds[:-1] if b is not None]
        if len(limits) != len(bounds) - 1 or limits != sorted(set(limits)):
            msg = "tiers must have increasing up_to values and only the last may be open"
            raise ValueError(msg)
        return self


class ContractVersion(Strict):
    valid_from: date
    currency: Currency
    # Unset amounts in cents, as amounts are written: "0.00" beside "40.00", not "0".
    base_fee: Price = Decimal("0.00")  # per device and base period, billed in advance
    base_cycle: Cycle = "monthly"
    usage_cycle: Cycle = "monthly"
    minimum_charge: Price = Decimal("0.00")  # per usage period, for the whole contract
    tax_rate: Decimal = Field(default=Decimal(0), ge=0, le=1)
    meters: list[MeterTerms] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_terms_per_meter(self) -> ContractVersion:
        seen = [terms.meter for terms in self.meters]
        if len(seen) != len(set(seen)):
            msg = "a meter appears twice in meters"
            raise ValueError(msg)
        return self

    def terms_for(self, meter: Meter) -> MeterTerms | None:
        return next((terms for terms in self.meters if terms.meter == meter), None)

    @property
    def source_meters(self) -> set[Meter]:
        """Every meter a device must report for this version to bill it."""
        return {meter for terms in self.meters for meter in terms.sources}


class Contract(Strict):
    id: str = Field(min_length=1, max_length=64)
    customer: str = Field(min_length=1)
    versions: list[ContractVersion] = Field(min_length=1)
    ends: date | None = Field(default=None, description="first day no longer under contract")
    devices: list[str] = Field(
        default_factory=list, description="device keys it covers; empty: every device the customer holds"
    )
    detectors: dict[str, float | int] = Field(
        default_factory=dict, description="anomaly detector knobs for its devices, over their site's ([anomalies])"
    )

    @model_validator(mode="after")
    def _versions_in_order(self) -> Contract:
        starts = [version.valid_from for version in self.versions]
        if starts != sorted(starts) or len(starts) != len(set(starts)):
            msg = "versions overlap: each needs its own valid_from, in increasing order"
            raise ValueError(msg)
        if len({version.currency for version in self.versions}) > 1:
            msg = "all versions of a contract must bill in one currency"
            raise ValueError(msg)
        unknown = sorted(set(self.detectors) - set(DetectorSettings.__dataclass_fields__))
        if unknown:
            msg = f"detectors: {unknown[0]} is not a detector knob; see [anomalies] in config/README.md"
            raise ValueError(msg)
        if self.ends is not None and self.ends <= starts[0]:
            msg = "ends must come after the first version's valid_from"
            raise ValueError(msg)
        return self

    @property
    def currency(self) -> str:
        return self.versions[0].currency

    def covers(self, device: str) -> bool:
        return not self.devices or device in self.devices

    def spans(self, start: date, end: date) -> list[tuple[ContractVersion, date, date]]:
        """The versions in force between ``start`` and ``end`` (exclusive), each with the days it holds."""
        pieces = []
        for index, version in enumerate(self.versions):
            following = self.versions[index + 1].valid_from if index + 1 < len(self.versions) else None
            version_end = min(day for day in (following, self.ends, end) if day is not None)
            piece_start = max(start, version.valid_from)
            if piece_start < version_end:
                pieces.append((version, piece_start, version_end))
        return pieces

    def version_at(self, day: date) -> ContractVersion | None:
        """The version in force on ``day``; None before the first."""
        current = None
        for version in self.versions:
            if version.valid_from <= day:
                current = version
        return current


def parse_contract(data: object) -> Contract:
    """A contract from plain data (JSON, TOML).

    Raises:
        ContractError: naming the contract, the field and the rule.
    """
    return parse_record(Contract, data, key="id", record="contract", error=ContractError)


def parse_record(model: type[RecordT], data: object, *, key: str, record: str, error: type[MeterdError]) -> RecordT:
    """``data`` validated as ``model``; a problem is raised as ``error`` naming the record (by ``key``) and field."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        name = data.get(key, "?") if isinstance(data, dict) else "?"
        raise error(explain(err, f"{record} {name}")) from err


def explain(err: ValidationError, record: str) -> str:
    """One line naming the record, the field and the rule of the first problem found."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    reason = str(first["msg"]).removeprefix("Value error, ")
    return f"{record}: {where}: {reason}" if where else f"{record}: {reason}"
