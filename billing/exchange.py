"""Customer cards, their contacts and device assignments as CSV files, both ways.

Three files, one row per record: ``customers.csv`` (the card, its address flattened,
sites joined by ``;``), ``contacts.csv`` (``customer`` names the card) and
``assignments.csv``. Reading checks every row and reports every problem with its file,
row (as a spreadsheet numbers it: the header is row 1) and column, so a whole file can
be mended in one pass; nothing is half-read. Written as UTF-8 with a byte-order mark, so
spreadsheet programs open accents and CJK right; read as UTF-8 (mark or not) unless an
encoding is named (Windows-1254 for Turkish Excel files, GB18030 for Chinese ones). A cell
that a spreadsheet would run as a formula is written with a leading ``'`` and read back
without it (billing/cells.py).

Pure: bytes and records in, records and problems out; the store applies them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from pydantic import ValidationError

from billing.cells import from_cell, to_cell
from billing.customers import CardRules, Customer, CustomerError
from billing.invoicing import Assignment
from daemon.kernel.errors import MeterdError

CUSTOMER_COLUMNS: Final = (
    "code",
    "legal_name",
    "trade_name",
    "country",
    "tax_id",
    "tax_scheme",
    "electronic_address",
    "street",
    "city",
    "postal_code",
    "region",
    "address_country",
    "payment_method",
    "payment_terms_days",
    "currency",
    "language",
    "parent",
    "sites",
    "tags",
    "notes",
)
CUSTOM_PREFIX: Final = "custom."
CONTACT_COLUMNS: Final = ("customer", "name", "role", "email", "phone", "billing")
ASSIGNMENT_COLUMNS: Final = ("device", "customer", "from", "to")
DEVICE_COLUMNS: Final = ("key", "vendor", "model", "address", "site", "name", "location", "cost_centre")
# Columns a devices.csv written before they existed may lack: read as empty.
DEVICE_LABELS: Final = ("name", "location", "cost_centre")
# The store's column widths: a longer cell is a row problem, not a database error.
DEVICE_LIMITS: Final = {
    "key": 128,
    "site": 128,
    "vendor": 128,
    "model": 256,
    "address": 256,
    "name": 128,
    "location": 256,
    "cost_centre": 64,
}
_ADDRESS: Final = {
    "street": "street",
    "city": "city",
    "postal_code": "postal_code",
    "region": "region",
    "country": "address_country",
}
_OPTIONAL: Final = ("trade_name", "tax_id", "electronic_address", "parent")
_TRUE: Final = {"yes", "y", "true", "1", "x"}
_FALSE: Final = {"no", "n", "false", "0", ""}


class ExchangeError(MeterdError):
    """A file that cannot be read at all (wrong encoding, no header); the message says which and how to fix it."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    file: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.column}: {self.reason}"


@dataclass(frozen=True, slots=True)
class DeviceCard:
    """A device as the office knows it before (or besides) what polling says: to assign it before it first reads."""

    key: str
    vendor: str | None
    model: str | None
    address: str | None
    site: str
    name: str | None = None  # the office's own name for it, where it stands, whose budget: on the invoice
    location: str | None = None
    cost_centre: str | None = None
    kept: frozenset[str] = frozenset()  # label columns the file did not have: what is stored stays


def too_long(values: dict[str, str | None]) -> list[tuple[str, str]]:
    """(column, reason) for each value longer than the store keeps (DEVICE_LIMITS)."""
    return [
        (column, f"at most {DEVICE_LIMITS[column]} characters")
        for column, value in values.items()
        if value and len(value) > DEVICE_LIMITS[column]
    ]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    rows: list[tuple[int, dict[str, str]]]  # spreadsheet row number, cells by column
    absent: tuple[str, ...] = ()  # optional columns the header left out (their cells read as empty)


def read_table(
    data: bytes, name: str, columns: Sequence[str], encoding: str | None = None, optional: Sequence[str] = ()
) -> Table:
    """Decode and split a CSV file; the header must hold every column (extra ones are refused, not ignored).

    ``optional`` columns may be left out of the header (a file from before they existed): read as empty.

    Raises:
        ExchangeError: not in the encoding (with the row where it fails), no header, missing or unknown columns.
    """
    text = _decode(data, name, encoding)
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    header = [column.strip() for column in reader.fieldnames or []]
    if not header:
        raise ExchangeError(f"{name}: empty; the first row must name the columns: {', '.join(columns)}")
    missing = [column for column in columns if column not in header and column not in optional]
    unknown = [column for column in header if column not in columns]
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else ""]
        wrong = "; ".join(part for part in parts if part)
        raise ExchangeError(f"{name}: row 1: columns: {wrong} (expected: {', '.join(columns)})")
    reader.fieldnames = header
    rows = []
    try:
        for number, row in enumerate(reader, start=2):
            if None in row or any(value is None for value in row.values()):
                raise ExchangeError(f"{name}: row {number}: not as many cells as columns ({len(columns)})")
            if any(value.strip() for value in row.values()):
                cells = dict.fromkeys(optional, "") | {key: from_cell(value.strip()) for key, value in row.items()}
                rows.append((number, cells))
    except csv.Error as err:
        raise ExchangeError(f"{name}: row {reader.line_num}: not valid CSV ({err})") from err
    return Table(name, rows, tuple(column for column in optional if column not in header))


