"""From customers, contracts, device assignments and period usage to the lines of a draft invoice.

One invoice per paying customer (a head office pays for its branches) and month. Every
line is reconciled against what finalised invoices already billed, keyed by contract, kind,
device, meter, pool and service period:

- base fees are billed in advance: the month itself (for devices that joined in it) and the
  rest of the base cycle that the next day falls in; days billed before and no longer held
  come back as a credit;
- usage is billed for the usage cycle that ends with the month; a cycle already invoiced
  whose figures changed since (a late or corrected read, a resolved hold) becomes an
  adjustment line for the difference, so a finalised invoice never changes.

Pure functions: the store loads the inputs and writes the result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any, Final

import pandas as pd

from billing.contracts import Contract, ContractVersion
from billing.customers import Customer
from billing.periods import Period, add_months, cycle_containing, cycles_between, merge, subtract, utc_midnight
from billing.rating import DeviceUsage, money, rate
from daemon.kernel.errors import MeterdError
from daemon.kernel.reading import Meter

BASE_FEE: Final = "base_fee"
USAGE: Final = "usage"
MINIMUM: Final = "minimum_true_up"

LineKey = tuple[str, str, str | None, str | None, str | None, date, date]


class BillingError(MeterdError):
    """Input billing cannot proceed with; the message names the record and field, and what to do."""


@dataclass(frozen=True, slots=True)
class Assignment:
    device: str
    customer: str
    start: date
    end: date | None  # exclusive; None while the customer still holds it

    def during(self, period: Period) -> Period | None:
        return period.overlap(Period(self.start, self.end or date.max))


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    kind: str
    adjustment: bool
    description: str
    customer: str
    contract: str
    device: str | None
    meter: str | None
    pool: str | None
    service: Period
    quantity: Decimal
    amount: Decimal
    tax_rate: Decimal
    estimated: bool = False
    held: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> LineKey:
        return (self.contract, self.kind, self.device, self.meter, self.pool, self.service.start, self.service.end)


@dataclass(frozen=True, slots=True)
class Totals:
    net: Decimal
    tax: Decimal
    total: Decimal
    by_rate: dict[Decimal, tuple[Decimal, Decimal]]  # rate -> (taxable, tax)


@dataclass(frozen=True)
class Book:
    """What billing knows about customers: the accounts, their contracts and who held which device when.

    Indexed once (payer, members, contracts and assignments per customer): a month of
    1,000 customers must not scan every assignment once per contract.
    """

    customers: dict[str, Customer]
    contracts: list[Contract]
    assignments: list[Assignment]
    _payer: dict[str, str] = field(init=False, repr=False, compare=False)
    _members: dict[str, list[str]] = field(init=False, repr=False, compare=False)
    _contracts_of: dict[str, list[Contract]] = field(init=False, repr=False, compare=False)
    _assignments_of: dict[str, list[Assignment]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        payer = {code: self._walk_to_payer(code) for code in self.customers}
        members: dict[str, list[str]] = defaultdict(list)
        for code in sorted(self.customers):
            members[payer[code]].append(code)
        contracts_of: dict[str, list[Contract]] = defaultdict(list)
        for contract in self.contracts:
            contracts_of[contract.customer].append(contract)
        assignments_of: dict[str, list[Assignment]] = defaultdict(list)
        for assignment in self.assignments:
            assignments_of[assignment.customer].append(assignment)
        object.__setattr__(self, "_payer", payer)
        object.__setattr__(self, "_members", dict(members))
        object.__setattr__(self, "_contracts_of", dict(contracts_of))
        object.__setattr__(self, "_assignments_of", dict(assignments_of))

    def _walk_to_payer(self, code: str) -> str:
        seen = [code]
        while (parent := self.customers[seen[-1]].parent) is not None:
            if parent in seen:
                msg = f"customer {code}: parent: the chain {' -> '.join([*seen, parent])} loops"
                raise BillingError(msg)
            if parent not in self.customers:
                msg = f"customer {seen[-1]}: parent: no customer {parent!r}"
                raise BillingError(msg)
            seen.append(parent)
        return seen[-1]

    def payer_of(self, code: str) -> str:
        return self._payer[code]

    def members(self, payer: str) -> list[str]:
        return self._members.get(payer, [])

    def payers(self) -> list[str]:
        return sorted(self._members)

    def contracts_of(self, customer: str) -> list[Contract]:
        return self._contracts_of.get(customer, [])

    def assignments_of(self, customer: str) -> list[Assignment]:
        return self._assignments_of.get(customer, [])


@dataclass(frozen=True, slots=True)
class UsageJob:
    """One contract's usage cycle to rate: the devices and the days each was under the contract."""

    customer: str
    contract: Contract
    version: ContractVersion
    cycle: Period
    held_days: dict[str, list[Period]]


