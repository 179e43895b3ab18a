"""`meterd supplies list|due|yields`: forecasts per cartridge, the replenishment list, cartridge yields."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from daemon.cli.command_support import open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.services.supplies import (
    FORECAST_HEADER,
    REPLENISHMENT_HEADER,
    ReplenishmentFilter,
    forecast_rows,
    replenishment_list,
    replenishment_rows,
    supply_policy,
)
from daemon.settings import Settings
from daemon.storage.supplies import SupplyStatus, SupplyStore


def add_supplies_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    supplies = sub.add_parser("supplies", help="toner forecasts and the replenishment list").add_subparsers(
        metavar="ACTION"
    )
    for name, handler, text in (
        ("list", cmd_list, "every supply: level, days to empty, expected empty date ± days"),
        ("due", cmd_due, "the replenishment list: cartridges due or with an open alert, to ship in one batch"),
        ("yields", cmd_yields, "pages per cartridge from replacement to replacement; short ones flagged"),
    ):
        command = supplies.add_parser(name, parents=[common], help=text)
        command.add_argument("--format", choices=["table", "csv", "json"], default="table")
        command.set_defaults(handler=handler)
        if name == "due":
            command.add_argument("--customer", metavar="CODE", help="only this customer's cartridges")
            command.add_argument("--site", help="only this site's cartridges")
            command.add_argument(
                "--within-days", type=int, metavar="N", help="every cartridge expected empty within N days, due or not"
            )


async def _statuses(settings: Settings) -> list[SupplyStatus]:
    async with open_store(settings) as store:
        return await SupplyStore(store).report(supply_policy(settings), utc_now())


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    found = await _statuses(settings)
    if args.format == "json":
        json.dump([asdict(s) for s in found], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    print_rows(args.format, FORECAST_HEADER, forecast_rows(found), title=f"{len(found)} supplies")
    return 0


async def cmd_due(args: argparse.Namespace, settings: Settings) -> int:
    wanted = ReplenishmentFilter(customer=args.customer, site=args.site, within_days=args.within_days)
    async with open_store(settings) as store:
        rows = replenishment_rows(await replenishment_list(store, settings, utc_now(), wanted))
    _print(args.format, REPLENISHMENT_HEADER, rows, title=f"{len(rows)} cartridges to ship")
    return 0


async def cmd_yields(args: argparse.Namespace, settings: Settings) -> int:
    found = await _statuses(settings)
    header = [
        "device",
        "supply",
        "part_number",
        "installed",
        "removed",
        "pages",
        "used_percent",
        "full_pages",
        "nominal",
        "short",
    ]
    rows = [
        [
            s.device,
            s.supply,
            s.part_number or "",
            f"{y.installed_at:%Y-%m-%d}",
            f"{y.removed_at:%Y-%m-%d}",
            str(y.pages),
            str(y.used_percent),
            str(y.full_pages or ""),
            str(y.nominal or ""),
            "SHORT" if y.short else "",
        ]
        for s in found
        for y in s.yields
    ]
    _print(args.format, header, rows, title=f"{len(rows)} cartridges replaced")
    return 0


def _print(fmt: str, header: list[str], rows: list[list[str]], *, title: str) -> None:
    """A table, CSV, or JSON objects keyed by the header."""
    if fmt == "json":
        json.dump([dict(zip(header, row, strict=True)) for row in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    print_rows(fmt, header, rows, title=title)
