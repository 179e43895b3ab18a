"""Typed settings: one TOML file validated by pydantic, with METERD_* environment overrides.

pydantic-settings was considered and not used: its TOML and environment sources
merge before validation, so a bad value can no longer be traced to the file or
the variable it came from, and every error here must name both the source and
the key path (``meterd.toml: snmp.targets[3].port: must be 1-65535``).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from billing.anomalies import DetectorSettings
from billing.customers import CardRules, Customer, CustomField, normalise_tax_id
from daemon.kernel.errors import ConfigError
from daemon.security.roles import Role

ENV_PREFIX: Final = "METERD_"
ENV_NESTING: Final = "__"
CONFIG_ENV_VAR: Final = "METERD_CONFIG"
# Variables read by the CLI itself, never settings keys.
_CLI_ENV_VARS: Final = frozenset({CONFIG_ENV_VAR})
DEFAULT_CONFIG_PATHS: Final = (Path("/etc/meterd/meterd.toml"), Path("meterd.toml"))
DEFAULT_STATE_DIR: Final = Path("/var/lib/meterd")
# A validator's error context key naming the item it is about, below the field (snmp.targets[2], not snmp.targets).
AT: Final = "at"
# The [anomalies] keys a site or a contract may set for its own devices.
DETECTOR_KNOBS: Final = frozenset(DetectorSettings.__dataclass_fields__)


def _check_port(port: int) -> int:
    if not 1 <= port <= 65535:  # noqa: PLR2004 - the TCP/UDP port range
        msg = "must be 1-65535"
        raise ValueError(msg)
    return port


def _check_listen(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        msg = "must be HOST:PORT, e.g. 127.0.0.1:9464"
        raise ValueError(msg)
    if int(port) != 0:  # 0 asks the kernel for a free port (tests, several instances on one box)
        _check_port(int(port))
    return listen


def _check_site(site: str) -> str:
    # The site is a path segment of MQTT topics and a label value: keep it to a safe alphabet.
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")
    if not site or site[0] in "-_." or not set(site) <= allowed:
        msg = "must be lower-case letters, digits, '-', '_' or '.', starting with a letter or digit"
        raise ValueError(msg)
    return site


def _check_host(host: str) -> str:
    if not host.strip():
        msg = "must not be empty"
        raise ValueError(msg)
    if "/" in host:
        return _check_network(host)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if any(c.isspace() for c in host):
            msg = f"{host!r} is not an IP address, CIDR range or host name"
            raise ValueError(msg) from None
    return host


MAX_RANGE_ADDRESSES: Final = 65_536


def _check_network(text: str) -> str:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        msg = f"{text!r} is not a CIDR range (e.g. 10.0.4.0/24)"
        raise ValueError(msg) from None
    if network.num_addresses > MAX_RANGE_ADDRESSES:
        msg = f"{text!r} spans {network.num_addresses} addresses; split it (at most a /16)"
        raise ValueError(msg)
    return text


def canonical_host(host: str) -> str:
    """One spelling per address or range: ``::1`` and ``0::1``, ``Printer-1`` and ``printer-1`` are the same."""
    try:
        return str(ipaddress.ip_network(host, strict=False) if "/" in host else ipaddress.ip_address(host))
    except ValueError:
        return host.lower().rstrip(".")


def _check_host_or_network(text: str) -> str:
    if "/" in text:
        return _check_network(text)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        msg = f"{text!r} is not an IP address or CIDR range"
        raise ValueError(msg) from None
    return text


Port = Annotated[int, AfterValidator(_check_port)]
Listen = Annotated[str, AfterValidator(_check_listen)]
Site = Annotated[str, AfterValidator(_check_site)]
Host = Annotated[str, AfterValidator(_check_host)]
AddressOrRange = Annotated[str, AfterValidator(_check_host_or_network)]


class _Section(BaseModel):
    """Every settings section forbids unknown keys: a typo must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(_Section):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; unset means SQLite at STATE_DIR/meterd.db.",
    )
    busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    raw_retention_months: int | None = Field(
        default=None,
        ge=3,
        le=1200,
        description="unset: keep every reading; else older ones keep only each day's first and last value",
    )