@dataclass
class Draft:
    payer: str
    month: Period
    currency: str
    lines: list[InvoiceLine]
    checks: list[str]

    @property
    def totals(self) -> Totals:
        return totals(self.lines, self.currency)


def totals(lines: Iterable[InvoiceLine], currency: str) -> Totals:
    """Net, tax per rate (rounded once per rate, as EN 16931 wants) and total, from the lines alone."""
    taxable: dict[Decimal, Decimal] = defaultdict(Decimal)
    for line in lines:
        taxable[line.tax_rate] += line.amount
    by_rate = {r: (amount, money(amount * r, currency)) for r, amount in sorted(taxable.items())}
    net = sum((amount for amount, _ in by_rate.values()), Decimal(0))
    tax = sum((tax for _, tax in by_rate.values()), Decimal(0))
    return Totals(net, tax, net + tax, by_rate)


def check(book: Book, payer: str, month: Period) -> None:
    """Refuse a month that cannot be billed: currency mismatches, uncovered or doubly covered devices.

    Raises:
        BillingError: naming the customer, contract or device, and the field.
    """
    currency = book.customers[payer].currency
    for code in book.members(payer):
        customer = book.customers[code]
        if customer.currency != currency:
            msg = f"customer {code}: currency: {customer.currency} but its payer {payer} bills in {currency}"
            raise BillingError(msg)
        contracts = book.contracts_of(code)
        for contract in contracts:
            if contract.currency != currency:
                msg = f"contract {contract.id}: currency: {contract.currency} but customer {code} bills in {currency}"
                raise BillingError(msg)
        for assignment in book.assignments_of(code):
            held = assignment.during(month)
            if held is None:
                continue
            covering = [(c, _covered(c, held)) for c in contracts if c.covers(assignment.device)]
            uncovered = subtract([held], [p for _, pieces in covering for p in pieces])
            if uncovered:
                gap = uncovered[0]
                msg = (
                    f"customer {code}: device {assignment.device} is held {gap.start}..{gap.end} but no contract "
                    "covers it; add a contract (or list the device in one) or end the assignment"
                )
                raise BillingError(msg)
            _refuse_double_cover(code, assignment.device, covering)


def _refuse_double_cover(customer: str, device: str, covering: list[tuple[Contract, list[Period]]]) -> None:
    for index, (first, first_pieces) in enumerate(covering):
        for second, second_pieces in covering[index + 1 :]:
            for a in first_pieces:
                for b in second_pieces:
                    if (both := a.overlap(b)) is not None:
                        msg = (
                            f"customer {customer}: device {device} is covered by contracts {first.id} "
                            f"and {second.id} on {both.start}; list the device in one only"
                        )
                        raise BillingError(msg)


def _covered(contract: Contract, period: Period) -> list[Period]:
    return [Period(start, end) for _, start, end in contract.spans(period.start, period.end)]


def usage_jobs(book: Book, payer: str, cycles_ending: Sequence[date]) -> list[UsageJob]:
    """The usage cycles of the payer's contracts that end on one of ``cycles_ending``."""
    jobs = []
    for code in book.members(payer):
        for contract in book.contracts_of(code):
            for end in cycles_ending:
                last_day = date.fromordinal(end.toordinal() - 1)
                version = contract.version_at(last_day)
                if version is None:
                    continue
                cycle = cycle_containing(last_day, version.usage_cycle)
                if cycle.end != end:
                    continue  # this contract's usage cycle does not end here
                # The version in force on the cycle's first day prices the whole cycle.
                version = contract.version_at(cycle.start) or version
                held: dict[str, list[Period]] = defaultdict(list)
                for assignment in book.assignments_of(code):
                    if not contract.covers(assignment.device):
                        continue
                    if (piece := assignment.during(cycle)) is not None:
                        held[assignment.device].extend(_covered(contract, piece))
                if held:
                    jobs.append(UsageJob(code, contract, version, cycle, {d: merge(p) for d, p in held.items()}))
    return jobs


