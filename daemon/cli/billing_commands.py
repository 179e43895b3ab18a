"""`meterd customers|contracts|bill|invoices|reports`: billing from the command line.

Customers and contracts are loaded from TOML or JSON files (``[[customer]]`` / ``[[contract]]``
tables), validated whole before anything is written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from datetime import date
from pathlib import Path
from typing import Any

from billing.contracts import ContractError, parse_contract
from billing.customers import parse_customer
from billing.documents.pdf import line_reads, to_pdf
from billing.documents.records import draft_record, line_record
from billing.documents.reports import erp_csv, usage_rows
from billing.documents.ubl import to_ubl
from billing.invoicing import BillingError, Draft, double_checks
from billing.periods import Period
from daemon.cli.command_support import default_user, open_store, print_rows
from daemon.cli.exchange_commands import add_exchange_parsers
from daemon.kernel.clock import utc_now
from daemon.kernel.errors import MeterdError
from daemon.services.billing import (
    bill_month,
    finalize_invoice,
    invoice_document,
    period_invoices,
    usage_report,
    void_invoice,
)
from daemon.services.notify import notices
from daemon.settings import Settings
from daemon.storage.billing import BillingStore, InvoiceRecord
from daemon.storage.engine import write_private

EXIT_OK = 0
EXIT_ERROR = 1


def add_billing_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    by = argparse.ArgumentParser(add_help=False)
    by.add_argument("--by", default=default_user(), help="who (default: the login name); written to the audit log")
    _add_customers(sub, common, by)
    _add_contracts(sub, common, by)
    _add_bill(sub, common, by)
    _add_invoices(sub, common, by)
    _add_reports(sub, common)


def _add_customers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    by: argparse.ArgumentParser,
) -> None:
    customers = sub.add_parser("customers", help="customer accounts and who holds which device").add_subparsers(
        metavar="ACTION"
    )
    listing = customers.add_parser("list", parents=[common], help="customers")
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    listing.set_defaults(handler=cmd_customers_list)
    show = customers.add_parser("show", parents=[common], help="one customer with its devices and contracts")
    show.add_argument("code")
    show.set_defaults(handler=cmd_customers_show)
    load = customers.add_parser("load", parents=[common, by], help="create or update customers from a TOML/JSON file")
    load.add_argument("file", help="[[customer]] tables (TOML) or a JSON list")
    load.set_defaults(handler=cmd_customers_load)
    assign = customers.add_parser("assign", parents=[common, by], help="a device goes to a customer from a date")
    assign.add_argument("device", help="device key (serial)")
    assign.add_argument("customer")
    assign.add_argument("--from", dest="start", type=_day, required=True, metavar="YYYY-MM-DD")
    assign.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="first day it no longer holds it")
    assign.set_defaults(handler=cmd_customers_assign)
    unassign = customers.add_parser("unassign", parents=[common, by], help="a device leaves its customer")
    unassign.add_argument("device")
    unassign.add_argument(
        "--on",
        dest="end",
        type=_day,
        required=True,
        metavar="YYYY-MM-DD",
        help="first day the customer no longer holds it",
    )
    unassign.set_defaults(handler=cmd_customers_unassign)
    note = customers.add_parser("comment", parents=[common, by], help="add a note to a customer's timeline")
    note.add_argument("code")
    note.add_argument("text")
    note.set_defaults(handler=cmd_customers_comment)
    told = customers.add_parser("notices", parents=[common], help="notices of changed billing data, and their state")
    told.add_argument("--status", choices=["queued", "sent", "failed"])
    told.set_defaults(handler=cmd_customers_notices)
    add_exchange_parsers(customers, common, by)


def _add_contracts(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    by: argparse.ArgumentParser,
) -> None:
    contracts = sub.add_parser("contracts", help="contracts and their versions").add_subparsers(metavar="ACTION")
    clist = contracts.add_parser("list", parents=[common], help="contracts")
    clist.set_defaults(handler=cmd_contracts_list)
    cshow = contracts.add_parser("show", parents=[common], help="one contract, every version, as JSON")
    cshow.add_argument("id")
    cshow.set_defaults(handler=cmd_contracts_show)
    cload = contracts.add_parser("load", parents=[common, by], help="create or update contracts from a TOML/JSON file")
    cload.add_argument("file", help="[[contract]] tables (TOML) or a JSON list")
    cload.set_defaults(handler=cmd_contracts_load)


def _add_bill(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    by: argparse.ArgumentParser,
) -> None:
    bill = sub.add_parser("bill", help="turn a month's usage into draft invoices").add_subparsers(metavar="ACTION")
    for name, helptext in (("preview", "show the drafts; nothing is written"), ("run", "write (or update) drafts")):
        action = bill.add_parser(name, parents=[common, by], help=helptext)
        action.add_argument("--period", type=Period.parse_month, required=True, metavar="YYYY-MM")
        action.add_argument("--customer", action="append", metavar="CODE", help="only these (their payers); repeat")
        action.add_argument("--lines", action="store_true", help="print every line")
        action.add_argument(
            "--format",
            choices=["table", "json"],
            default="table",
            help="json: every draft with its lines, read pairs and checks, for scripts",
        )
        action.set_defaults(handler=cmd_bill, write=name == "run")


def _add_invoices(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    by: argparse.ArgumentParser,
) -> None:
    invoices = sub.add_parser("invoices", help="invoices and credit notes").add_subparsers(metavar="ACTION")
    ilist = invoices.add_parser("list", parents=[common], help="invoices, oldest period first")
    ilist.add_argument("--period", type=Period.parse_month, metavar="YYYY-MM")
    ilist.add_argument("--customer", metavar="CODE")
    ilist.add_argument("--status", choices=["draft", "finalized", "voided"])
    ilist.add_argument("--format", choices=["table", "csv", "json"], default="table")
    ilist.set_defaults(handler=cmd_invoices_list)
    ishow = invoices.add_parser("show", parents=[common], help="an invoice's lines with their reads, and what to check")
    ishow.add_argument("id", type=int)
    ishow.add_argument(
        "--format",
        choices=["table", "json"],
        default="table",
        help="json: the invoice, its lines with quantity, price, tiers, read pairs, flags, and checks",
    )
    ishow.set_defaults(handler=cmd_invoices_show)
    fin = invoices.add_parser("finalize", parents=[common, by], help="number and freeze a draft")
    fin.add_argument("id", type=int, nargs="+")
    fin.add_argument(
        "--override",
        "--override-hold",
        dest="override",
        metavar="REASON",
        help="finalise despite blocking items (held lines, missing reads, meters a device cannot "
        "supply), saying why: kept on the invoice and in the audit log",
    )
    fin.add_argument("--issue-date", type=_day, metavar="YYYY-MM-DD", help="default: today (UTC)")
    fin.set_defaults(handler=cmd_invoices_finalize)
    void = invoices.add_parser("void", parents=[common, by], help="void a finalised invoice; issues a credit note")
    void.add_argument("id", type=int)
    void.add_argument("--reason", required=True)
    void.set_defaults(handler=cmd_invoices_void)
    export = invoices.add_parser("export", parents=[common], help="an invoice as PDF or UBL XML (Peppol BIS 3.0)")
    export.add_argument("id", type=int)
    export.add_argument("--format", choices=["pdf", "ubl"], required=True)
    export.add_argument("--out", required=True, metavar="FILE", help="file to write ('-' for stdout, UBL only)")
    export.set_defaults(handler=cmd_invoices_export)


def _add_reports(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    reports = sub.add_parser("reports", help="usage reports and the ERP export").add_subparsers(metavar="ACTION")
    usage = reports.add_parser("usage", parents=[common], help="a customer's usage for a month (CSV or HTML+chart)")
    usage.add_argument("--customer", required=True, metavar="CODE")
    usage.add_argument("--period", type=Period.parse_month, required=True, metavar="YYYY-MM")
    usage.add_argument("--format", choices=["csv", "html"], default="html")
    usage.add_argument("--out", required=True, metavar="FILE", help="file to write ('-' for stdout)")
    usage.set_defaults(handler=cmd_reports_usage)
    erp = reports.add_parser("erp", parents=[common], help="period meter reads per device, CSV for an ERP")
    erp.add_argument("--period", type=Period.parse_month, required=True, metavar="YYYY-MM")
    erp.add_argument("--out", required=True, metavar="FILE", help="file to write ('-' for stdout)")
    erp.set_defaults(handler=cmd_reports_erp)


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not a date; write it as YYYY-MM-DD"
        raise argparse.ArgumentTypeError(msg) from None


def _records(path: str, table: str) -> list[dict[str, Any]]:
    """``[[table]]`` entries of a TOML file, or the objects of a JSON list."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        data: Any = json.loads(text) if file.suffix == ".json" else tomllib.loads(text).get(table, [])
    except (OSError, ValueError) as err:
        msg = f"cannot read {file}: {err}"
        raise MeterdError(msg) from err
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        msg = f"{file}: expected [[{table}]] tables (TOML) or a JSON list of objects"
        raise MeterdError(msg)
    if not data:
        msg = f"{file}: no [[{table}]] entries found"
        raise MeterdError(msg)
    return data


