"""`meterd receivables …`: what customers owe, payments, instalment plans, reminder notices."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from billing.receivables import aging
from daemon.cli.command_support import default_user, open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.services.billing import queue_reminders
from daemon.settings import Settings
from daemon.storage.receivables import CANCELLED, QUEUED, SENT, ReceivablesStore


def add_receivables_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    receivables = sub.add_parser("receivables", help="what customers owe: payments, plans, reminders").add_subparsers(
        metavar="ACTION"
    )
    listing = receivables.add_parser("list", parents=[common], help="finalised invoices with money open")
    listing.add_argument("--as-of", type=date.fromisoformat, metavar="DATE", help="default: today (UTC)")
    listing.add_argument("--overdue", action="store_true", help="only those with money past due")
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    listing.set_defaults(handler=cmd_list)
    ages = receivables.add_parser("aging", parents=[common], help="overdue money by days overdue, per currency")
    ages.add_argument("--as-of", type=date.fromisoformat, metavar="DATE", help="default: today (UTC)")
    ages.add_argument("--format", choices=["table", "csv", "json"], default="table")
    ages.set_defaults(handler=cmd_aging)
    pay = receivables.add_parser("pay", parents=[common], help="record a payment against an invoice")
    pay.add_argument("invoice", type=int, metavar="INVOICE_ID")
    pay.add_argument("--amount", required=True, type=_amount)
    pay.add_argument("--on", type=date.fromisoformat, metavar="DATE", help="received on (default: today)")
    pay.add_argument("--method", default="bank_transfer")
    pay.add_argument("--reference", default="")
    pay.set_defaults(handler=cmd_pay)
    plan = receivables.add_parser("instalments", parents=[common], help="split what is open into instalments")
    plan.add_argument("invoice", type=int, metavar="INVOICE_ID")
    plan.add_argument("--parts", type=int, required=True)
    plan.add_argument("--first", type=date.fromisoformat, required=True, metavar="DATE")
    plan.add_argument("--every-days", type=int, default=30)
    plan.set_defaults(handler=cmd_instalments)
    remind = receivables.add_parser("remind", parents=[common], help="queue the reminders that are due")
    remind.add_argument("--as-of", type=date.fromisoformat, metavar="DATE")
    remind.set_defaults(handler=cmd_remind)
    reminders = receivables.add_parser("reminders", parents=[common], help="reminder notices, to send")
    reminders.add_argument("--status", choices=[QUEUED, SENT, CANCELLED], default=None)
    reminders.add_argument("--text", action="store_true", help="print each notice's text")
    reminders.set_defaults(handler=cmd_reminders)
    sent = receivables.add_parser("sent", parents=[common], help="mark a reminder as sent")
    sent.add_argument("reminder", type=int, metavar="REMINDER_ID")
    sent.add_argument(
        "--on", type=date.fromisoformat, metavar="DATE", help="sent on (default: now); the next level counts from it"
    )
    sent.set_defaults(handler=cmd_sent)
    for parser in (pay, plan, sent):
        parser.add_argument("--by", default=default_user(), help="who (default: the login name)")


def _amount(text: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation:
        msg = f"{text!r} is not an amount; write it as 120.50"
        raise argparse.ArgumentTypeError(msg) from None


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    as_of = args.as_of or utc_now().date()
    async with open_store(settings) as store:
        found = await ReceivablesStore(store).standings(as_of=as_of)
    if args.overdue:
        found = [s for s in found if s.overdue > 0]
    if args.format == "json":
        json.dump([asdict(s) for s in found], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    rows = [
        [
            str(s.invoice_id),
            s.number,
            s.customer,
            str(s.total),
            str(s.paid),
            str(s.open),
            str(s.overdue),
            s.currency,
            str(s.overdue_since or ""),
            str(s.days_overdue or ""),
        ]
        for s in found
    ]
    print_rows(
        args.format,
        ["id", "number", "customer", "total", "paid", "open", "overdue", "currency", "late since", "days"],
        rows,
        title=f"{len(rows)} invoice(s) with money open on {as_of}",
    )
    return 0


async def cmd_aging(args: argparse.Namespace, settings: Settings) -> int:
    as_of = args.as_of or utc_now().date()
    async with open_store(settings) as store:
        buckets = aging(await ReceivablesStore(store).standings(as_of=as_of))
    if args.format == "json":
        json.dump([asdict(b) for b in buckets], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    rows = [
        [b.label, str(b.invoices), ", ".join(f"{amount} {currency}" for currency, amount in b.overdue.items()) or "-"]
        for b in buckets
    ]
    print_rows(args.format, ["days overdue", "invoices", "overdue"], rows, title=f"Overdue money on {as_of}")
    return 0


async def cmd_pay(args: argparse.Namespace, settings: Settings) -> int:
    now = utc_now()
    async with open_store(settings) as store:
        after = await ReceivablesStore(store).record_payment(
            args.invoice,
            args.amount,
            received_on=args.on or now.date(),
            method=args.method,
            reference=args.reference,
            actor=args.by,
            now=now,
        )
    print(f"invoice {after.number}: {args.amount} received; {after.open} {after.currency} still open")
    return 0


async def cmd_instalments(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        plan, currency = await ReceivablesStore(store).split_open(
            args.invoice, parts=args.parts, first=args.first, every_days=args.every_days, actor=args.by, now=utc_now()
        )
    for part in plan:
        print(f"  {part.due}  {part.amount} {currency}")
    return 0


async def cmd_remind(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        created = await queue_reminders(store, settings, now=utc_now(), as_of=args.as_of)
    print(f"{len(created)} reminder(s) queued; `meterd receivables reminders --status queued --text` shows them")
    return 0


async def cmd_reminders(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        found = await ReceivablesStore(store).reminders(status=args.status)
    rows = [
        [str(r.id), r.number, r.customer, str(r.level), str(r.overdue), r.status, f"{r.created_at:%Y-%m-%d}"]
        for r in found
    ]
    print_rows(
        "table",
        ["id", "invoice", "customer", "level", "overdue", "status", "queued"],
        rows,
        title=f"{len(rows)} reminder(s)",
    )
    if args.text:
        for reminder in found:
            print(f"--- reminder {reminder.id} ---\n{reminder.text}")
    return 0


async def cmd_sent(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        now = utc_now()
        sent_at = datetime.combine(args.on, time(), UTC) if args.on else None
        await ReceivablesStore(store).mark_sent(args.reminder, actor=args.by, now=now, sent_at=sent_at)
    print(f"reminder {args.reminder} marked sent")
    return 0
