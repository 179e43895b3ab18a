"""The `meterd` command line: run, poll, config check, db upgrade, readings, devices, ingest, dead-letters.

Review and billing commands live in their own modules (anomaly_commands, billing_commands).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

from rich.console import Console
from rich.progress import Progress

from collectors import wire
from daemon import __version__
from daemon.cli.command_support import open_store, print_rows
from daemon.kernel.clock import utc_now
from daemon.kernel.errors import ConfigError, MeterdError, PayloadError
from daemon.kernel.reading import Reading
from daemon.runtime import logging as meterd_logging
from daemon.runtime.app import Daemon
from daemon.services.metrics import Metrics
from daemon.services.mqtt import forward_encoder
from daemon.services.pipeline import Pipeline
from daemon.services.readings import reading_table
from daemon.settings import DEFAULT_CONFIG_PATHS, Settings, environment_beside, load, resolve_config_path
from daemon.storage.engine import mask, parse_url
from daemon.storage.repository import Store

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
FILE_SOURCE: Final = "file"

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `meterd` console script; returns the process exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    parser = _build_parser(only_run=words[:1] == ["run"])
    args = parser.parse_args(words)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings() if getattr(args, "no_settings", False) else _settings_for(args)
        meterd_logging.configure(args.log_level or settings.logging.level, args.log_format or settings.logging.format)
        handler: Handler = args.handler
        return asyncio.run(handler(args, settings))
    except ConfigError as err:
        if getattr(args, "doctor", False):  # the doctor reports a bad configuration as its first failed check
            from daemon.services.doctor import FIX_CONFIG, Check, render  # noqa: PLC0415 - the doctor's own path

            print(render([Check("configuration", ok=False, detail=str(err), fix=FIX_CONFIG)], args.format))
        else:
            for problem in err.problems:
                print(f"meterd: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except MeterdError as err:
        print(f"meterd: {err}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `meterd readings | head`: the reader left; that is not an error of ours.
        sys.stderr.close()
        return EXIT_OK


def _settings_for(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if args.db:
        overrides["storage"] = {"url": args.db}
    path = resolve_config_path(getattr(args, "config_file", None) or args.config, os.environ)
    if path is None and not args.db and not getattr(args, "config_optional", False):
        tried = ", ".join(str(p) for p in DEFAULT_CONFIG_PATHS)
        reason = f"no configuration file found (tried $METERD_CONFIG, {tried}); pass --config FILE"
        raise ConfigError("", "", reason)
    # The process's own environment wins over the file, as it does for the service's Environment= lines.
    environ = {**environment_beside(path), **os.environ} if path else os.environ
    return load(path, environ, overrides)


def _build_parser(*, only_run: bool = False) -> argparse.ArgumentParser:
    """The command line; ``only_run``: just `meterd run`, without importing the other commands' modules.

    Those bring billing, detection and the console (pandas, pyarrow, reportlab, FastAPI: ~150 MB
    resident, ~1.5 s of CPU) into every process that imports them; a daemon that never runs them,
    an agent above all, must not pay for that at each start (issue 24).
    """
    parser = argparse.ArgumentParser(
        prog="meterd", description="Meter collection and usage billing for managed-print dealers."
    )
    parser.add_argument("--version", action="version", version=f"meterd {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help="configuration file (default: $METERD_CONFIG, /etc/meterd/meterd.toml, ./meterd.toml)",
    )
    common.add_argument(
        "--db", metavar="URL", help="store URL, overriding storage.url (sqlite:///PATH or postgresql://USER@HOST/DB)"
    )
    common.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-format", choices=["auto", "json", "console"])
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common], help="run the daemon")
    run.add_argument("--once", action="store_true", help="run every job once, then exit")
    run.set_defaults(handler=_cmd_run)
    if only_run:
        return parser

    config = sub.add_parser("config", help="configuration tools").add_subparsers(metavar="ACTION")
    check = config.add_parser("check", parents=[common], help="validate a configuration file and exit")
    check.add_argument("config_file", nargs="?", metavar="FILE")
    check.set_defaults(handler=_cmd_config_check)

    db = sub.add_parser("db", help="store tools").add_subparsers(metavar="ACTION")
    db.add_parser("upgrade", parents=[common], help="migrate the store to the latest schema").set_defaults(
        handler=_cmd_db_upgrade
    )

    readings = sub.add_parser("readings", parents=[common], help="list stored readings")
    readings.add_argument("--device", metavar="KEY", help="device key (serial, mac:…, addr:…)")
    readings.add_argument(
        "--since",
        type=_parse_time,
        metavar="TIME",
        help="from TIME (inclusive; RFC 3339 or a date; UTC when no zone is given)",
    )
    readings.add_argument("--until", type=_parse_time, metavar="TIME", help="until TIME (exclusive)")
    readings.add_argument("--format", choices=["table", "csv", "json"], default="table")
    readings.set_defaults(handler=_cmd_readings)

    devices = sub.add_parser("devices", parents=[common], help="list known devices")
    devices.add_argument("--format", choices=["table", "csv", "json"], default="table")
    devices.set_defaults(handler=_cmd_devices)

    ingest = sub.add_parser(
        "ingest",
        parents=[common],
        help="store readings from a reading-v1 JSON file",
        description=(
            "Store readings from a reading-v1 file, in batches as the hub commits them. On an agent "
            '(role = "agent") each new reading is also queued in the outbox and forwarded to the hub '
            "like a polled one (by the running daemon); a record of another site is rejected. Exits 1 "
            "when any record was rejected, saying how many (`meterd dead-letters` shows why)."
        ),
    )
    ingest.add_argument("file", metavar="FILE", help="a JSON array, one object, or one object per line; - for stdin")
    ingest.set_defaults(handler=_cmd_ingest)

    _add_command_modules(sub, common)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="poll a simulated fleet of printers for a minute, showing a live table",
        description="Starts simulated printers (snmpsim) on loopback, runs the daemon against them on a "
        "throwaway SQLite store and shows what it reads. Needs the 'demo' extra (snmpsim).",
    )
    demo.add_argument("--duration", type=float, default=60.0, metavar="S", help="seconds to run (default 60)")
    demo.add_argument("--metrics-listen", default="127.0.0.1:0", metavar="HOST:PORT", help="default: a free port")
    demo.add_argument("--keep", action="store_true", help="keep the store and logs (path printed at the end)")
    demo.set_defaults(handler=_cmd_demo, config_optional=True)

    doctor = sub.add_parser("doctor", parents=[common], help="check this box: config, store, clock, printers, broker")
    doctor.add_argument("--format", choices=["table", "json"], default="table")
    doctor.set_defaults(handler=_cmd_doctor, doctor=True)

    dead = sub.add_parser("dead-letters", parents=[common], help="show rejected input, newest first")
    dead.add_argument("--limit", type=int, default=20)
    dead.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="csv and json carry the raw input too"
    )
    dead.set_defaults(handler=_cmd_dead_letters)
    return parser


def _add_command_modules(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The commands that live in modules of their own; imported here, not for `meterd run` (see _build_parser)."""
    from daemon.cli.anomaly_commands import add_anomaly_parsers  # noqa: PLC0415
    from daemon.cli.backup_commands import add_backup_parsers  # noqa: PLC0415
    from daemon.cli.billing_commands import add_billing_parsers  # noqa: PLC0415
    from daemon.cli.init_command import add_init_parser  # noqa: PLC0415
    from daemon.cli.portal_commands import add_portal_parsers  # noqa: PLC0415
    from daemon.cli.receivables_commands import add_receivables_parsers  # noqa: PLC0415
    from daemon.cli.service_commands import add_service_parsers  # noqa: PLC0415
    from daemon.cli.snmp_commands import add_discover_parser, add_poll_parser  # noqa: PLC0415
    from daemon.cli.supplies_commands import add_supplies_parsers  # noqa: PLC0415
    from daemon.cli.user_commands import add_user_parsers  # noqa: PLC0415

    for add_parsers in (
        add_poll_parser,
        add_discover_parser,
        add_anomaly_parsers,
        add_supplies_parsers,
        add_service_parsers,
        add_billing_parsers,
        add_user_parsers,
        add_portal_parsers,
        add_backup_parsers,
        add_receivables_parsers,
    ):
        add_parsers(sub, common)
    add_init_parser(sub)


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        msg = f"{text!r} is not a date or RFC 3339 time (e.g. 2026-11-01 or 2026-11-01T08:00:00Z)"
        raise argparse.ArgumentTypeError(msg) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    await Daemon(settings).run(once=args.once)
    return EXIT_OK