class _Listening(_Section):
    listen: Listen

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


class MetricsSettings(_Listening):
    enabled: bool = True
    listen: Listen = "127.0.0.1:9464"


def _money_roles() -> list[Role]:
    return ["admin", "billing"]


class ApiSettings(_Listening):
    """The HTTP API (/api/v1): where, and how logins work; what each role may do is daemon/security/roles.py."""

    enabled: bool = False
    listen: Listen = "127.0.0.1:8080"
    session_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    token_max_days: int = Field(default=365, ge=1, le=3650)
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    login_attempts_at_once: int = Field(default=1, ge=1, le=10, description="per account; the others wait their turn")
    max_failed_logins_per_address: int = Field(
        default=20, ge=1, le=10_000, description="failed logins from one client address per lockout_minutes"
    )
    expensive_per_minute: int = Field(
        default=10, ge=1, le=10_000, description="usage reports made anew per user and minute (kept ones are free)"
    )
    max_failed_logins_total: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="failed logins of all accounts together per lockout_minutes; past it, logins are slowed down",
    )
    logins_per_second_under_spray: float = Field(
        default=2.0, gt=0, le=1000, description="logins judged per second, one at a time, past max_failed_logins_total"
    )
    login_wait_max_s: float = Field(
        default=30.0, gt=0, le=600, description="the longest a login waits for its turn while slowed down"
    )
    totp_required_for: list[Role] = Field(default_factory=_money_roles)
    secret_key_file: Path | None = Field(
        default=None, description="key that encrypts stored secrets (TOTP); unset: STATE_DIR/secret.key, made once"
    )


class ConsoleSettings(_Section):
    """The web console served beside the API (``/``)."""

    session_idle_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="a console session nobody used this long ends (kept across restarts)"
    )


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class SchedulerSettings(_Section):
    poll_interval_s: int = Field(default=900, ge=10, le=86_400)
    maintenance_interval_s: int = Field(default=3600, ge=60, le=86_400)
    misfire_grace_s: int = Field(default=60, ge=1)
    shutdown_grace_s: float = Field(default=10.0, ge=0, le=600)


class SnmpV3User(_Section):
    """An SNMPv3 (USM) user; authPriv unless the protocols say otherwise."""

    user: str = Field(min_length=1)
    auth_protocol: Literal["none", "sha", "sha256"] = "sha256"
    auth_key: SecretStr | None = None
    priv_protocol: Literal["none", "aes128", "aes256"] = "aes128"
    priv_key: SecretStr | None = None
    auth_key_file: Path | None = Field(default=None, description="the auth key, read from this file instead")
    priv_key_file: Path | None = Field(default=None, description="the privacy key, read from this file instead")
    context: str = ""

    @model_validator(mode="before")
    @classmethod
    def _keys_from_files(cls, data: Any) -> Any:  # noqa: ANN401 - the raw table
        if isinstance(data, dict):
            for name in ("auth_key", "priv_key"):
                if data.get(f"{name}_file"):
                    lines = _secret_lines(Path(data[f"{name}_file"]))
                    data = data | {name: lines[0] if lines else None}
        return data

    @model_validator(mode="after")
    def _keys_match_the_level(self) -> SnmpV3User:
        for protocol, key, name in (
            (self.auth_protocol, self.auth_key, "auth_key"),
            (self.priv_protocol, self.priv_key, "priv_key"),
        ):
            if protocol != "none" and (key is None or len(key.get_secret_value()) < MIN_V3_KEY):
                msg = f"{name} of at least {MIN_V3_KEY} characters is needed with this protocol"
                raise ValueError(msg)
        if self.priv_protocol != "none" and self.auth_protocol == "none":
            msg = "privacy needs authentication: set auth_protocol"
            raise ValueError(msg)
        return self


MIN_V3_KEY: Final = 8  # RFC 3414: shorter passphrases are refused by agents


