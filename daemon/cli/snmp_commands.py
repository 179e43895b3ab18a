"""`meterd poll` and `meterd discover`: read or find printers on the spot; no database needed."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Final, TextIO

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from collectors import wire
from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector, poll_many
from collectors.snmp.discovery import Found, addresses, discover
from collectors.snmp.mapping import DeviceReport
from collectors.snmp.status import DeviceStatus
from collectors.snmp.usm import UsmCredentials
from daemon.kernel.errors import CollectorError
from daemon.services.polling import usm_credentials
from daemon.settings import Settings, SnmpV3User, canonical_host

EXIT_ANSWERED: Final = 0
EXIT_NO_ANSWER: Final = 2


def add_poll_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    poll = sub.add_parser(
        "poll",
        parents=[common],
        help="read printers once over SNMP and print what they report",
        description="Exit 0 when every device answered, 2 when one did not (the reason on stderr).",
    )
    poll.add_argument("hosts", nargs="+", metavar="HOST[:PORT]", help="address or name, port 161 unless given")
    poll.add_argument(
        "--community",
        action="append",
        metavar="C",
        help="community to try (repeat for several, tried in order); default snmp.communities",
    )
    poll.add_argument("--snmp-version", choices=["1", "2c", "3"], default="2c")
    _add_v3_arguments(poll)
    poll.add_argument("--timeout", type=float, metavar="S", help="seconds per attempt (default snmp.timeout_s)")
    poll.add_argument("--retries", type=int, help="retries after a timeout (default snmp.retries)")
    poll.add_argument("--format", choices=["table", "json"], default="table")
    poll.set_defaults(handler=cmd_poll, config_optional=True)


def _add_v3_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--v3-user", metavar="USER", help="SNMPv3 user (implies --snmp-version 3)")
    parser.add_argument("--auth", metavar="PROTO:KEY", help="SNMPv3 authentication: sha:KEY or sha256:KEY")
    parser.add_argument("--priv", metavar="PROTO:KEY", help="SNMPv3 privacy: aes128:KEY or aes256:KEY")
    parser.add_argument("--context", default="", help="SNMPv3 context name (printers use the empty one)")


def add_discover_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    discover = sub.add_parser(
        "discover",
        parents=[common],
        help="find printers in an address range (rate-limited) and list or add them",
        description="Sends one small GET per address, at most --rate per second, then reads what answered "
        "as a printer. Never floods a subnet.",
    )
    discover.add_argument("networks", nargs="+", metavar="CIDR", help="e.g. 10.0.4.0/24 or one address")
    discover.add_argument("--port", type=int, default=161)
    discover.add_argument("--community", action="append", metavar="C", help="repeatable; default snmp.communities")
    discover.add_argument("--snmp-version", choices=["1", "2c"], default="2c")
    _add_v3_arguments(discover)
    discover.add_argument("--rate", type=float, default=20.0, help="new addresses per second (default 20)")
    discover.add_argument("--timeout", type=float, default=1.0, metavar="S")
    discover.add_argument("--format", choices=["table", "json"], default="table")
    discover.add_argument(
        "--append-to", metavar="FILE", help="append a [[snmp.targets]] block per printer found to this config file"
    )
    discover.set_defaults(handler=cmd_discover, config_optional=True)


async def cmd_discover(args: argparse.Namespace, settings: Settings) -> int:
    communities = tuple(args.community or [c.get_secret_value() for c in settings.snmp.communities])
    try:
        hosts = [host for network in args.networks for host in addresses(network)]
        usm = _usm_from_args(args)
    except (ValueError, argparse.ArgumentTypeError) as err:
        print(f"meterd discover: {err}", file=sys.stderr)
        return EXIT_NO_ANSWER
    targets = [
        SnmpTarget(
            host, args.port, "3" if usm else args.snmp_version, communities, timeout_s=args.timeout, retries=0, usm=usm
        )
        for host in hosts
    ]
    async with SnmpCollector(site=settings.site) as collector:
        found = await discover(collector, targets, rate=args.rate, concurrency=settings.snmp.max_concurrency)
    reports = [printer.report for printer in found]
    if args.format == "json":
        rows = [{**wire.encode(r.reading)["device"], "profile": r.profile} for r in reports]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        table = Table(title=f"{len(found)} printer(s) in {len(hosts)} address(es)", title_justify="left")
        for column in ("address", "vendor", "model", "serial", "profile"):
            table.add_column(column)
        for report in reports:
            device = report.reading.device
            table.add_row(device.address or "", device.vendor or "", device.model or "", device.key, report.profile)
        Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120).print(table)
    if args.append_to and found:
        added = _append_targets(Path(args.append_to), found)
        print(f"appended {added} target(s) to {args.append_to}", file=sys.stderr)
    return EXIT_ANSWERED if found else EXIT_NO_ANSWER


def _append_targets(path: Path, found: list[Found]) -> int:
    """A [[snmp.targets]] block per printer the file does not list yet, with the community that answered.

    A second entry for a host and port would make the file invalid; JSON strings are TOML strings.
    """
    try:
        listed = tomllib.loads(path.read_text(encoding="utf-8")).get("snmp", {}).get("targets", [])
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        listed = []  # a file that does not exist yet, or that `config check` will explain
    known = {(canonical_host(str(t.get("host"))), t.get("port", 161)) for t in listed if isinstance(t, dict)}
    new = [p for p in found if (canonical_host(p.target.host), p.target.port) not in known]
    with path.open("a", encoding="utf-8") as config:
        for printer in new:
            device, target = printer.report.reading.device, printer.target
            config.write(
                f"\n# {device.vendor or ''} {device.model or ''} {device.key} (found by meterd discover)\n"
                f"[[snmp.targets]]\nhost = {json.dumps(target.host)}\nport = {target.port}\n"
                f"version = {json.dumps(target.version)}\n{_credentials_toml(target)}"
            )
    return len(new)


def _credentials_toml(target: SnmpTarget) -> str:
    """What answered: the v1/v2c community, or the v3 user with its protocols, keys and context."""
    if target.usm is None:
        return f"communities = {json.dumps(list(target.communities))}\n"
    usm = target.usm
    keys = {
        "user": usm.user,
        "auth_protocol": usm.auth_protocol,
        "auth_key": usm.auth_key,
        "priv_protocol": usm.priv_protocol,
        "priv_key": usm.priv_key,
        "context": usm.context,
    }
    return "[snmp.targets.v3]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items() if value)


def parse_host(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``.

    Raises:
        argparse.ArgumentTypeError: the port is not 1-65535.
    """
    host, port = text, "161"
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or "161"
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:  # noqa: PLR2004 - the UDP port range
        msg = f"{text!r}: port must be 1-65535"
        raise argparse.ArgumentTypeError(msg)
    return host, int(port)


