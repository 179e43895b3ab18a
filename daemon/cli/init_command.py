"""`meterd init`: the few questions a technician can answer on site, and a valid configuration written from them.

Asked on a terminal (every question has a default in brackets), or given as flags for a
scripted install (--site, --subnet, --community or --v3-user/--auth/--priv, --broker or
none, with --broker-user, --broker-ca and --broker-password-file). What is written is
checked like any configuration before it replaces anything; an existing file is replaced
only with --force, and kept beside as FILE.bak. The new file gets the group of the one it
replaces (or of its directory: root:meterd as install.sh makes it), so the service can
read it. A broker password typed in goes to meterd.env beside it (0600), never into it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from daemon.kernel.errors import ConfigError, MeterdError
from daemon.settings import DEFAULT_STATE_DIR, load

DEFAULT_FILE: Final = Path("/etc/meterd/meterd.toml")
MQTT_TLS_PORT: Final = 8883
PASSWORD_VARIABLE: Final = "METERD_MQTT__PASSWORD"  # noqa: S105 - the variable's name, not a password


def add_init_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    init = sub.add_parser("init", help="write a configuration from a few questions (or flags)")
    init.add_argument(
        "--file",
        "--config",
        dest="file",
        type=Path,
        default=DEFAULT_FILE,
        help=f"the configuration file to write (default {DEFAULT_FILE})",
    )
    init.add_argument("--site", help="this site's name: letters, digits, - _ . (e.g. acme-hq)")
    init.add_argument(
        "--subnet", action="append", help="a printer subnet or host to poll, e.g. 10.0.4.0/24 or 10.0.4.9:1161 (repeat)"
    )
    init.add_argument("--community", action="append", help="an SNMP v1/v2c community to try (repeat)")
    init.add_argument("--v3-user", help="poll with SNMPv3 as this user instead of communities")
    init.add_argument("--auth", metavar="sha|sha256:KEY", help="SNMPv3 authentication (with --v3-user)")
    init.add_argument("--priv", metavar="aes128|aes256:KEY", help="SNMPv3 privacy (with --v3-user)")
    init.add_argument("--broker", metavar="HOST[:PORT]", help="the hub's MQTT broker; 'none' for a standalone box")
    init.add_argument("--broker-user", help="this agent's login at the broker (default: the site name)")
    init.add_argument("--broker-ca", type=Path, help="CA file of the broker's TLS certificate (turns TLS on)")
    init.add_argument(
        "--broker-password-file", type=Path, help="a file holding the broker password (read by meterd at start)"
    )
    init.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    init.add_argument("--yes", action="store_true", help="ask nothing: flags and defaults only")
    init.add_argument("--force", action="store_true", help="replace an existing file (kept as FILE.bak)")
    # It writes the configuration, so it reads none (an old, broken one must not stop it).
    init.set_defaults(handler=cmd_init, no_settings=True, log_level=None, log_format=None)


async def cmd_init(args: argparse.Namespace, _settings: object) -> int:
    interactive = not args.yes and sys.stdin.isatty()
    ask = _asker(interactive=interactive)
    site = args.site or ask("site name", "default")
    subnets = args.subnet or _split(ask("printer subnets or hosts, comma-separated (e.g. 10.0.4.0/24)", ""))
    v3_user = args.v3_user or (None if args.community else ask("SNMPv3 user (empty: use communities)", "") or None)
    communities = args.community or ([] if v3_user else _split(ask("SNMP communities, comma-separated", "public")))
    auth = args.auth or (ask("SNMPv3 auth, sha256:KEY", "") if v3_user else None)
    priv = args.priv or (ask("SNMPv3 privacy, aes128:KEY (empty: none)", "") if v3_user else None)
    address = (args.broker or ask("hub MQTT broker HOST[:PORT], or none", "none")).strip()
    broker, password = None, ""
    if address.lower() not in {"", "none"}:
        broker, password = _ask_broker(args, ask, address, site, interactive=interactive)
    text = render_config(
        site=site,
        subnets=subnets,
        communities=communities,
        v3=(v3_user, auth, priv),
        broker=broker,
        state_dir=args.state_dir,
    )
    _write(args.file, text, force=args.force)
    print(f"{args.file} written: check it with `meterd doctor --config {args.file}`")
    if password:
        env_file = args.file.parent / "meterd.env"
        _store_password(env_file, password)
        print(f"the broker password is in {env_file} (root only; the service and meterd commands read it)")
    return 0


@dataclass(frozen=True, slots=True)
class BrokerAnswers:
    address: str  # HOST[:PORT]
    user: str
    ca_file: Path | None = None
    password_file: Path | None = None

    @property
    def tls(self) -> bool:
        return self.ca_file is not None or _host_port(self.address)[1] == MQTT_TLS_PORT


def _ask_broker(
    args: argparse.Namespace, ask: Callable[[str, str], str], address: str, site: str, *, interactive: bool
) -> tuple[BrokerAnswers, str]:
    """The broker's login, TLS CA and (typed, never echoed) password."""
    user = args.broker_user or ask("broker login of this agent (an account of the broker's ACL)", site)
    ca = args.broker_ca or ask("CA file of the broker's TLS certificate (empty: the system's CAs)", "")
    answers = BrokerAnswers(address, user, Path(ca) if ca else None, args.broker_password_file)
    password = ""
    if interactive and answers.password_file is None:
        password = getpass.getpass("broker password (kept in meterd.env beside the config; empty: none): ")
    # systemd reads meterd.env with its own quoting and escapes: such a password would not arrive as typed.
    if password and (password != password.strip() or any(c in password for c in "\"'\\\n")):
        msg = (
            "a password with quotes, backslashes or spaces at its ends cannot go in meterd.env; "
            "put it in a file (root:meterd, 0640) and give --broker-password-file FILE"
        )
        raise MeterdError(msg)
    return answers, password