class SnmpTarget(_Section):
    host: Host
    port: Port = 161
    version: Literal["1", "2c", "3"] = "2c"
    communities: list[SecretStr] | None = Field(
        default=None,
        description="Tried in order; unset means snmp.communities.",
    )
    exclude: list[AddressOrRange] = Field(default_factory=list, description="left out of a CIDR range")
    v3: SnmpV3User | None = None

    @model_validator(mode="after")
    def _v3_has_a_user(self) -> SnmpTarget:
        if self.version == "3" and self.v3 is None:
            msg = 'version "3" needs a [snmp.targets.v3] table with at least `user`'
            raise ValueError(msg)
        return self


def _secret_lines(path: Path) -> list[str]:
    """A secrets file's non-empty lines (ValueError naming the file when it cannot be read)."""
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except OSError as err:
        msg = f"cannot read {path}: {err.strerror}; it must be readable by the meterd user"
        raise ValueError(msg) from None


class TrapSettings(_Section):
    """Printer-MIB alert traps (printerV2Alert, printerV1Alert): a trap from a polled device polls it at once."""

    enabled: bool = False
    host: str = Field(default="0.0.0.0", description="address to listen on")  # noqa: S104 - printers send from the LAN
    port: int = Field(default=162, ge=1, le=65_535, description="UDP port (162 needs root or CAP_NET_BIND_SERVICE)")
    communities: list[SecretStr] = Field(
        default_factory=list, description="communities a trap must carry; none set: the polling communities"
    )


class SnmpSettings(_Section):
    communities: list[SecretStr] = Field(default_factory=lambda: [SecretStr("public")])
    communities_file: Path | None = Field(
        default=None, description="one community per line, instead of communities (keeps them out of this file)"
    )
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)
    max_concurrency: int = Field(default=64, ge=1, le=4096)
    # A device that keeps timing out (asleep, unplugged) is tried after 1, 2, 4 … rounds, up to this.
    max_backoff_s: int = Field(default=3600, ge=0, le=86_400)
    targets: list[SnmpTarget] = Field(default_factory=list)
    traps: TrapSettings = Field(default_factory=TrapSettings)

    @field_validator("targets")
    @classmethod
    def _one_entry_per_address(cls, targets: list[SnmpTarget]) -> list[SnmpTarget]:
        # Two entries for one host:port would collapse into one when polled, the second's settings silently lost.
        first: dict[tuple[str, int], int] = {}
        for index, target in enumerate(targets):
            seen = first.setdefault((canonical_host(target.host), target.port), index)
            if seen != index:
                msg = (
                    f"same host and port ({target.host}:{target.port}) as snmp.targets[{seen}]; merge the two "
                    "entries (communities takes several values)"
                )
                raise PydanticCustomError("duplicate", msg, {AT: [index]})
        return targets

    @model_validator(mode="before")
    @classmethod
    def _communities_from_file(cls, data: Any) -> Any:  # noqa: ANN401 - the raw table
        if isinstance(data, dict) and data.get("communities_file"):
            found = _secret_lines(Path(data["communities_file"]))
            if not found:
                msg = f"communities_file: {data['communities_file']} holds no community"
                raise ValueError(msg)
            data = data | {"communities": found}
        return data


