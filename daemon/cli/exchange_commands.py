"""`meterd customers export|import DIR`: customer cards, contacts, assignments and devices as CSV files.

Import reads customers.csv and contacts.csv (and, if there, assignments.csv and devices.csv)
from DIR, reports every row problem (file, row, column, reason) and changes nothing when
there is one; then applies everything in one transaction (or, with --dry-run, rolls it back
and says what it would have done). See daemon.services.exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Final

from daemon.cli.command_support import open_store
from daemon.kernel.clock import utc_now
from daemon.kernel.errors import MeterdError
from daemon.services.exchange import (
    ASSIGNMENTS,
    CONTACTS,
    CUSTOMERS,
    DEVICES,
    RowProblemsError,
    export_tables,
    import_tables,
    read_tables,
)
from daemon.settings import Settings
from daemon.storage.engine import write_private

EXIT_ROW_PROBLEMS: Final = 1


def add_exchange_parsers(
    customers: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    by: argparse.ArgumentParser,
) -> None:
    export = customers.add_parser(
        "export", parents=[common], help=f"write {CUSTOMERS}, {CONTACTS}, {ASSIGNMENTS}, {DEVICES}"
    )
    export.add_argument("dir", type=Path)
    export.set_defaults(handler=cmd_export)
    load = customers.add_parser(
        "import", parents=[common, by], help=f"read {CUSTOMERS}, {CONTACTS} (+ {ASSIGNMENTS}, {DEVICES} if there)"
    )
    load.add_argument("dir", type=Path)
    load.add_argument("--dry-run", action="store_true", help="check and report; change nothing")
    load.add_argument("--encoding", help="of the files, if not UTF-8: cp1254 (Turkish Excel), gb18030 (Chinese) …")
    load.set_defaults(handler=cmd_import)


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        files = await export_tables(store, settings)
    await asyncio.to_thread(_write_files, args.dir, files)
    print(f"{', '.join(files)} written to {args.dir}")
    return 0


async def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    files = await asyncio.to_thread(_read_files, args.dir)
    tables = read_tables(files, settings, args.encoding)
    async with open_store(settings) as store:
        try:
            outcome = await import_tables(store, settings, tables, actor=args.by, now=utc_now(), dry_run=args.dry_run)
        except RowProblemsError as err:
            for problem in err.problems:
                print(problem, file=sys.stderr)
            print(f"meterd: {len(err.problems)} problem(s) in {args.dir}; nothing was changed", file=sys.stderr)
            return EXIT_ROW_PROBLEMS
    verb = "would be" if args.dry_run else "were"
    print(
        f"customers: {len(outcome.added)} new, {len(outcome.changed)} changed, {outcome.unchanged} unchanged; "
        f"assignments: {outcome.assignments_added} new, {outcome.assignments_unchanged} unchanged; "
        f"devices: {outcome.devices_saved} saved "
        f"({'dry run: nothing ' + verb + ' written' if args.dry_run else 'written'})"
    )
    for code in outcome.changed:
        print(f"  changed: {code}")
    return 0


def _write_files(directory: Path, files: dict[str, bytes]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_private(directory / name, data)
    except OSError as err:
        msg = f"cannot write to {directory}: {err.strerror}"
        raise MeterdError(msg) from err


def _read_files(directory: Path) -> dict[str, bytes]:
    try:
        return {
            name: (directory / name).read_bytes()
            for name in (CUSTOMERS, CONTACTS, ASSIGNMENTS, DEVICES)
            if (directory / name).is_file()
        }
    except OSError as err:
        msg = f"cannot read {directory}: {err.strerror}"
        raise MeterdError(msg) from err
