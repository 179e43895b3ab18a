"""`meterd portal …`: invite a customer's contact, list and decide change requests, from the shell."""

from __future__ import annotations

import argparse

from daemon.cli.command_support import default_user, open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.services import portal
from daemon.services.accounts import accounts_for
from daemon.settings import Settings


def add_portal_parsers(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    commands = sub.add_parser("portal", help="the customers' portal: invitations, change requests").add_subparsers(
        metavar="ACTION"
    )
    invite = commands.add_parser("invite", parents=[common], help="open a portal account for a customer's contact")
    invite.add_argument("customer", help="the customer's code")
    invite.add_argument("email", help="one of the contacts on the customer's card")
    invite.set_defaults(handler=cmd_invite)
    requests = commands.add_parser("requests", parents=[common], help="change requests waiting for a decision")
    requests.add_argument("--format", choices=["table", "csv", "json"], default="table")
    requests.set_defaults(handler=cmd_requests)
    for name, approve in (("approve", True), ("reject", False)):
        decide = commands.add_parser(name, parents=[common], help=f"{name} a change request (the customer is mailed)")
        decide.add_argument("request_id", type=int)
        decide.add_argument("--reason", default="", help="required to reject: the customer reads it")
        decide.set_defaults(handler=cmd_decide, approve=approve)
    for parser in (invite, *(commands.choices[name] for name in ("approve", "reject"))):
        parser.add_argument("--by", default=default_user(), help="who (default: the login name)")


async def cmd_invite(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        link = await portal.invite(
            store, settings, accounts_for(settings, store), args.customer, args.email, actor=args.by, now=utc_now()
        )
    where = "mailed through the outbox" if settings.mail.enabled else "not mailed ([mail] is not set up): pass it on"
    print(f"invited {args.email.lower()} to {args.customer}'s portal; the link ({where}), single use:\n{link}")
    return 0


async def cmd_requests(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        found = await portal.open_requests(store)
    rows = [
        [
            str(r.id),
            r.customer,
            r.requested_by,
            f"{r.created_at:%Y-%m-%d %H:%M}",
            ", ".join(r.after),
            r.proof_name or "",
        ]
        for r in found
    ]
    header = ["id", "customer", "asked_by", "sent", "fields", "proof"]
    print_rows(args.format, header, rows, title="change requests waiting")
    return 0


async def cmd_decide(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        decided = await portal.decide_change(
            store, settings, args.request_id, approve=args.approve, reason=args.reason, actor=args.by, now=utc_now()
        )
    print(f"change request {decided.id} {decided.status}; the customer is mailed")
    return 0