class MqttSettings(_Section):
    """The broker an agent forwards to and a hub ingests from (reading-v1 over MQTT 5, QoS 1)."""

    host: Host = "127.0.0.1"
    port: Port = 1883
    client_id: str | None = Field(default=None, description="unset: meterd-ROLE-SITE-HOSTNAME")
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(default=7 * 86_400, ge=0, le=2**32 - 1)
    shared_group: str | None = Field(default=None, description="hubs sharing the load: $share/GROUP/…")
    shared_session_expiry_s: int = Field(
        default=60,
        ge=0,
        le=2**32 - 1,
        description="hub in a shared_group: how long the broker keeps giving a hub that went away its share",
    )
    sites: list[str] = Field(default_factory=lambda: ["+"], description="hub: sites to ingest; + is all")
    max_payload_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    batch_max: int = Field(default=500, ge=1, le=100_000)
    batch_wait_ms: int = Field(default=200, ge=0, le=60_000)
    max_inflight: int = Field(default=1000, ge=1, le=65_000)
    replay_rate: float = Field(default=500.0, gt=0, le=1_000_000)
    outbox_max: int = Field(default=2_000_000, ge=1000)
    confirmed_by: Literal["hub", "broker"] = Field(
        default="hub", description="agent: an outbox row leaves when the hub has committed it, or at the PUBACK"
    )
    resend_after_s: float = Field(
        default=60.0,
        ge=1,
        le=86_400,
        description="hub: a site's confirmation stuck this long on a missing reading asks its agent to send again",
    )
    reconnect_min_s: float = Field(default=1.0, gt=0, le=600)
    reconnect_max_s: float = Field(default=60.0, gt=0, le=3600)

    def password_value(self) -> str | None:
        """The password: from `password` (or METERD_MQTT__PASSWORD), else read from `password_file`."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class AnomalySettings(_Section):
    """The detectors' knobs (see billing.anomalies.DetectorSettings) and where to tell someone."""

    enabled: bool = True
    interval_s: int = Field(default=900, ge=10, le=86_400)
    max_pages_per_minute: float = Field(default=500.0, gt=0)
    spike_window_days: int = Field(default=28, ge=7, le=365)
    spike_min_history_days: int = Field(default=14, ge=3, le=365)
    spike_mads: float = Field(default=8.0, gt=0)
    spike_min_ratio: float = Field(default=3.0, ge=1)
    spike_min_pages: int = Field(default=200, ge=0)
    spike_history_days: int = Field(default=35, ge=2, le=365)
    spike_return: float = Field(default=0.5, gt=0, lt=1)
    stale_intervals: int = Field(default=3, ge=1, le=1000)
    stale_margin: float = Field(default=1.1, ge=1)
    stale_close_days: float = Field(default=3.0, ge=0, le=28)
    stale_close_hours: float = Field(default=72.0, gt=0, le=24 * 31)
    frozen_days: int = Field(default=14, ge=2, le=365)
    inconsistent_tolerance: float = Field(default=0.01, ge=0, le=1)
    inconsistent_min_pages: int = Field(default=5, ge=0)
    inconsistent_interval_hours: float = Field(default=24.0, gt=0, le=24 * 31)
    uncounted_supply_drop: int = Field(default=5, ge=1, le=100)
    uncounted_min_hours: float = Field(default=6.0, ge=0, le=24 * 365)
    allowance_margin: float = Field(default=0.10, ge=0, le=10)
    allowance_rate_days: int = Field(default=14, ge=1, le=365)
    allowance_min_days: float = Field(default=3.0, gt=0, le=365)
    allowance_interval_h: int = Field(default=24, ge=1, le=744, description="how often the forecast runs")
    notify_url: str | None = Field(default=None, description="POST each new anomaly as JSON here")
    notify_command: list[str] | None = Field(default=None, description="run with each new anomaly as JSON on stdin")
    notify_attempts: int = Field(default=3, ge=1, le=20)
    sites: dict[Site, dict[str, float | int]] = Field(
        default_factory=dict, description="per site: detector knobs that differ from the ones above"
    )

    @field_validator("sites")
    @classmethod
    def _site_knobs_are_valid(
        cls, sites: dict[str, dict[str, float | int]], info: ValidationInfo
    ) -> dict[str, dict[str, float | int]]:
        for site, knobs in sites.items():
            _tune(info.data, knobs, where=site)
        return sites

    def tuned(self, knobs: Mapping[str, float | int], *, where: str) -> AnomalySettings:
        """These settings with ``knobs`` (detector knobs only) in their place.

        Raises:
            ValueError: naming ``where``, the knob and the rule it breaks.
        """
        return _tune(self.model_dump(exclude={"sites"}), knobs, where=where) if knobs else self