def customer_columns(custom: Sequence[str] = ()) -> tuple[str, ...]:
    """The columns of customers.csv here: the card's, then one ``custom.NAME`` per field the deployment adds."""
    return (*CUSTOMER_COLUMNS, *(f"{CUSTOM_PREFIX}{name}" for name in custom))


def customers_from(
    customers: Table, contacts: Table, rules: CardRules | None = None
) -> tuple[list[Customer], list[RowProblem]]:
    """Cards from their rows, each with its contacts, checked against ``rules``; every problem, not the first only."""
    problems: list[RowProblem] = []
    seen: Counter[str] = Counter()
    contacts_of: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    codes = {row["code"] for _, row in customers.rows}
    for number, row in contacts.rows:
        if row["customer"] not in codes:
            reason = f"no customer {row['customer']!r} in {customers.name}"
            problems.append(RowProblem(contacts.name, number, "customer", reason))
            continue
        billing = row["billing"].lower()
        if billing not in _TRUE | _FALSE:
            problems.append(RowProblem(contacts.name, number, "billing", "yes or no"))
            continue
        contact = {k: row[k] for k in ("name", "role", "phone")} | {
            "email": row["email"] or None,
            "billing": billing in _TRUE,
        }
        contacts_of.setdefault(row["customer"], []).append((number, contact))
    cards = []
    for number, row in customers.rows:
        seen[row["code"]] += 1
        if seen[row["code"]] > 1:
            problems.append(RowProblem(customers.name, number, "code", f"{row['code']!r} is on an earlier row too"))
            continue
        mine = contacts_of.get(row["code"], [])
        data = _card_data(row, [contact for _, contact in mine])
        try:
            card = Customer.model_validate(data)
            cards.append(rules.check(card) if rules else card)
        except ValidationError as err:
            problems.extend(_explain(err, customers, number, contacts.name, [n for n, _ in mine]))
        except CustomerError as err:  # "customer CODE: FIELD: reason", from the deployment's rules
            _, field, reason = str(err).split(": ", 2)
            problems.append(RowProblem(customers.name, number, field, reason))
    return cards, problems


def assignments_from(table: Table) -> tuple[list[Assignment], list[RowProblem]]:
    problems, found = [], []
    for number, row in table.rows:
        try:
            start = date.fromisoformat(row["from"])
            end = date.fromisoformat(row["to"]) if row["to"] else None
        except ValueError:
            problems.append(
                RowProblem(table.name, number, "from" if not _is_date(row["from"]) else "to", "a date as YYYY-MM-DD")
            )
            continue
        if not row["device"] or not row["customer"]:
            problems.append(RowProblem(table.name, number, "device" if not row["device"] else "customer", "required"))
            continue
        if end is not None and end <= start:
            problems.append(RowProblem(table.name, number, "to", f"must come after from ({start})"))
            continue
        found.append(Assignment(row["device"], row["customer"], start, end))
    return found, problems


def devices_from(table: Table) -> tuple[list[DeviceCard], list[RowProblem]]:
    problems: list[RowProblem] = []
    found: list[DeviceCard] = []
    seen: set[str] = set()
    for number, row in table.rows:
        problems.extend(
            RowProblem(table.name, number, column, reason)
            for column, reason in too_long({column: row[column] for column in DEVICE_LIMITS})
        )
        problems.extend(
            RowProblem(table.name, number, column, "required") for column in ("key", "site") if not row[column]
        )
        if row["key"] in seen:
            problems.append(RowProblem(table.name, number, "key", f"{row['key']!r} is on an earlier row too"))
        seen.add(row["key"])
        found.append(
            DeviceCard(
                row["key"],
                row["vendor"] or None,
                row["model"] or None,
                row["address"] or None,
                row["site"],
                name=row["name"] or None,
                location=row["location"] or None,
                cost_centre=row["cost_centre"] or None,
                kept=frozenset(table.absent),
            )
        )
    return (found, problems) if not problems else ([], problems)