def render_config(
    *,
    site: str,
    subnets: list[str],
    communities: list[str],
    v3: tuple[str | None, str | None, str | None],
    broker: BrokerAnswers | None,
    state_dir: Path,
) -> str:
    """The configuration as TOML: only what was answered; every other key keeps its documented default."""
    user, auth, priv = v3
    lines = [
        f"# Written by `meterd init` on {datetime.now(UTC):%Y-%m-%d}. Every key: config/README.md",
        f"site = {_q(site)}",
        f"role = {_q('agent' if broker else 'standalone')}",
        f"state_dir = {_q(str(state_dir))}",
        "",
        "[snmp]",
    ]
    if communities:
        lines.append(f"communities = [{', '.join(_q(c) for c in communities)}]")
    for subnet in subnets:
        host, port = _host_port(subnet)
        lines += ["", "[[snmp.targets]]", f"host = {_q(host)}"] + ([f"port = {port}"] if port else [])
        if user:
            lines += ['version = "3"', "[snmp.targets.v3]", f"user = {_q(user)}"]
            lines += _v3_keys("auth", auth, "none") + _v3_keys("priv", priv, "none")
    if broker:
        host, port = _host_port(broker.address)
        lines += ["", "[mqtt]", f"host = {_q(host)}"] + ([f"port = {port}"] if port else [])
        lines += [f"username = {_q(broker.user)}", f"tls = {'true' if broker.tls else 'false'}"]
        lines += [f"ca_file = {_q(str(broker.ca_file))}"] if broker.ca_file else []
        lines += [f"password_file = {_q(str(broker.password_file))}"] if broker.password_file else []
    lines += ["", "[api]", "enabled = true", 'listen = "127.0.0.1:8080"', ""]
    return "\n".join(lines)


def _store_password(env_file: Path, password: str) -> None:
    """Set METERD_MQTT__PASSWORD in ``env_file`` (0600), keeping its other lines."""
    kept = []
    if env_file.exists():
        kept = [
            line
            for line in env_file.read_text(encoding="utf-8").splitlines()
            if not line.strip().startswith(f"{PASSWORD_VARIABLE}=")
        ]
    env_file.touch(mode=0o600)
    env_file.chmod(0o600)
    env_file.write_text("\n".join([*kept, f"{PASSWORD_VARIABLE}={password}"]) + "\n", encoding="utf-8")


def _v3_keys(kind: str, given: str | None, default: str) -> list[str]:
    if not given:
        return [f"{kind}_protocol = {_q(default)}"]
    protocol, _, key = given.partition(":")
    return [f"{kind}_protocol = {_q(protocol)}", f"{kind}_key = {_q(key)}"]


def _write(path: Path, text: str, *, force: bool) -> None:
    """Check the new file as meterd will read it, then put it in place (an old one kept as .bak)."""
    if path.exists() and not force:
        msg = f"{path} exists; add --force to replace it (the old one is kept as {path.name}.bak)"
        raise MeterdError(msg)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(staged).chmod(0o640)  # communities and keys are secrets: not for every user of the box
        _give_group(Path(staged), path)
        try:
            load(Path(staged), {})
        except ConfigError as err:
            raise ConfigError(str(path), err.key, err.reason) from None
        if path.exists():
            path.replace(path.with_name(path.name + ".bak"))
        Path(staged).replace(path)
    finally:
        Path(staged).unlink(missing_ok=True)


def _give_group(staged: Path, path: Path) -> None:
    """The group of the file replaced, else of its directory: the service's user reads it through that group."""
    group = (path if path.exists() else path.parent).stat().st_gid
    if staged.stat().st_gid == group:
        return
    try:
        os.chown(staged, -1, group)
    except PermissionError:
        print(
            f"meterd init: could not give {path} the group {group}; if the service cannot read it: chgrp meterd {path}",
            file=sys.stderr,
        )


def _asker(*, interactive: bool) -> Callable[[str, str], str]:
    def ask(question: str, default: str) -> str:
        if not interactive:
            return default
        answer = input(f"{question} [{default}]: ").strip()
        return answer or default

    return ask


def _host_port(text: str) -> tuple[str, int | None]:
    """HOST[:PORT] (an IPv6 address, with its many colons, is a host alone)."""
    host, _, port = text.rpartition(":") if text.count(":") == 1 else (text, "", "")
    return host, int(port) if port.isdigit() else None


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string is a JSON string