def _tune(base: Mapping[str, Any], knobs: Mapping[str, float | int], *, where: str) -> AnomalySettings:
    unknown = sorted(set(knobs) - DETECTOR_KNOBS)
    if unknown:
        msg = f"{where}.{unknown[0]}: not a detector knob; the keys of [anomalies] from max_pages_per_minute on are"
        raise ValueError(msg)
    try:
        return AnomalySettings.model_validate({k: v for k, v in base.items() if k != "sites"} | dict(knobs))
    except ValidationError as err:
        first = err.errors()[0]
        msg = f"{where}.{_format_location(first['loc'])}: {_explain(first)}"
        raise ValueError(msg) from None


class SellerSettings(_Section):
    """The dealer as it appears on invoices (EN 16931 seller): name, address, tax number, bank."""

    name: str = "Your Dealer Ltd"
    street: str = "1 Example Street"
    city: str = "Example City"
    postal_code: str = ""
    country: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    tax_scheme: str = Field(default="vat", description="as a customer card's: vat, … or 'other' (not validated)")
    tax_id: str | None = Field(default=None, description="VAT number with its country prefix")
    electronic_address: str | None = Field(default=None, pattern=r"^[0-9A-Z]{2,4}:\S+$")
    email: str = "billing@example.com"
    phone: str = ""
    iban: str | None = None
    bic: str | None = None

    @field_validator("tax_id")
    @classmethod
    def _valid_tax_id(cls, tax_id: str | None, info: ValidationInfo) -> str | None:
        # Checked as customers' numbers are: the seller's is on every invoice, and a typo there voids them all.
        if tax_id is None or "country" not in info.data:
            return tax_id
        return normalise_tax_id(tax_id, info.data["country"], info.data.get("tax_scheme", "vat"))


class BillingSettings(_Section):
    """How usage becomes invoices; see billing.reads.ReadRules and billing.invoicing."""

    seller: SellerSettings = Field(default_factory=SellerSettings)
    invoice_series: str = Field(default="INV", pattern=r"^[A-Z0-9-]{1,16}$")
    credit_note_series: str = Field(default="CN", pattern=r"^[A-Z0-9-]{1,16}$")
    number_digits: int = Field(default=6, ge=1, le=12)
    read_window_days: int = Field(default=3, ge=0, le=31)
    estimate_lookback_days: int = Field(default=90, ge=7, le=730)
    adjust_months: int = Field(default=3, ge=0, le=24)
    issue_date_window_days: int = Field(
        default=31, ge=0, le=3650, description="how far from today an invoice's issue date may be set"
    )


class BackupSettings(_Section):
    """`meterd backup` and the daemon's backup job: where, how many, how often."""

    dir: Path | None = Field(default=None, description="unset: STATE_DIR/backups")
    keep: int = Field(default=7, ge=1, le=10_000)
    interval_h: float = Field(
        default=0, ge=0, le=24 * 366, description="0: no backup job; run `meterd backup` yourself"
    )
    key_file: Path | None = Field(
        default=None,
        description="key that encrypts backups; unset: STATE_DIR/backup.key, made once (keep a copy apart)",
    )