async def _cmd_demo(args: argparse.Namespace, _settings: Settings) -> int:
    from daemon.demo.run import run_demo  # noqa: PLC0415 - needs the optional snmpsim; load it only here

    # The live table is the demo's output; routine log lines would scroll it away.
    meterd_logging.configure(args.log_level or "warning", args.log_format or "auto")
    await run_demo(duration_s=args.duration, metrics_listen=args.metrics_listen, keep=args.keep, console=Console())
    return EXIT_OK


async def _cmd_config_check(_args: argparse.Namespace, settings: Settings) -> int:
    # Loading already validated everything; say what the daemon would do with it.
    url = parse_url(settings.database_url)
    print(f"configuration OK: site {settings.site!r}, store {mask(url)}, {len(settings.snmp.targets)} SNMP target(s)")
    return EXIT_OK


async def _cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings, upgrade=False) as store:
        before, after = await store.migrate()
    print(f"store {store.url_for_humans}: schema {before or 'empty'} -> {after}")
    return EXIT_OK


async def _cmd_readings(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        readings = await store.readings(device=args.device, since=args.since, until=args.until)
    if args.format == "json":
        json.dump([wire.encode(r) for r in readings], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    header, rows = reading_table(readings)
    print_rows(args.format, header, rows, title=f"{len(readings)} reading(s)")
    return EXIT_OK


async def _cmd_devices(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        devices = await store.devices()
    header = ["key", "vendor", "model", "address", "site", "first_seen", "last_seen"]
    rows = [
        [
            d.key,
            d.vendor or "",
            d.model or "",
            d.address or "",
            d.site,
            wire.format_time(d.first_seen),
            wire.format_time(d.last_seen),
        ]
        for d in devices
    ]
    if args.format == "json":
        json.dump([dict(zip(header, row, strict=True)) for row in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print_rows(args.format, header, rows, title=f"{len(devices)} device(s)")
    return EXIT_OK


@dataclass
class IngestCounts:
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0


async def _cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    origin, raw = await asyncio.to_thread(_read_input, args.file)
    async with open_store(settings) as store:
        counts = await ingest_file(store, settings, raw, origin, progress=sys.stderr.isatty())
    print(
        f"{counts.stored} reading(s) stored, {counts.duplicates} duplicate(s) dropped, "
        f"{counts.rejected} rejected into dead letters"
    )
    if counts.rejected:
        print(
            f"meterd: {counts.rejected} of {counts.records} record(s) rejected; `meterd dead-letters` shows why",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK


async def ingest_file(store: Store, settings: Settings, raw: bytes, origin: str, *, progress: bool) -> IngestCounts:
    """A file of reading-v1 records into the store, in batches of ``mqtt.batch_max`` as the hub commits them.

    On an agent every new reading is queued in the outbox, as a polled one is, so the daemon
    forwards it; a record of another site than the agent's is rejected (the hub would refuse it).
    """
    agent = settings.role == "agent"
    pipeline = Pipeline(store, Metrics(), forward=forward_encoder(settings.site) if agent else None)
    items = _split_batch(raw, origin)
    counts = IngestCounts(records=len(items))
    if len(items) == 1 and isinstance(items[0][1], PayloadError):  # the file as a whole is unreadable
        await pipeline.reject(raw, origin=origin, source=FILE_SOURCE, error=items[0][1])
        counts.rejected = 1
        return counts
    records = cast("list[tuple[str, bytes]]", items)
    check = partial(_own_site, settings.site) if agent else None
    size = settings.mqtt.batch_max
    with Progress(console=Console(stderr=True), transient=True, disable=not progress) as bar:
        task = bar.add_task("ingesting", total=len(records))
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            readings, rejected = await wire.decode_batch(pipeline, batch, source=FILE_SOURCE, check=check)
            outcome = await pipeline.emit(readings)
            counts.stored += outcome.stored
            counts.duplicates += outcome.duplicates
            counts.rejected += rejected + len(outcome.elsewhere)
            bar.advance(task, len(batch))
    return counts


def _own_site(site: str, reading: Reading, _origin: str) -> None:
    if reading.site != site:
        detail = (
            f"site {reading.site!r} on an agent of site {site!r}: an agent forwards its own site's readings only; "
            "ingest it on that site's agent or on the hub"
        )
        raise PayloadError("wrong_site", detail)


def _read_input(name: str) -> tuple[str, bytes]:
    """The input's name for dead letters, and its bytes."""
    if name == "-":
        return "stdin", sys.stdin.buffer.read()
    path = Path(name).absolute()
    try:
        return str(path), path.read_bytes()
    except OSError as err:
        msg = f"cannot read {path}: {err.strerror}"
        raise MeterdError(msg) from None


def _split_batch(raw: bytes, origin: str) -> list[tuple[str, bytes | PayloadError]]:
    """One file to per-reading byte strings: a JSON array, one object, or NDJSON."""
    stripped = raw.strip()
    if stripped.startswith(b"["):
        try:
            items = wire.parse_json(stripped, max_bytes=len(stripped))
        except PayloadError as err:
            return [(origin, err)]
        return [(f"{origin}[{i}]", json.dumps(item).encode()) for i, item in enumerate(items)]
    lines = [line for line in stripped.split(b"\n") if line.strip()]
    if len(lines) > 1:
        return [(f"{origin}:{n}", line) for n, line in enumerate(lines, 1)]
    return [(origin, stripped)]


async def _cmd_dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    async with open_store(settings) as store:
        letters = await store.dead_letters(limit=args.limit)
    header = ["received_at", "last_received_at", "repeats", "source", "origin", "reason", "detail"]
    rows = [
        [
            wire.format_time(d.received_at),
            wire.format_time(d.last_received_at),
            str(d.repeats),
            d.source,
            d.origin,
            d.reason,
            d.detail,
        ]
        for d in letters
    ]
    if args.format != "table":
        # The input as text where it is UTF-8, with the bytes that are not shown as \xNN escapes.
        header.append("raw")
        for row, letter in zip(rows, letters, strict=True):
            row.append(letter.raw.decode("utf-8", errors="backslashreplace"))
    if args.format == "json":
        listed = [
            {**dict(zip(header, row, strict=True)), "repeats": d.repeats} for row, d in zip(rows, letters, strict=True)
        ]
        json.dump(listed, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    print_rows(args.format, header, rows, title=f"{len(letters)} dead letter(s)")
    return EXIT_OK


async def _cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    from daemon.services.doctor import diagnose, exit_code, render  # noqa: PLC0415 - Alembic's scripts: the doctor's

    source = str(resolve_config_path(args.config, os.environ) or "the defaults")
    checks = await diagnose(settings, source, now=utc_now())
    print(render(checks, args.format))
    return exit_code(checks)