def usage_requests(jobs: Iterable[UsageJob]) -> pd.DataFrame:
    """One row per device x read meter x held piece of a cycle, for :func:`billing.reads.period_usage`.

    ``billed`` is the contract line's meter: a line that bills a sum (mono = print_mono + copy_mono)
    reads each of its meters.
    """
    rows = [
        (index, device, str(source), str(terms.meter), _utc(piece.start), _utc(piece.end))
        for index, job in enumerate(jobs)
        for terms in job.version.meters
        for source in terms.sources
        for device, pieces in job.held_days.items()
        for piece in pieces
    ]
    return pd.DataFrame(rows, columns=["job", "device", "meter", "billed", "start", "end"])


def _utc(day: date) -> pd.Timestamp:
    return pd.Timestamp(utc_midnight(day))


def rate_jobs(jobs: Sequence[UsageJob], requests: pd.DataFrame, usage: pd.DataFrame) -> list[InvoiceLine]:
    """Usage and minimum true-up lines of each job, with the reads behind every figure."""
    pieces = _pieces(requests.join(usage))
    lines = []
    for index, job in enumerate(jobs):
        items = _device_usage(pieces.get(index, {}))
        active = {device: sum(p.days for p in spans) for device, spans in job.held_days.items()}
        rated = rate(job.version, job.cycle, items, active)
        for line in rated.lines:
            if line.kind == BASE_FEE:
                continue  # base fees are billed in advance, apart (rate() counts them for the minimum only)
            description = _describe(line.description, line.detail, job.cycle, job.contract.id)
            lines.append(
                InvoiceLine(
                    kind=line.kind,
                    adjustment=False,
                    description=description,
                    customer=job.customer,
                    contract=job.contract.id,
                    device=line.device,
                    meter=str(line.meter) if line.meter else None,
                    pool=job.version.terms_for(line.meter).pool if line.meter else None,  # type: ignore[union-attr]
                    service=job.cycle,
                    quantity=line.quantity,
                    amount=line.amount,
                    tax_rate=job.version.tax_rate,
                    estimated=line.estimated,
                    held=line.held,
                    provenance=line.detail,
                )
            )
    return lines


def _describe(what: str, detail: dict[str, Any], cycle: Period, contract: str) -> str:
    if "pages" not in detail:
        return f"{what} {cycle.label} (contract {contract})"
    return f"{what} {cycle.label}: {detail['pages']:,} pages, {detail['included']:,} included"


Piece = dict[str, Any]


def _pieces(merged: pd.DataFrame) -> dict[int, dict[tuple[str, str], list[Piece]]]:
    """The usage frame as plain records, by job and device x meter: one pass over columns, no per-row pandas."""
    out: dict[int, dict[tuple[str, str], list[Piece]]] = defaultdict(lambda: defaultdict(list))
    if merged.empty:
        return out
    columns = {name: merged[name].tolist() for name in merged.columns}
    for side in ("start", "end"):
        columns[f"{side}_at"] = [None if pd.isna(at) else at.isoformat() for at in columns[f"{side}_at"]]
        columns[f"{side}_value"] = [None if pd.isna(v) else int(v) for v in columns[f"{side}_value"]]
    for i, job in enumerate(columns["job"]):
        piece = {
            "meter": str(columns["meter"][i]),
            "start": _read(columns, "start", i),
            "end": _read(columns, "end", i),
            "pages": int(columns["usage"][i]),
            "segments": int(columns["segments"][i]),
            "wraps": int(columns["wraps"][i]),
            "held_readings": int(columns["held"][i]),
            "no_reads": bool(columns["no_reads"][i]),
        }
        if columns["segment_reads"][i]:
            piece["segment_reads"] = columns["segment_reads"][i]
        out[int(job)][(str(columns["device"][i]), str(columns["billed"][i]))].append(piece)
    return out


