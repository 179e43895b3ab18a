"""`meterd users …` and `meterd audit`: accounts from the shell (where the first admin comes from), the audit log.

Passwords are asked for on a terminal (twice) or read as the first line of standard input
(``--password-stdin``, for scripted installs); never as an argument, where `ps` and the
shell history would keep them.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from dataclasses import asdict

from daemon.cli.command_support import default_user, open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.kernel.errors import MeterdError
from daemon.security.roles import ROLES
from daemon.services.accounts import Enrollment, accounts_for
from daemon.settings import Settings
from daemon.storage.audit import find_audit


def add_user_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    users = sub.add_parser("users", help="who may use the API, with which role").add_subparsers(metavar="ACTION")
    listing = users.add_parser("list", parents=[common], help="users and their state")
    listing.add_argument("--format", choices=["table", "csv", "json"], default="table")
    listing.set_defaults(handler=cmd_list)
    add = users.add_parser("add", parents=[common], help="add a user (admin and billing get a second factor)")
    add.add_argument("login")
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    _password_source(add)
    add.set_defaults(handler=cmd_add)
    passwd = users.add_parser("passwd", parents=[common], help="set a new password (ends the user's sessions)")
    passwd.add_argument("login")
    _password_source(passwd)
    passwd.set_defaults(handler=cmd_passwd)
    second = users.add_parser("2fa", parents=[common], help="a new TOTP secret and recovery codes")
    second.add_argument("login")
    second.set_defaults(handler=cmd_second_factor)
    role = users.add_parser("role", parents=[common], help="change a user's role (ends their sessions)")
    role.add_argument("login")
    role.add_argument("role", choices=ROLES)
    role.set_defaults(handler=cmd_role)
    for name, disabled, text in (
        ("disable", True, "no more logins; sessions and tokens end now"),
        ("enable", False, "allow logins again"),
    ):
        toggle = users.add_parser(name, parents=[common], help=text)
        toggle.add_argument("login")
        toggle.add_argument("--by", default=default_user(), help="who (default: the login name)")
        toggle.set_defaults(handler=cmd_disable, disabled=disabled)
    unlock = users.add_parser("unlock", parents=[common], help="lift a lock-out after failed logins")
    unlock.add_argument("login")
    unlock.set_defaults(handler=cmd_unlock)
    for parser in (add, passwd, second, role, unlock):
        parser.add_argument("--by", default=default_user(), help="who (default: the login name)")
    audit = sub.add_parser("audit", parents=[common], help="who changed what, newest first")
    audit.add_argument("--target", help="e.g. customer:ACME, or customer: for every customer")
    audit.add_argument("--actor")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--format", choices=["table", "csv", "json"], default="table")
    audit.set_defaults(handler=cmd_audit)


def _password_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        msg = "no terminal to ask for the password: pipe it in with --password-stdin"
        raise MeterdError(msg)
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        msg = "the two passwords differ; nothing changed"
        raise MeterdError(msg)
    return first


def _show_enrollment(login: str, enrollment: Enrollment) -> None:
    print(f"second factor for {login}: add this to an authenticator app (shown once):")
    print(f"  {enrollment.uri}")
    print("recovery codes, each good for one login without the app (shown once; keep them safe):")
    for code in enrollment.recovery_codes:
        print(f"  {code}")


async def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    password = _password(args)
    async with open_store(settings) as store:
        enrollment = await accounts_for(settings, store).add_user(
            args.login, args.name, args.role, password, actor=args.by
        )
    print(f"user {args.login} ({args.role}) added")
    if enrollment is not None:
        _show_enrollment(args.login, enrollment)
    return 0


async def cmd_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = _password(args)
    async with open_store(settings) as store:
        await accounts_for(settings, store).set_password(args.login, password, actor=args.by)
    print(f"password of {args.login} changed; their sessions have ended")
    return 0


async def cmd_second_factor(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        enrollment = await accounts_for(settings, store).enroll_second_factor(args.login, actor=args.by)
    _show_enrollment(args.login, enrollment)
    return 0


async def cmd_role(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await accounts_for(settings, store).set_role(args.login, args.role, actor=args.by)
    print(f"{args.login} is now {args.role}; their sessions have ended")
    return 0


async def cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await accounts_for(settings, store).set_disabled(args.login, args.disabled, actor=args.by)
    print(f"{args.login} {'disabled: sessions and tokens ended' if args.disabled else 'enabled'}")
    return 0


async def cmd_unlock(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        await accounts_for(settings, store).unlock(args.login, actor=args.by)
    print(f"{args.login} unlocked")
    return 0


async def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        users = await accounts_for(settings, store).users()
    if args.format == "json":
        json.dump([asdict(u) for u in users], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    now = utc_now()
    rows = [
        [
            u.login,
            u.name,
            u.role,
            "yes" if u.second_factor else "",
            "disabled" if u.disabled else ("locked" if u.locked_until and u.locked_until > now else "active"),
        ]
        for u in users
    ]
    print_rows(args.format, ["login", "name", "role", "2fa", "state"], rows, title=f"{len(users)} user(s)")
    return 0


async def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        entries = await find_audit(store, target=args.target, actor=args.actor, limit=args.limit)
    if args.format == "json":
        json.dump([asdict(e) for e in entries], sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    rows = [
        [
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.actor,
            e.source or "",
            e.action,
            e.target,
            json.dumps(e.detail, default=str)[:120],
        ]
        for e in entries
    ]
    print_rows(
        args.format,
        ["at (UTC)", "who", "from", "action", "what", "detail"],
        rows,
        title=f"{len(entries)} audit entries",
    )
    return 0