class CustomFieldSettings(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    type: Literal["text", "number", "date", "choice"] = "text"
    choices: list[str] = Field(default_factory=list, description="with type = choice: the allowed values")

    @model_validator(mode="after")
    def _choices_go_with_choice(self) -> CustomFieldSettings:
        if (self.type == "choice") != bool(self.choices):
            msg = "choices: give them for type = choice, and only then"
            raise ValueError(msg)
        return self


class CustomerSettings(_Section):
    """What a customer card must hold here, and the fields this deployment adds to it."""

    required: list[str] = Field(default_factory=list, description="card fields, or custom.NAME, that must be filled")
    fields: list[CustomFieldSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _required_fields_exist(self) -> CustomerSettings:
        custom = {f"custom.{field.name}" for field in self.fields}
        for name in self.required:
            if name not in custom and name not in Customer.model_fields:
                msg = f"required: {name!r} is neither a card field nor a custom field defined below"
                raise ValueError(msg)
        return self

    def rules(self) -> CardRules:
        return CardRules(
            tuple(self.required), tuple(CustomField(f.name, f.type, tuple(f.choices)) for f in self.fields)
        )


def _reminder_days() -> list[int]:
    return [7, 21, 35]


class ReceivablesSettings(_Section):
    """Overdue invoices: when reminders are queued."""

    reminder_days: list[Annotated[int, Field(ge=1, le=3650)]] = Field(default_factory=_reminder_days, min_length=1)
    reminders_interval_h: float = Field(default=24, ge=0, le=24 * 31, description="0: only `meterd receivables remind`")


# The [notify] keys that became [mail] keys (issue 22): still read, with a warning naming the new key.
_NOTIFY_SMTP_KEYS: Final = {
    "smtp_host": "host",
    "smtp_port": "port",
    "smtp_user": "user",
    "smtp_password": "password",
    "smtp_password_file": "password_file",
}


class ConfigDeprecationWarning(FutureWarning):
    """A settings key that still works under its old name; FutureWarning so Python shows it to operators."""


class MailSettings(_Section):
    """The dealer's mail relay: invoices, reminders and notices go out through it, from the store's outbox."""

    host: str | None = Field(default=None, description="unset (and no dry_run_dir): no mail is sent")
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="tls: implicit TLS (usually port 465)"
    )
    user: str | None = None
    password: SecretStr | None = Field(default=None, description="better: METERD_MAIL__PASSWORD or password_file")
    password_file: Path | None = None
    from_address: str | None = Field(default=None, description="unset: billing.seller.email")
    dry_run_dir: Path | None = Field(default=None, description="write each message as a .eml file here, send nothing")
    invoices: bool = Field(default=True, description="mail each finalised invoice to the billing contact")
    reminders: bool = Field(default=True, description="mail each queued reminder and mark it sent")
    attempts: int = Field(default=8, ge=1, le=50)
    interval_s: int = Field(default=60, ge=5, le=86_400, description="the job's interval; a retry waits x 2^attempts")

    @property
    def enabled(self) -> bool:
        return bool(self.host or self.dry_run_dir)

    def password_value(self) -> str:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return ""


class NotifySettings(_Section):
    """Telling customers when their billing data changes: by webhook or e-mail ([mail]), queued and retried."""

    customer_changes: bool = False
    webhook_url: str | None = Field(default=None, description="POST each notice as JSON here")
    attempts: int = Field(default=6, ge=1, le=50)
    interval_s: int = Field(default=300, ge=10, le=86_400)


def _fold_notify_smtp(data: Any) -> Any:  # noqa: ANN401 - the raw settings table
    """Move the old ``notify.smtp_*`` keys to ``[mail]``, warning once per key; an explicit [mail] key wins."""
    if not isinstance(data, dict) or not isinstance(data.get("notify"), dict):
        return data
    notify, mail = dict(data["notify"]), dict(data.get("mail") or {})
    renamed = []
    for old, new in _NOTIFY_SMTP_KEYS.items():
        if old in notify:
            renamed.append(f"notify.{old} -> mail.{new}")
            mail.setdefault(new, notify.pop(old))
    if "smtp_starttls" in notify:
        renamed.append("notify.smtp_starttls -> mail.security")
        mail.setdefault("security", "starttls" if notify.pop("smtp_starttls") else "none")
    if renamed:
        warnings.warn(f"deprecated settings, still read: {', '.join(renamed)}", ConfigDeprecationWarning, stacklevel=2)
    return {**data, "notify": notify, "mail": mail}


class PortalSettings(_Section):
    """The customers' portal at /portal: how its links and sessions behave, what a change request must prove."""

    base_url: str = Field(
        default="http://localhost:8080", description="the address customers reach meterd at: links in mails start here"
    )
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60, description="a portal session ends unused")
    link_hours: int = Field(default=72, ge=1, le=30 * 24, description="an invitation or reset link works this long")
    proof_fields: list[str] = Field(
        default_factory=lambda: ["tax_id", "payment_method"],
        description="fields a change request must attach a document for (tax number, how the customer pays)",
    )
    photo_max_bytes: int = Field(default=5 * 1024 * 1024, ge=0, le=50 * 1024 * 1024)


