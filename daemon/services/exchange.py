"""Customer cards, contacts, assignments and devices as CSV files, for the CLI and the API alike.

Every row is checked before anything is written; then everything is applied in one
transaction (rolled back for a dry run). Exported files imported again change nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from billing.exchange import (
    ASSIGNMENT_COLUMNS,
    CONTACT_COLUMNS,
    DEVICE_COLUMNS,
    DEVICE_LABELS,
    DeviceCard,
    RowProblem,
    Table,
    assignment_file,
    assignments_from,
    customer_columns,
    customer_files,
    customers_from,
    device_file,
    devices_from,
    read_table,
)
from daemon.kernel.errors import MeterdError
from daemon.settings import Settings
from daemon.storage.billing import BillingStore, ImportOutcome
from daemon.storage.repository import Store

CUSTOMERS: Final = "customers.csv"
CONTACTS: Final = "contacts.csv"
ASSIGNMENTS: Final = "assignments.csv"
DEVICES: Final = "devices.csv"
_SHOWN: Final = 20


class RowProblemsError(MeterdError):
    """Rows that cannot be imported; nothing was changed."""

    def __init__(self, problems: list[RowProblem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[:_SHOWN])
        super().__init__(f"{len(problems)} problem(s), nothing changed: {shown}" + (" …" if len(problems) > 20 else ""))  # noqa: PLR2004


async def import_tables(
    store: Store, settings: Settings, tables: dict[str, Table], *, actor: str, now: datetime, dry_run: bool
) -> ImportOutcome:
    """Check every row of the files, then apply them all in one transaction (rolled back for a dry run).

    Raises:
        RowProblemsError: every row problem found; BillingError: the first record the store refuses.
    """
    cards, problems = customers_from(tables[CUSTOMERS], tables[CONTACTS], settings.customers.rules())
    assignments, more = assignments_from(tables[ASSIGNMENTS])
    devices, on_devices = devices_from(tables[DEVICES])
    problems += more + on_devices
    if problems:
        raise RowProblemsError(problems)
    labels = [f"{ASSIGNMENTS}: row {number}" for number, _ in tables[ASSIGNMENTS].rows]
    return await BillingStore(store).import_records(
        cards, assignments, labels, actor=actor, now=now, dry_run=dry_run, devices=devices
    )


async def export_tables(store: Store, settings: Settings) -> dict[str, bytes]:
    """The four files, as `meterd customers export` writes them."""
    book = await BillingStore(store).book()
    devices = [
        DeviceCard(d.key, d.vendor, d.model, d.address, d.site, d.name, d.location, d.cost_centre)
        for d in await store.devices()
    ]
    cards, people = customer_files(book.customers.values(), custom_fields(settings))
    return {
        CUSTOMERS: cards,
        CONTACTS: people,
        ASSIGNMENTS: assignment_file(book.assignments),
        DEVICES: device_file(devices),
    }


def read_tables(files: dict[str, bytes], settings: Settings, encoding: str | None = None) -> dict[str, Table]:
    """The files by name (customers.csv and contacts.csv required, the others optional) as checked tables.

    Raises:
        MeterdError: a required file missing; ExchangeError: a file that cannot be read at all.
    """
    tables = {}
    shapes = (
        (CUSTOMERS, customer_columns(custom_fields(settings)), True, ()),
        (CONTACTS, CONTACT_COLUMNS, True, ()),
        (ASSIGNMENTS, ASSIGNMENT_COLUMNS, False, ()),
        (DEVICES, DEVICE_COLUMNS, False, DEVICE_LABELS),
    )
    for name, columns, required, optional in shapes:
        if name not in files:
            if required:
                msg = f"{name} is missing; `meterd customers export DIR` writes the files in their form"
                raise MeterdError(msg)
            tables[name] = Table(name, [])
            continue
        tables[name] = read_table(files[name], name, columns, encoding, optional)
    return tables


def custom_fields(settings: Settings) -> list[str]:
    return [field.name for field in settings.customers.fields]
