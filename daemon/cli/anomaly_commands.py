"""`meterd anomalies list|show|ack|resolve`: the review queue for suspect readings."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from daemon.cli.command_support import default_user, open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.services.review import ACTIONS, acknowledge, acknowledge_kind, resolve, review_queue
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
    _add_paged_filters(listing)
    listing.set_defaults(handler=cmd_list)
    queue = anomalies.add_parser(
        "queue", parents=[common], help="unresolved anomalies by customer and device, most money at stake first"
    )
    _add_paged_filters(queue)
    queue.set_defaults(handler=cmd_queue)
    show = anomalies.add_parser("show", parents=[common], help="one anomaly: evidence and the readings around it")
    show.add_argument("id", type=int)
    show.add_argument("--format", choices=["text", "json"], default="text")
    show.add_argument("--context", type=_not_negative, default=5, help="readings shown either side (default 5)")
    show.set_defaults(handler=cmd_show)
    ack = anomalies.add_parser(
        "ack", parents=[common], help="acknowledge one (ID), or every open one of --kind on --device"
    )
    ack.add_argument("id", type=int, nargs="?")
    ack.add_argument("--device", metavar="KEY", help="with --kind, instead of ID: all open ones of that kind there")
    ack.add_argument("--kind")
    ack.add_argument("--reason", required=True)
    ack.add_argument("--by", default=default_user(), help="who (default: the login name)")
    ack.set_defaults(handler=cmd_ack)
    resolve = anomalies.add_parser("resolve", parents=[common], help="decide, with a reason; written to the audit log")
    resolve.add_argument("id", type=int)
    resolve.add_argument("--action", required=True, choices=sorted(ACTIONS))
    resolve.add_argument("--reason", required=True)
    resolve.add_argument(
        "--value",
        type=int,
        help="replace: the right counter value; reset: the value the counter restarted from (default 0)",
    )
    resolve.add_argument("--by", default=default_user(), help="who (default: the login name)")
    resolve.set_defaults(handler=cmd_resolve)


def _add_paged_filters(parser: argparse.ArgumentParser) -> None:
    """--kind, --device, --format and a page (--limit, --offset): what the list and the queue both take."""
    parser.add_argument("--kind")
    parser.add_argument("--device", metavar="KEY")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--limit", type=_positive, default=100, help="per page (default 100)")
    parser.add_argument("--offset", type=_not_negative, default=0, help="to skip (the next page's start)")


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
        found = await anomalies.find(
            status=status, kind=args.kind, device=args.device, limit=args.limit, offset=args.offset
        )
        matching = await anomalies.count(status=status, kind=args.kind, device=args.device)
    header = ["id", "kind", "severity", "device", "meter", "window", "status", "holds"]
    rows = [
        [
            str(a.id),
            a.kind,
            a.severity,
            a.device,
            a.meter,
            f"{a.window_start:%Y-%m-%d %H:%M} to {a.window_end:%Y-%m-%d %H:%M}",
            a.status if a.status != RESOLVED else f"resolved ({a.resolution})",
            "yes" if a.holds and a.status != RESOLVED else "",
        ]
        for a in found
    ]
    _print_page(
        args.format, f"anomalies ({args.status}): {page_note(len(found), args.offset, matching)}", found, header, rows
    )
    return 0


async def cmd_queue(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        items = await review_queue(store, kind=args.kind, device=args.device)
    chosen = items[args.offset : args.offset + args.limit]
    header = ["customer", "device", "id", "kind", "severity", "since", "readings", "pages held", "at stake", "status"]
    rows = [
        [
            item.customer or "-",
            item.anomaly.device,
            str(item.anomaly.id),
            item.anomaly.kind,
            item.anomaly.severity,
            f"{item.anomaly.window_start:%Y-%m-%d %H:%M}",
            str(item.anomaly.occurrences),
            str(item.pages_held),
            "" if item.at_stake is None else f"{item.at_stake:.2f} {item.currency}",
            item.anomaly.status,
        ]
        for item in chosen
    ]
    _print_page(args.format, f"review queue: {page_note(len(chosen), args.offset, len(items))}", chosen, header, rows)
    return 0


def _print_page(fmt: str, title: str, records: Sequence[Any], header: list[str], rows: list[list[str]]) -> None:
    """A page as a table titled with where it sits; as CSV or JSON, with that note on stderr (the output parses)."""
    if fmt != "table":
        print(title, file=sys.stderr)
    if fmt == "json":
        json.dump([asdict(record) for record in records], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return
    print_rows(fmt, header, rows, title=title)


async def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        anomalies = AnomalyStore(store)
        anomaly = await anomalies.get(args.id)
        around = await anomalies.readings_around(anomaly, context=args.context)
    if args.format == "json":
        json.dump(asdict(anomaly) | {"readings_around": around}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    ended = f", over at {anomaly.ended_at:%Y-%m-%d %H:%M}" if anomaly.ended_at else ", still going on"
    print(f"anomaly {anomaly.id}: {anomaly.kind} ({anomaly.severity}) on {anomaly.device} {anomaly.meter}".rstrip())
    holding = "holds them from usage" if anomaly.holds else "holds nothing"
    print(
        f"  seen {anomaly.window_start:%Y-%m-%d %H:%M} to {anomaly.window_end:%Y-%m-%d %H:%M}{ended}; "
        f"{anomaly.occurrences} readings; {holding}"
    )
    decided = f" ({anomaly.resolution} by {anomaly.resolved_by}: {anomaly.reason})" if anomaly.resolution else ""
    print(f"  status {anomaly.status}{decided}")
    print("  the detector's numbers:")
    for key, value in anomaly.evidence.items():
        if key != "readings":
            print(f"    {key}: {json.dumps(value, default=str)}")
    header = ["taken_at", "reading_id", "meter", "value", "step", "held"]
    rows = [
        [
            f"{r['taken_at']:%Y-%m-%d %H:%M:%S}",
            r["reading_id"],
            r["meter"],
            str(r["value"]),
            "" if r["step"] is None else f"{r['step']:+d}",
            "held" if r["held"] else "",
        ]
        for r in around
    ]
    print_rows("table", header, rows, title="readings around it")
    return 0


async def cmd_ack(args: argparse.Namespace, settings: Settings) -> int:
    if (args.id is None) == (args.device is None or args.kind is None):
        print("meterd anomalies ack: give an ID, or --device and --kind (not both)", file=sys.stderr)
        return 2
    async with open_store(settings) as store:
        if args.id is not None:
            await acknowledge(store, args.id, actor=args.by, reason=args.reason, now=utc_now())
            print(f"anomaly {args.id} acknowledged by {args.by}")
            return 0
        done = await acknowledge_kind(store, args.device, args.kind, actor=args.by, reason=args.reason, now=utc_now())
    ids = ", ".join(str(a.id) for a in done) or "none open"
    print(f"{len(done)} {args.kind} anomalies on {args.device} acknowledged by {args.by}: {ids}")
    return 0


async def cmd_resolve(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await resolve(
            store, args.id, action=args.action, value=args.value, actor=args.by, reason=args.reason, now=utc_now()
        )
    print(f"anomaly {args.id} resolved: {ACTIONS[args.action]} by {args.by}")
    return 0