def read_pairs(piece: Piece) -> list[Piece]:
    """A held piece's read pairs, one per segment (a reset starts one), each with the piece's own facts.

    A pair: ``start``, ``end``, ``pages``, ``segment``, and ``segments``, ``held_readings``, ``no_reads`` ….

    On every pair end - start = pages (but for a Counter32 wrap inside it); the segments' pages add up to the piece's.
    """
    pairs = piece.get("segment_reads") or [{"start": piece["start"], "end": piece["end"], "pages": piece["pages"]}]
    facts = {key: value for key, value in piece.items() if key != "segment_reads"}
    return [facts | pair | {"segment": number} for number, pair in enumerate(pairs, 1)]


def line_pairs(line: InvoiceLine) -> list[tuple[str, Piece]]:
    """Every read pair behind a usage line, with its device: one per device x held piece x segment."""
    return [(device, pair) for device, piece in _device_pieces(line) for pair in read_pairs(piece)]


def _device_pieces(line: InvoiceLine) -> list[tuple[str, Piece]]:
    """The held pieces behind a usage line (one per device x meter x held span), with their device."""
    return [
        (device, piece)
        for device, reads in sorted(line.provenance.get("reads", {}).items())
        for piece in reads.get("pieces", [])
    ]


def _read(columns: dict[str, list[Any]], side: str, i: int) -> dict[str, Any]:
    return {
        "row": int(columns[f"{side}_row_id"][i]),
        "value": columns[f"{side}_value"][i],
        "at": columns[f"{side}_at"][i],
        "estimated": bool(columns[f"{side}_estimated"][i]),
        "first_read": bool(columns[f"{side}_first_read"][i]),
        "basis_row": int(columns[f"{side}_basis_row"][i]),
    }


def _device_usage(pieces: dict[tuple[str, str], list[Piece]]) -> list[DeviceUsage]:
    return [
        DeviceUsage(
            device=device,
            meter=Meter(meter),
            pages=sum(piece["pages"] for piece in group),
            estimated=any(piece["start"]["estimated"] or piece["end"]["estimated"] for piece in group),
            held=any(piece["held_readings"] > 0 for piece in group),
            reads={"pieces": group},
        )
        for (device, meter), group in sorted(pieces.items())
    ]


def base_fee_lines(book: Book, payer: str, month: Period, billed: Sequence[InvoiceLine]) -> list[InvoiceLine]:
    """Base fees for the month and the rest of the base cycle that follows it, less what was billed already."""
    already: dict[tuple[str, str], list[InvoiceLine]] = defaultdict(list)
    for line in billed:
        if line.kind == BASE_FEE and line.device is not None:
            already[(line.contract, line.device)].append(line)
    lines = []
    for code in book.members(payer):
        for contract in book.contracts_of(code):
            version_next = contract.version_at(month.end) or contract.versions[-1]
            window = Period(month.start, cycle_containing(month.end, version_next.base_cycle).end)
            devices: dict[str, list[Period]] = defaultdict(list)
            for assignment in book.assignments_of(code):
                if contract.covers(assignment.device) and (piece := assignment.during(window)) is not None:
                    devices[assignment.device].append(piece)
            for device in sorted(set(devices) | {d for c, d in already if c == contract.id}):
                held = merge(devices.get(device, []))
                lines.extend(
                    _base_for_device(
                        code, contract, device, window=window, held=held, billed=already.get((contract.id, device), [])
                    )
                )
    return lines


def _base_for_device(
    customer: str, contract: Contract, device: str, *, window: Period, held: list[Period], billed: list[InvoiceLine]
) -> list[InvoiceLine]:
    charged = [line.service for line in billed if line.amount > 0]
    credited = [line.service for line in billed if line.amount < 0]
    billed_days = merge(subtract(charged, credited))
    billed_in_window = [piece for days in billed_days if (piece := days.overlap(window)) is not None]
    lines = []
    for sign, pieces in ((1, subtract(held, billed_days)), (-1, subtract(billed_in_window, held))):
        for piece in pieces:
            for version, start, end in contract.spans(piece.start, piece.end):
                if not version.base_fee:
                    continue
                for part in cycles_between(Period(start, end), version.base_cycle):
                    cycle = cycle_containing(part.start, version.base_cycle)
                    share = Decimal(part.days) / Decimal(cycle.days)
                    amount = sign * money(version.base_fee * share, version.currency)
                    what = "base fee" if sign > 0 else "base fee credit (device no longer held)"
                    lines.append(
                        InvoiceLine(
                            kind=BASE_FEE,
                            adjustment=sign < 0,
                            description=f"{what} {device} {part.label}",
                            customer=customer,
                            contract=contract.id,
                            device=device,
                            meter=None,
                            pool=None,
                            service=part,
                            quantity=sign * share.quantize(Decimal("0.0001")),
                            amount=amount,
                            tax_rate=version.tax_rate,
                            provenance={
                                "base_fee": str(version.base_fee),
                                "days": part.days,
                                "cycle_days": cycle.days,
                                "version_from": version.valid_from.isoformat(),
                            },
                        )
                    )
    return lines


