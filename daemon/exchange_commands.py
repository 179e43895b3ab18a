"""`meterd customers export|import DIR`: customer cards, contacts and assignments as CSV files.

Import reads customers.csv, contacts.csv and (if there) assignments.csv from DIR, reports
every row problem (file, row, column, reason) and changes nothing when there is one; then
applies everything in one transaction (or, with --dry-run, rolls it back and says what it
would have done). Exported files imported again change nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Final

from billing.exchange import (
    ASSIGNMENT_COLUMNS,
    CONTACT_COLUMNS,
    Table,
    assignment_file,
    assignments_from,
    customer_columns,
    customer_files,
    customers_from,
    read_table,
)
from daemon.clock import utc_now
from daemon.command_support import open_store
from daemon.errors import MeterdError
from daemon.settings import Settings
from daemon.storage.billing import BillingStore

CUSTOMERS: Final = "customers.csv"
CONTACTS: Final = "contacts.csv"
ASSIGNMENTS: Final = "assignments.csv"
EXIT_ROW_PROBLEMS: Final = 1


def add_exchange_parsers(
    customers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    by: argparse.ArgumentParser,
) -> None:
    export = customers.add_parser("export", parents=[common], help=f"write {CUSTOMERS}, {CONTACTS}, {ASSIGNMENTS}")
    export.add_argument("dir", type=Path)
    export.set_defaults(handler=cmd_export)
    load = customers.add_parser("import", parents=[common, by], help=f"read {CUSTOMERS}, {CONTACTS}, {ASSIGNMENTS}")
    load.add_argument("dir", type=Path)
    load.add_argument("--dry-run", action="store_true", help="check and report; change nothing")
    load.add_argument("--encoding", help="of the files, if not UTF-8: cp1254 (Turkish Excel), gb18030 (Chinese) …")
    load.set_defaults(handler=cmd_import)


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        book = await BillingStore(store).book()
    cards, people = customer_files(book.customers.values(), _custom(settings))
    files = {CUSTOMERS: cards, CONTACTS: people, ASSIGNMENTS: assignment_file(book.assignments)}
    await asyncio.to_thread(_write_files, args.dir, files)
    print(f"{len(book.customers)} customer(s), {len(book.assignments)} assignment(s) written to {args.dir}")
    return 0


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    tables = await asyncio.to_thread(_read_files, args.dir, args.encoding, customer_columns(_custom(settings)))
    cards, problems = customers_from(tables[CUSTOMERS], tables[CONTACTS], settings.customers.rules())
    assignments, more = assignments_from(tables[ASSIGNMENTS])
    problems += more
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"meterd: {len(problems)} problem(s) in {args.dir}; nothing was changed", file=sys.stderr)
        return EXIT_ROW_PROBLEMS
    labels = [f"{ASSIGNMENTS}: row {number}" for number, _ in tables[ASSIGNMENTS].rows]
    async with open_store(settings) as store:
        outcome = await BillingStore(store).import_records(cards, assignments, labels, actor=args.by, now=utc_now(),
                                                           dry_run=args.dry_run)  # fmt: skip
    verb = "would be" if args.dry_run else "were"
    print(f"customers: {len(outcome.added)} new, {len(outcome.changed)} changed, {outcome.unchanged} unchanged; "
          f"assignments: {outcome.assignments_added} new, {outcome.assignments_unchanged} unchanged "
          f"({'dry run: nothing ' + verb + ' written' if args.dry_run else 'written'})")  # fmt: skip
    for code in outcome.changed:
        print(f"  changed: {code}")
    return 0


def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (directory / name).write_bytes(data)
    except OSError as err:
        msg = f"cannot write to {directory}: {err.strerror}"
        raise MeterdError(msg) from err


def _custom(settings: Settings) -> list[str]:
    return [field.name for field in settings.customers.fields]


def _read_files(directory: Path, encoding: str | None, card_columns: tuple[str, ...]) -> dict[str, Table]:
    tables = {}
    for name, columns, required in ((CUSTOMERS, card_columns, True), (CONTACTS, CONTACT_COLUMNS, True),
                                    (ASSIGNMENTS, ASSIGNMENT_COLUMNS, False)):  # fmt: skip
        path = directory / name
        if not path.is_file():
            if required:
                msg = f"{path} is missing; `meterd customers export DIR` writes the files in their form"
                raise MeterdError(msg)
            tables[name] = Table(name, [])
            continue
        tables[name] = read_table(path.read_bytes(), name, columns, encoding)
    return tables
