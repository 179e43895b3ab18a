"""`meterd anomalies list|show|ack|resolve`: the review queue for suspect readings."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from daemon.clock import utc_now
from daemon.command_support import default_user, open_store, print_rows
from daemon.review import ACTIONS, acknowledge, resolve
from daemon.settings import Settings
from daemon.storage.anomalies import ACKNOWLEDGED, RESOLVED, AnomalyStore


def add_anomaly_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    anomalies = sub.add_parser("anomalies", help="review suspect readings").add_subparsers(metavar="ACTION")
    listing = anomalies.add_parser("list", parents=[common], help="anomalies, newest first")
    listing.add_argument(
        "--status", default="unresolved", choices=["unresolved", "open", ACKNOWLEDGED, RESOLVED, "all"]
    )
    listing.add_argument("--kind")
    listing.add_argument("--device", metavar="KEY")
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    listing.add_argument("--limit", type=_positive, default=100, help="anomalies per page (default 100)")
    listing.add_argument("--offset", type=_not_negative, default=0, help="anomalies to skip (the next page's start)")
    listing.set_defaults(handler=cmd_list)
    show = anomalies.add_parser("show", parents=[common], help="one anomaly with its evidence")
    show.add_argument("id", type=int)
    show.set_defaults(handler=cmd_show)
    ack = anomalies.add_parser("ack", parents=[common], help="acknowledge: someone is looking at it")
    ack.add_argument("id", type=int)
    ack.add_argument("--reason", required=True)
    ack.add_argument("--by", default=default_user(), help="who (default: the login name)")
    ack.set_defaults(handler=cmd_ack)
    resolve = anomalies.add_parser("resolve", parents=[common], help="decide, with a reason; written to the audit log")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--action", required=True, choices=sorted(ACTIONS))
    resolve.add_argument("--reason", required=True)
    resolve.add_argument("--value", type=int, help="with --action replace: the right counter value")
    resolve.add_argument("--by", default=default_user(), help="who (default: the login name)")
    resolve.set_defaults(handler=cmd_resolve)


def _positive(text: str) -> int:
    number = _not_negative(text)
    if number == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _not_negative(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return number


def page_note(shown: int, offset: int, matching: int) -> str:
    """Where this page sits in the whole list, and how to get the rest: a list is never cut silently."""
    more = matching - offset - shown
    where = f"{offset + 1}-{offset + shown} of {matching}" if shown else f"none of {matching} from {offset}"
    return where + (f"; {more} more: --offset {offset + shown}" if more > 0 else "")


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        status = None if args.status == "all" else args.status
        anomalies = AnomalyStore(store)
        found = await anomalies.find(status=status, kind=args.kind, device=args.device, limit=args.limit,
                                     offset=args.offset)  # fmt: skip
        matching = await anomalies.count(status=status, kind=args.kind, device=args.device)
    note = page_note(len(found), args.offset, matching)
    if args.format != "table":
        print(f"anomalies ({args.status}): {note}", file=sys.stderr)
    if args.format == "json":
        json.dump([asdict(a) for a in found], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    header = ["id", "kind", "severity", "device", "meter", "window", "status", "holds"]
    rows = [
        [
            str(a.id), a.kind, a.severity, a.device, a.meter,
            f"{a.window_start:%Y-%m-%d %H:%M} to {a.window_end:%Y-%m-%d %H:%M}",
            a.status if a.status != RESOLVED else f"resolved ({a.resolution})",
            "yes" if a.holds and a.status != RESOLVED else "",
        ]
        for a in found
    ]  # fmt: skip
    print_rows(args.format, header, rows, title=f"anomalies ({args.status}): {note}")
    return 0


async def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        anomaly = await AnomalyStore(store).get(args.id)
    json.dump(asdict(anomaly), sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


async def cmd_ack(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await acknowledge(store, args.id, actor=args.by, reason=args.reason, now=utc_now())
    print(f"anomaly {args.id} acknowledged by {args.by}")
    return 0


async def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await resolve(store, args.id, action=args.action, value=args.value, actor=args.by, reason=args.reason,
                      now=utc_now())  # fmt: skip
    print(f"anomaly {args.id} resolved: {ACTIONS[args.action]} by {args.by}")
    return 0