def reconcile(desired: Sequence[InvoiceLine], billed: Sequence[InvoiceLine], current: Period) -> list[InvoiceLine]:
    """Lines for what ``desired`` wants beyond what ``billed`` holds, key by key.

    A key of the current cycle that was never billed becomes its own line, even at zero (the
    device's reads belong on the invoice); anything else that differs becomes an adjustment.
    """
    billed_by_key: dict[LineKey, list[InvoiceLine]] = defaultdict(list)
    for line in billed:
        billed_by_key[line.key].append(line)
    desired_keys = {line.key for line in desired}
    out = []
    for line in desired:
        before = billed_by_key.get(line.key, [])
        if not before and line.service.end == current.end:
            out.append(line)
            continue
        paid = sum((b.amount for b in before), Decimal(0))
        if line.amount == paid:
            continue
        out.append(_adjustment(line, paid, line.amount - paid, before))
    for key, before in billed_by_key.items():
        paid = sum((b.amount for b in before), Decimal(0))
        if key not in desired_keys and paid and before[0].kind != BASE_FEE:
            gone = replace(before[0], amount=Decimal(0), quantity=Decimal(0), provenance={})
            out.append(_adjustment(gone, paid, -paid, before))
    return out


def _adjustment(line: InvoiceLine, paid: Decimal, difference: Decimal, before: list[InvoiceLine]) -> InvoiceLine:
    billed_quantity = sum((b.quantity for b in before), Decimal(0))
    return replace(
        line,
        adjustment=True,
        description=f"adjustment {line.description}: billed {paid}, now {line.amount}",
        amount=difference,
        quantity=line.quantity - billed_quantity,
        provenance={**line.provenance, "billed_amount": str(paid), "now_amount": str(line.amount)},
    )


def unsupplied_meters(
    book: Book, assignment: Assignment, reported: Iterable[str], *, contract: str | None = None
) -> list[str]:
    """Warnings, one per contract x meter, for meters the device has never reported that its contracts bill.

    Every version in force from the assignment's first day on counts; ``reported``: every meter the
    device has; ``contract``: that contract only.
    """
    have = sorted(set(reported))
    warnings = []
    for terms in book.contracts_of(assignment.customer):
        if not terms.covers(assignment.device) or contract not in {None, terms.id}:
            continue
        versions = [v for v in terms.versions if v.valid_from > assignment.start]
        if (first := terms.version_at(assignment.start)) is not None:
            versions.insert(0, first)
        for meter in sorted({str(m) for version in versions for m in version.source_meters} - set(have)):
            what = f"it reports {', '.join(have)}" if have else "it has reported no meter yet"
            warnings.append(
                f"device {assignment.device}: contract {terms.id} bills meter {meter}, which the "
                f"device has never reported ({what}); its lines will not bill until it does"
            )
    return warnings


def devices_without_reads(lines: Iterable[InvoiceLine]) -> set[str]:
    """Devices with a billed meter that has no read at all in a period (to ask the store what they do report)."""
    return {device for line in lines for device, piece in _device_pieces(line) if piece["no_reads"]}


def mark_unsupplied(lines: Sequence[InvoiceLine], reported: Mapping[str, Iterable[str]]) -> list[InvoiceLine]:
    """Pieces without reads of a meter their device has never reported, though it reports others, say what it reports.

    ``reported``: the meters each device has ever reported. Such a piece is not a missing read
    (one may still come) but a meter the device cannot supply: the contract bills what it does not count.
    """
    out = []
    for line in lines:
        pieces = _device_pieces(line)
        if not any(piece["no_reads"] and reported.get(device) for device, piece in pieces):
            out.append(line)
            continue
        reads: dict[str, Any] = {}
        for device, piece in pieces:
            have = sorted(reported.get(device, ()))
            if piece["no_reads"] and have and piece.get("meter", line.meter) not in have:
                piece = piece | {"reports": have}  # noqa: PLW2901 - the marked copy replaces it
            reads.setdefault(device, {"pieces": []})["pieces"].append(piece)
        out.append(replace(line, provenance={**line.provenance, "reads": reads}))
    return out