def device_file(devices: Iterable[DeviceCard]) -> bytes:
    rows = [
        {column: getattr(d, column) or "" for column in DEVICE_COLUMNS} for d in sorted(devices, key=lambda d: d.key)
    ]
    return write_table(DEVICE_COLUMNS, rows)


def customer_files(customers: Iterable[Customer], custom: Sequence[str] = ()) -> tuple[bytes, bytes]:
    """customers.csv and contacts.csv for these cards: what :func:`customers_from` reads back unchanged."""
    cards: list[dict[str, str]] = []
    people: list[dict[str, str]] = []
    for card in sorted(customers, key=lambda c: c.code):
        data = card.model_dump(mode="json")
        address = data.pop("address")
        row: dict[str, str] = {
            key: "" if data.get(key) is None else str(data[key]) for key in CUSTOMER_COLUMNS if key in data
        }
        row |= {column: address[field] for field, column in _ADDRESS.items()}
        row |= {"sites": ";".join(card.sites), "tags": ";".join(card.tags)}
        row |= {f"{CUSTOM_PREFIX}{name}": card.custom.get(name, "") for name in custom}
        cards.append(row)
        people.extend(
            {
                "customer": card.code,
                "name": c.name,
                "role": c.role,
                "email": c.email or "",
                "phone": c.phone,
                "billing": "yes" if c.billing else "no",
            }
            for c in card.contacts
        )
    return write_table(customer_columns(custom), cards), write_table(CONTACT_COLUMNS, people)


def assignment_file(assignments: Iterable[Assignment]) -> bytes:
    rows = [
        {
            "device": a.device,
            "customer": a.customer,
            "from": a.start.isoformat(),
            "to": a.end.isoformat() if a.end else "",
        }
        for a in sorted(assignments, key=lambda a: (a.device, a.start))
    ]
    return write_table(ASSIGNMENT_COLUMNS, rows)


def write_table(columns: Sequence[str], rows: Iterable[dict[str, str]]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({column: to_cell(value) for column, value in row.items()} for row in rows)
    return out.getvalue().encode("utf-8-sig")


def _card_data(row: dict[str, str], contacts: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {key: row[key] for key in CUSTOMER_COLUMNS if key not in _ADDRESS.values()}
    data["address"] = {field: row[column] for field, column in _ADDRESS.items()}
    data["sites"] = [site.strip() for site in row["sites"].split(";") if site.strip()]
    data["tags"] = [tag.strip() for tag in row["tags"].split(";") if tag.strip()]
    data["custom"] = {
        key.removeprefix(CUSTOM_PREFIX): value for key, value in row.items() if key.startswith(CUSTOM_PREFIX) and value
    }
    data["contacts"] = contacts
    for key in _OPTIONAL:
        data[key] = data[key] or None
    for key in ("tax_scheme", "payment_method", "payment_terms_days", "language"):
        if not data[key]:
            del data[key]  # its default
    return data


def _explain(
    err: ValidationError, customers: Table, number: int, contacts_file: str, contact_rows: list[int]
) -> list[RowProblem]:
    problems = []
    for error in err.errors():
        loc = [str(part) for part in error["loc"]]
        reason = str(error["msg"]).removeprefix("Value error, ")
        if loc[:1] == ["contacts"] and len(loc) >= 3 and loc[1].isdigit() and int(loc[1]) < len(contact_rows):  # noqa: PLR2004 - contacts, index, field
            problems.append(RowProblem(contacts_file, contact_rows[int(loc[1])], loc[2], reason))
            continue
        if loc[:1] == ["address"] and len(loc) > 1:
            column = _ADDRESS.get(loc[1], loc[1])
        elif loc:
            column = loc[0]
        else:  # a rule over the whole card: its message starts with the field it is about
            column, _, rest = reason.partition(": ")
            reason = rest or reason
        problems.append(RowProblem(customers.name, number, column, reason))
    return problems


def _decode(data: bytes, name: str, encoding: str | None) -> str:
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError as err:
        row = data[: err.start].count(b"\n") + 1
        if encoding:
            msg = f"{name}: row {row}: not {encoding} text"
        else:
            msg = (
                f"{name}: row {row}: not UTF-8 text; name its encoding, e.g. --encoding cp1254 (Turkish "
                "Windows/Excel) or --encoding gb18030 (Chinese)"
            )
        raise ExchangeError(msg) from err
    except LookupError as err:
        msg = f"{encoding!r} is not an encoding Python knows (try utf-8, cp1254, gb18030, cp1252)"
        raise ExchangeError(msg) from err


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