class SuppliesSettings(_Section):
    """Replenishment: when a cartridge is due, and the nominal yields its pages are judged by."""

    enabled: bool = True
    interval_s: int = Field(default=3600, ge=60, le=86_400, description="how often forecasts and alerts are refreshed")
    lead_days: int = Field(default=10, ge=0, le=120, description="due when the forecast empty date is this close")
    low_percent: int = Field(default=10, ge=0, le=100, description="due at or below this level, forecast or not")
    history_days: int = Field(default=180, ge=28, le=730, description="level and page history the forecasts read")
    short_yield: float = Field(
        default=0.6, gt=0, le=1, description="a cartridge below this share of nominal is flagged"
    )
    yields: dict[str, int] = Field(
        default_factory=dict, description="nominal pages per part number (as in the supply's name), e.g. CF217A = 1600"
    )
    sites: dict[Site, dict[Literal["lead_days", "low_percent"], Annotated[int, Field(ge=0, le=120)]]] = Field(
        default_factory=dict, description="per site: lead_days and low_percent that differ from the ones above"
    )
    desk_mail_to: list[str] = Field(
        default_factory=list,
        description="the supplies desk's addresses: one mail (through the mail outbox) per run that raises alerts",
    )
    desk_webhook_url: str = Field(
        default="", max_length=2048, description="POST one JSON document per run that raises alerts; empty: none"
    )


_SERVICE_FAULTS = [
    "jammed",
    "doorOpen",
    "serviceRequested",
    "offline",
    "inputTrayMissing",
    "outputTrayMissing",
    "markerSupplyMissing",
    "outputFull",
    "overduePreventMaint",
    "down",
    "jam",
    "coverOpen",
    "interlockOpen",
    "subunitUnrecoverableFailure",
    "subunitMotorFailure",
    "markerFuserOverTemperature",
]


class ServiceSettings(_Section):
    """Faults read at each poll (status, error bits, alert table) and when one becomes a service alert."""

    enabled: bool = True
    alert_after_minutes: int = Field(
        default=15, ge=0, le=10_080, description="a service fault open this long raises one alert for its episode"
    )
    alert_on: list[str] = Field(
        default_factory=lambda: list(_SERVICE_FAULTS),
        description="faults that need a technician: error bits (jammed …), hrDeviceStatus 'down', alert codes (jam …);"
        " the rest (noPaper, lowToner …) are informational",
    )