def _unsupplied(line: InvoiceLine) -> list[str]:
    """'KM1 mono (it reports copy_mono, print_mono)' per meter the line's devices cannot supply."""
    return sorted(
        {
            f"{device} {piece.get('meter', line.meter)} (it reports {', '.join(piece['reports'])})"
            for device, piece in _device_pieces(line)
            if piece.get("reports")
        }
    )


def lacks_meter(line: InvoiceLine) -> bool:
    """A zero line for a meter none of its devices has ever reported (the colour pages of a mono printer)."""
    pairs = line_pairs(line)
    return not line.amount and bool(pairs) and all(pair.get("reports") for _, pair in pairs)


def blocking_items(lines: Sequence[InvoiceLine]) -> list[str]:
    """What stops finalising unless overridden with a reason.

    Held lines, missing reads on billed meters, meters a device cannot supply.
    """
    items = []
    for line in lines:
        label = f"{line.description} ({line.amount})"
        if line.held:
            items.append(f"HELD: {label}: readings under review; resolve them (`meterd anomalies list`)")
        if unsupplied := _unsupplied(line):
            items.append(
                f"meter not reported: {label}: {'; '.join(unsupplied)}; bill what the device counts "
                "(a contract line may sum meters: sum_of) or fix its profile"
            )
        elif any(piece["no_reads"] for _, piece in _device_pieces(line)):
            items.append(f"no reads at all: {label}: the device sent none of this meter in the period")
    return items


def double_checks(lines: Sequence[InvoiceLine]) -> list[str]:
    """What the person who finalises should look at.

    The blocking items first, then estimates, first reads (installations), true-ups, adjustments.
    """
    notes = blocking_items(lines)
    for line in lines:
        label = f"{line.description} ({line.amount})"
        if line.estimated:
            notes.append(f"estimated: {label}")
        first = sorted(
            {
                f"{device} {str(pair['start']['at'])[:10]}"
                for device, pair in line_pairs(line)
                if pair["start"].get("first_read")
            }
        )
        if first:
            notes.append(f"first read (installation, outside the read window): {label}: {', '.join(first)}")
        if line.kind == MINIMUM:
            notes.append(f"minimum charge true-up: {label}")
        if line.adjustment:
            notes.append(f"adjustment: {label}")
    return notes


def previous_months(month: Period, count: int) -> list[Period]:
    return [Period(add_months(month.start, -n), add_months(month.start, 1 - n)) for n in range(count, 0, -1)]


def cycles_to_rate(month: Period, finalised: Iterable[Period], adjust_months: int) -> list[date]:
    """Cycle ends to rate for ``month``: its own, and those of invoiced months a late read may have changed."""
    done = set(finalised)
    return [m.end for m in previous_months(month, adjust_months) if m in done] + [month.end]


def assemble(
    book: Book, payer: str, month: Period, usage_lines: Sequence[InvoiceLine], billed: Sequence[InvoiceLine]
) -> Draft:
    """The payer's draft for ``month``: base fees in advance, usage, adjustments; each line once, sorted."""
    lines = base_fee_lines(book, payer, month, billed) + reconcile(usage_lines, billed, month)
    lines = [_branch_named(line, payer) for line in lines]
    lines.sort(key=_line_order)
    return Draft(payer, month, book.customers[payer].currency, lines, double_checks(lines))


def _line_order(line: InvoiceLine) -> tuple[Any, ...]:
    kinds = {BASE_FEE: 0, USAGE: 1, MINIMUM: 2}
    return (
        line.adjustment,
        line.customer,
        line.contract,
        kinds.get(line.kind, 9),
        line.device or "",
        line.meter or "",
        line.pool or "",
        line.service.start,
        line.service.end,
    )


def _branch_named(line: InvoiceLine, payer: str) -> InvoiceLine:
    """A branch's lines on its head office's invoice say whose they are."""
    if line.customer == payer or line.description.startswith(f"{line.customer}: "):
        return line
    return replace(line, description=f"{line.customer}: {line.description}")