async def cmd_customers_load(args: argparse.Namespace, settings: Settings) -> int:
    rules = settings.customers.rules()
    customers = [rules.check(parse_customer(item)) for item in _records(args.file, "customer")]
    async with open_store(settings) as store:
        await BillingStore(store).save_customers(customers, actor=args.by, now=utc_now())
    print(f"{len(customers)} customer(s) saved")
    return EXIT_OK


async def cmd_contracts_load(args: argparse.Namespace, settings: Settings) -> int:
    contracts = [parse_contract(item) for item in _records(args.file, "contract")]
    for contract in contracts:
        try:
            settings.anomalies.tuned(contract.detectors, where=f"contract {contract.id}: detectors")
        except ValueError as err:
            raise ContractError(str(err)) from None
    async with open_store(settings) as store:
        billing = BillingStore(store)
        warnings = [
            w for contract in contracts for w in await billing.save_contract(contract, actor=args.by, now=utc_now())
        ]
    print(f"{len(contracts)} contract(s) saved")
    for warning in warnings:
        print(f"warning: {warning}")
    return EXIT_OK


async def cmd_customers_list(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        book = await BillingStore(store).book()
    customers = [book.customers[code] for code in sorted(book.customers)]
    if args.format == "json":
        json.dump([c.model_dump(mode="json") for c in customers], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return EXIT_OK
    header = ["code", "legal_name", "country", "tax_id", "currency", "pays_for_it", "devices_now"]
    today = utc_now().date()
    rows = [
        [
            c.code,
            c.legal_name,
            c.country,
            c.tax_id or "",
            c.currency,
            book.payer_of(c.code),
            str(sum(1 for a in book.assignments_of(c.code) if a.start <= today < (a.end or date.max))),
        ]
        for c in customers
    ]
    print_rows(args.format, header, rows, title=f"{len(rows)} customer(s)")
    return EXIT_OK


async def cmd_customers_show(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        billing = BillingStore(store)
        book = await billing.book()
        timeline = await billing.comments(args.code)
    print(json.dumps(book.customers[args.code].model_dump(mode="json"), indent=2, ensure_ascii=False))
    rows = [
        [a.device, a.start.isoformat(), a.end.isoformat() if a.end else "open"] for a in book.assignments_of(args.code)
    ]
    print_rows("table", ["device", "from", "to"], rows, title="devices held")
    contracts = [
        [c.id, c.currency, str(len(c.versions)), ", ".join(c.devices) or "all its devices"]
        for c in book.contracts_of(args.code)
    ]
    print_rows("table", ["contract", "currency", "versions", "covers"], contracts, title="contracts")
    notes = [[f"{c.at:%Y-%m-%d %H:%M}", c.author, c.text] for c in timeline]
    print_rows("table", ["at (UTC)", "by", "comment"], notes, title="timeline")
    return EXIT_OK


async def cmd_customers_assign(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        warnings = await BillingStore(store).assign(
            args.device, args.customer, start=args.start, end=args.end, actor=args.by, now=utc_now()
        )
    print(f"{args.device} -> {args.customer} from {args.start}" + (f" to {args.end}" if args.end else ""))
    for warning in warnings:
        print(f"warning: {warning}")
    return EXIT_OK


async def cmd_customers_unassign(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await BillingStore(store).unassign(args.device, end=args.end, actor=args.by, now=utc_now())
    print(f"{args.device} leaves its customer on {args.end}")
    return EXIT_OK


async def cmd_contracts_list(_args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        book = await BillingStore(store).book()
    rows = [
        [
            c.id,
            c.customer,
            c.currency,
            c.versions[0].valid_from.isoformat(),
            c.versions[-1].valid_from.isoformat(),
            ", ".join(str(t.meter) for t in c.versions[-1].meters),
        ]
        for c in book.contracts
    ]
    print_rows(
        "table",
        ["id", "customer", "currency", "since", "latest version", "billed meters"],
        rows,
        title=f"{len(rows)} contract(s)",
    )
    return EXIT_OK


async def cmd_contracts_show(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        book = await BillingStore(store).book()
    found = next((c for c in book.contracts if c.id == args.id), None)
    if found is None:
        msg = f"no contract {args.id!r}; `meterd contracts list` shows them"
        raise BillingError(msg)
    print(found.model_dump_json(indent=2))
    return EXIT_OK


async def cmd_bill(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        result = await bill_month(
            store, settings, args.period, customers=args.customer, write=args.write, actor=args.by, now=utc_now()
        )
    ids = {saved.draft.payer: saved.invoice_id for saved in result.saved}

    def state(draft: Draft) -> str:
        return "preview" if not args.write else ("finalised: untouched" if ids.get(draft.payer) is None else "draft")

    if args.format == "json":
        _print_json(
            {
                "period": args.period.label,
                "already_finalised": result.skipped,
                "invoices": [draft_record(d, invoice_id=ids.get(d.payer), state=state(d)) for d in result.drafts],
            }
        )
        return EXIT_OK
    rows = []
    for draft in result.drafts:
        sums = draft.totals
        rows.append(
            [
                str(ids.get(draft.payer) or ""),
                draft.payer,
                state(draft),
                str(len(draft.lines)),
                str(sums.net),
                str(sums.tax),
                str(sums.total),
                draft.currency,
                str(len(draft.checks)),
            ]
        )
    print_rows(
        "table",
        ["invoice", "customer", "state", "lines", "net", "tax", "total", "currency", "to check"],
        rows,
        title=f"{args.period.label}: {len(rows)} invoice(s)",
    )
    for draft in result.drafts:
        if args.lines:
            _print_lines(draft)
        for note in draft.checks:
            print(f"  {draft.payer}: {note}")
    if result.skipped:
        print(f"already finalised, left as they are (late reads go to the next month): {', '.join(result.skipped)}")
    return EXIT_OK


def _print_lines(draft: Draft) -> None:
    rows = []
    for line in draft.lines:
        (start, end), *more = line_reads(line)
        flags = ("E" if line.estimated else "") + ("H" if line.held else "") + ("A" if line.adjustment else "")
        rows.append([line.description, start, end, str(line.quantity), str(line.amount), flags])
        rows.extend(["", segment_start, segment_end, "", "", ""] for segment_start, segment_end in more)
    print_rows(
        "table",
        ["line", "start read", "end read", "qty", "amount", "flags"],
        rows,
        title=f"{draft.payer} {draft.month.label}",
    )


async def cmd_invoices_list(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        found = await BillingStore(store).invoices(customer=args.customer, period=args.period, status=args.status)
    if args.format == "json":
        _print_json([_invoice_head(r) for r in found])
        return EXIT_OK
    rows = [
        [
            str(r.id),
            r.number or "",
            r.kind,
            r.status,
            r.customer,
            r.period.label,
            str(r.net),
            str(r.tax),
            str(r.total),
            r.currency,
        ]
        for r in found
    ]
    print_rows(
        args.format,
        ["id", "number", "kind", "status", "customer", "period", "net", "tax", "total", "currency"],
        rows,
        title=f"{len(rows)} invoice(s)",
    )
    return EXIT_OK


async def cmd_invoices_show(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        record = await BillingStore(store).invoice(args.id)
    if args.format == "json":
        _print_json(
            _invoice_head(record)
            | {"lines": [line_record(line) for line in record.lines], "checks": double_checks(record.lines)}
        )
        return EXIT_OK
    print(
        f"invoice {record.id} {record.number or '(draft)'} {record.kind} {record.status}: {record.customer} "
        f"{record.period.label}, net {record.net} tax {record.tax} total {record.total} "
        f"{record.currency}"
    )
    draft = Draft(record.customer, record.period, record.currency, list(record.lines), [])
    _print_lines(draft)
    for note in double_checks(record.lines):
        print(f"  check: {note}")
    return EXIT_OK


def _invoice_head(record: InvoiceRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "number": record.number,
        "kind": record.kind,
        "status": record.status,
        "customer": record.customer,
        "period": record.period.label,
        "currency": record.currency,
        "net": str(record.net),
        "tax": str(record.tax),
        "total": str(record.total),
        "issue_date": record.issue_date.isoformat() if record.issue_date else None,
        "due_date": record.due_date.isoformat() if record.due_date else None,
        "override": record.hold_override,
    }


def _print_json(data: object) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


async def cmd_invoices_finalize(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        for invoice_id in args.id:
            done = await finalize_invoice(
                store,
                settings,
                invoice_id,
                actor=args.by,
                now=utc_now(),
                issue_date=args.issue_date,
                override=args.override,
            )
            print(f"invoice {invoice_id}: {done.number}, total {done.total} {done.currency}, due {done.due_date}")
    return EXIT_OK


async def cmd_invoices_void(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        credit = await void_invoice(store, settings, args.id, reason=args.reason, actor=args.by, now=utc_now())
    print(
        f"invoice {args.id} voided; credit note {credit.number} (id {credit.id}) for {credit.total} {credit.currency}"
    )
    return EXIT_OK


async def cmd_invoices_export(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        document = await invoice_document(store, settings, args.id)
    if args.format == "pdf":
        if args.out == "-":
            msg = "a PDF goes to a file: --out invoice.pdf"
            raise MeterdError(msg)
        data = await asyncio.to_thread(to_pdf, document)
    else:
        data = to_ubl(document)
    await asyncio.to_thread(_write, args.out, data)
    if args.out != "-":
        print(f"{args.out}: {document.kind} {document.number or 'draft'} ({len(data):,} bytes)")
    return EXIT_OK


def _write(out: str, data: bytes | str) -> None:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if out == "-":
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
        return
    try:
        write_private(Path(out), raw)
    except OSError as err:
        msg = f"cannot write {out}: {err.strerror}"
        raise MeterdError(msg) from err


async def cmd_reports_usage(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        report = await usage_report(store, settings, args.customer, args.period, args.format)
    await asyncio.to_thread(_write, args.out, report)
    return EXIT_OK


async def cmd_reports_erp(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        invoices = await period_invoices(store, args.period, None)
    rows = [row for record in invoices for row in usage_rows(record.lines, record.number or f"draft {record.id}")]
    await asyncio.to_thread(_write, args.out, erp_csv(rows))
    if args.out != "-":
        print(f"{args.out}: {len(rows)} meter read pair(s) from {len(invoices)} invoice(s)")
    return EXIT_OK


async def cmd_customers_comment(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await BillingStore(store).add_comment(args.code, args.text, author=args.by, now=utc_now())
    print(f"noted on {args.code}'s timeline")
    return EXIT_OK


async def cmd_customers_notices(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        found = await notices(store, status=args.status)
    rows = [[str(n.id), n.customer, n.recipient, n.status, str(n.attempts), n.last_error or ""] for n in found]
    print_rows("table", ["id", "customer", "to", "status", "tries", "last error"], rows, title=f"{len(rows)} notice(s)")
    return EXIT_OK