class Settings(_Section):
    site: Site = "default"
    role: Literal["standalone", "agent", "hub"] = "standalone"
    state_dir: Path = DEFAULT_STATE_DIR
    storage: StorageSettings = Field(default_factory=StorageSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    snmp: SnmpSettings = Field(default_factory=SnmpSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    anomalies: AnomalySettings = Field(default_factory=AnomalySettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)
    receivables: ReceivablesSettings = Field(default_factory=ReceivablesSettings)
    customers: CustomerSettings = Field(default_factory=CustomerSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    supplies: SuppliesSettings = Field(default_factory=SuppliesSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)

    _fold_old_mail_keys = model_validator(mode="before")(_fold_notify_smtp)

    @model_validator(mode="after")
    def _notices_can_be_sent(self) -> Settings:
        if self.notify.customer_changes and not (self.notify.webhook_url or self.mail.enabled):
            msg = "notify.customer_changes: needs notify.webhook_url or a [mail] host (or dry_run_dir) to send through"
            raise ValueError(msg)
        return self

    @property
    def mail_from(self) -> str:
        return self.mail.from_address or self.billing.seller.email

    @property
    def backup_dir(self) -> Path:
        return self.backup.dir or self.state_dir / "backups"

    @property
    def backup_key_file(self) -> Path:
        return self.backup.key_file or self.state_dir / "backup.key"

    @property
    def database_url(self) -> str:
        if self.storage.url:
            return self.storage.url
        return f"sqlite:///{self.state_dir.absolute() / 'meterd.db'}"


def resolve_config_path(explicit: str | None, environ: Mapping[str, str]) -> Path | None:
    """Pick the configuration file: --config, then $METERD_CONFIG, then the default paths.

    Returns:
        The path to load, or None when no file was named and no default path exists.
    """
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV_VAR):
        return Path(environ[CONFIG_ENV_VAR])
    return next((p for p in DEFAULT_CONFIG_PATHS if p.is_file()), None)


def load(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Read, overlay and validate the settings.

    Args:
        path: the TOML file; None means defaults only (allowed when the caller gave --db).
        environ: environment to read METERD_* overrides from (defaults to os.environ).
        overrides: command-line values, as nested dicts, applied last.

    Raises:
        ConfigError: naming the file (or variable), the key path and the reason; of every problem found.
    """
    environ = os.environ if environ is None else environ
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = _read_toml(path) if path else {}
    env_sources = _overlay_environment(data, environ)
    if overrides:
        _deep_merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        # Every problem at once, each with its own file (or variable) and key: fixing one to meet the next is slow.
        found = []
        for error in err.errors():
            loc = (*error["loc"], *(error.get("ctx") or {}).get(AT, []))
            origin = env_sources.get(_path_prefix(loc, env_sources), source)
            found.append(ConfigError(origin, _format_location(loc), _explain(error)))
        raise ConfigError.of(found) from None


def environment_beside(config: Path) -> dict[str, str]:
    """The METERD_* variables of ``meterd.env`` beside the configuration file, as the unit reads them.

    systemd gives the service that file (EnvironmentFile=); reading it here too lets `meterd
    doctor` or `meterd db upgrade`, run by root from a shell, see the broker password and
    store URL the service sees. Unreadable (the service's own user, a technician without
    root) or absent: nothing, as the service already has them from systemd.
    """
    try:
        text = (config.parent / "meterd.env").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        name, sep, value = line.partition("=")
        if not sep or line.startswith(("#", ";")) or not name.strip().startswith(ENV_PREFIX):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":  # noqa: PLR2004 - a pair of quotes
            value = value[1:-1]
        found[name.strip()] = value
    return found


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        reason = "file not found; pass --config FILE or copy config/meterd.example.toml there"
        raise ConfigError(str(path), "", reason) from None
    except PermissionError:
        raise ConfigError(str(path), "", "permission denied; check the file's owner and mode") from None
    except IsADirectoryError:
        raise ConfigError(str(path), "", "is a directory, not a TOML file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), "", f"not valid TOML ({err})") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None


def _overlay_environment(data: dict[str, Any], environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Apply METERD_SECTION__KEY=value variables onto the parsed file; return path → variable."""
    sources: dict[tuple[str, ...], str] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in _CLI_ENV_VARS:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split(ENV_NESTING))
        if not all(path):
            raise ConfigError(f"${name}", "", "malformed variable name; use METERD_SECTION__KEY")
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"${name}", ".".join(path), "overrides a value that is not a section")
            node = child
        node[path[-1]] = value
        sources[path] = f"${name}"
    return sources


def _deep_merge(target: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


def _path_prefix(loc: Sequence[int | str], sources: Mapping[tuple[str, ...], str]) -> tuple[str, ...]:
    parts = tuple(str(p) for p in loc)
    return next((p for p in sources if parts[: len(p)] == p), ())


def _format_location(loc: Sequence[int | str]) -> str:
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


_FRIENDLY: Final[Mapping[str, str]] = {
    "extra_forbidden": "unknown key; check the spelling against config/README.md",
    "missing": "required key is missing",
}


def _explain(error: Mapping[str, Any]) -> str:
    if error["type"] in _FRIENDLY:
        return _FRIENDLY[error["type"]]
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