def _usm_from_args(args: argparse.Namespace) -> UsmCredentials | None:
    """The v3 user of the command line, validated as the config file's would be.

    Raises:
        argparse.ArgumentTypeError: a protocol or key the settings would refuse.
    """
    if not args.v3_user:
        return None
    table: dict[str, str] = {"user": args.v3_user, "context": args.context}
    for option, prefix in ((args.auth, "auth"), (args.priv, "priv")):
        protocol, _, key = (option or "none:").partition(":")
        table[f"{prefix}_protocol"], table[f"{prefix}_key"] = protocol.lower(), key
    try:
        return usm_credentials(SnmpV3User.model_validate({k: v for k, v in table.items() if v}))
    except ValidationError as err:
        raise argparse.ArgumentTypeError(err.errors()[0]["msg"]) from None


async def cmd_poll(args: argparse.Namespace, settings: Settings) -> int:
    communities = tuple(args.community or [c.get_secret_value() for c in settings.snmp.communities])
    try:
        addresses = [parse_host(host) for host in args.hosts]
        usm = _usm_from_args(args)
    except argparse.ArgumentTypeError as err:
        print(f"meterd poll: {err}", file=sys.stderr)
        return EXIT_NO_ANSWER
    targets = [
        SnmpTarget(
            host=host,
            port=port,
            version="3" if usm else args.snmp_version,
            communities=communities,
            timeout_s=args.timeout or settings.snmp.timeout_s,
            retries=settings.snmp.retries if args.retries is None else args.retries,
            usm=usm,
        )
        for host, port in addresses
    ]
    async with SnmpCollector(site=settings.site) as collector:
        results = await poll_many(collector, targets, concurrency=settings.snmp.max_concurrency)
    reports = [r for r in results if isinstance(r, DeviceReport)]
    for failure in (r for r in results if isinstance(r, CollectorError)):
        print(f"meterd poll: {failure}", file=sys.stderr)
    if args.format == "json":
        json.dump([wire.encode(report.reading) for report in reports], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for report in reports:
            print_report(report, sys.stdout)
    return EXIT_ANSWERED if len(reports) == len(results) else EXIT_NO_ANSWER


def status_line(status: DeviceStatus) -> str:
    """The device's state as one line: status, printer status, error bits, standing alerts."""
    parts = [f"status {status.device or 'not reported'} (printer {status.printer or 'not reported'})"]
    if status.errors:
        parts.append("errors: " + ", ".join(status.errors))
    standing = [a for a in status.alerts if a.is_condition]
    if standing:
        parts.append("alerts: " + "; ".join(f"{a.code} {a.description}".strip() for a in standing))
    return "  ".join(parts)


def print_report(report: DeviceReport, out: TextIO) -> None:
    """What a technician reads on site: who answered, every meter, every supply, what went wrong."""
    reading = report.reading
    device = reading.device
    console = Console(file=out, width=None if out.isatty() else 100)
    title = " ".join(part for part in (device.vendor, device.model) if part) or "unknown device"
    console.print(f"[bold]{title}[/bold]  serial {device.key}  at {device.address}  (profile {report.profile})")
    meters = Table(title="meters", title_justify="left")
    for column, justify in (("meter", "left"), ("value", "right"), ("unit", "left"), ("", "left")):
        meters.add_column(column, justify=justify)  # type: ignore[arg-type]
    for value in reading.meters:
        meters.add_row(value.meter.value, f"{value.value:,}", value.unit.value, "derived" if value.derived else "")
    console.print(meters if reading.meters else "no page counters reported")
    if reading.supplies:
        supplies = Table(title="supplies", title_justify="left")
        for column in ("supply", "kind", "level"):
            supplies.add_column(column, justify="right" if column == "level" else "left")
        for item in reading.supplies:
            level = "unknown" if item.level_percent is None else f"{item.level_percent} %"
            supplies.add_row(item.name, item.kind, level)
        console.print(supplies)
    if report.status is not None:
        console.print(status_line(report.status))
    for problem in report.problems:
        console.print(f"[yellow]could not read[/yellow] {problem}")
    console.print()
