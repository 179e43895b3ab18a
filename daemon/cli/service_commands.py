"""`meterd service faults|alerts`: the devices' faults and the service alerts they raised."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from daemon.cli.command_support import open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.services.faults import FAULT_HEADER, fault_rows, faults
from daemon.settings import Settings


def add_service_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    service = sub.add_parser("service", help="device faults and service alerts (jams, doors, service requested)")
    actions = service.add_subparsers(metavar="ACTION")
    for name, alerts_only, text in (
        ("faults", False, "open faults: error bits, standing printer alerts, a status other than running"),
        ("alerts", True, "service alerts: faults open past service.alert_after_minutes, one per episode"),
    ):
        command = actions.add_parser(name, parents=[common], help=text)
        command.add_argument("--all", action="store_true", help="ended ones too, not only those still open")
        command.add_argument("--device", metavar="KEY", help="one device: serial, mac:…, addr:…")
        command.add_argument("--format", choices=["table", "csv", "json"], default="table")
        command.set_defaults(handler=cmd_list, alerts_only=alerts_only)


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()
    async with open_store(settings) as store:
        found = await faults(
            store, open_only=not args.all, alerts_only=args.alerts_only, device=args.device, today=now.date()
        )
    if args.format == "json":
        json.dump([asdict(f) for f in found], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    what = "service alerts" if args.alerts_only else "faults"
    print_rows(args.format, FAULT_HEADER, fault_rows(found, now), title=f"{len(found)} {what}")
    return 0
