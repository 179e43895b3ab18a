"""The store's tables. The Alembic migrations create exactly these (a test compares them)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from daemon.storage.types import DecimalText, UTCDateTime

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit key.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Device(Base):
    """A printer or copier, keyed by serial (else ``mac:…``, else ``addr:…``)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    vendor: Mapped[str | None] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(256))
    address: Mapped[str | None] = mapped_column(String(256))
    site: Mapped[str] = mapped_column(String(128))
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    # What the office calls it and where it stands, for the customer's invoice; polling never writes these.
    name: Mapped[str | None] = mapped_column(String(128))
    location: Mapped[str | None] = mapped_column(String(256))
    cost_centre: Mapped[str | None] = mapped_column(String(64))


class ReadingRow(Base):
    """One meter value of one reading: device x meter x time."""

    __tablename__ = "readings"
    __table_args__ = (
        # A re-poll or replayed message at the same instant counts once ...
        UniqueConstraint("device_id", "meter", "taken_at"),
        # ... and so does a second copy of the same reading id (reading-v1), which comes with its
        # one taken_at: the key holds it because PostgreSQL partitions the table by it (0021).
        UniqueConstraint("reading_id", "meter", "taken_at"),
        Index(None, "taken_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reading_id: Mapped[str] = mapped_column(String(64))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    meter: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(16))
    derived: Mapped[bool] = mapped_column(Boolean, default=False)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(32))
    # Where the device was and what it said it was when read: the device row holds only the latest.
    address: Mapped[str | None] = mapped_column(String(256))
    model: Mapped[str | None] = mapped_column(String(256))


class SupplyLevel(Base):
    """Supply level history (toner, ink, drum) as reported with a reading."""

    __tablename__ = "supplies"
    __table_args__ = (UniqueConstraint("device_id", "name", "taken_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reading_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(64))
    color: Mapped[str | None] = mapped_column(String(64))
    level_percent: Mapped[int | None] = mapped_column(SmallInteger)


class SupplyAlertRow(Base):
    """A replenishment due for one cartridge (a supply since it went in): open until its replacement is seen."""

    __tablename__ = "supply_alerts"
    __table_args__ = (UniqueConstraint("device_id", "name", "cartridge_since"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    name: Mapped[str] = mapped_column(String(256))
    cartridge_since: Mapped[datetime] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime)
    level_percent: Mapped[int | None] = mapped_column(SmallInteger)
    empty_on: Mapped[date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class DeviceFault(Base):
    """One episode of a device's state, from the poll that first saw it to the one that saw it gone.

    A state is an hrDeviceStatus value, an error bit or a standing alert-table condition (issue 23).

    Rows are written when a state changes, never per poll; ``alert_raised_at`` is the episode's one
    service alert.
    """

    __tablename__ = "device_faults"
    __table_args__ = (Index(None, "device_id", "ended_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(16))  # status | error | alert
    key: Mapped[str] = mapped_column(String(160))  # the same condition from poll to poll
    code: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(512))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    alert_raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeadLetter(Base):
    """Input that could not be accepted, kept whole with the reason; the same input again is a repeat."""

    __tablename__ = "dead_letters"
    # The lookup of a repeat: same source, origin and bytes (within the window, judged by the store).
    __table_args__ = (Index(None, "source", "origin", "raw_sha256"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str] = mapped_column(String(32))
    origin: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    repeats: Mapped[int] = mapped_column(Integer)  # deliveries of the same input, the first included
    last_received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OutboxItem(Base):
    """A reading an agent still has to forward; deleted when the broker acknowledges it (PUBACK)."""

    __tablename__ = "outbox"
    # Ids only ever grow: the forwarder reads after the last id it sent (SQLite would reuse them).
    __table_args__ = {"sqlite_autoincrement": True}  # noqa: RUF012 - SQLAlchemy's declarative attribute

    id: Mapped[int] = mapped_column(BigId, primary_key=True)  # the forwarding order
    reading_id: Mapped[str] = mapped_column(String(64), unique=True)
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HubConfirmation(Base):
    """Per site, what every hub sharing this store has confirmed to the site's agent (collectors/mqtt/ack.py)."""

    __tablename__ = "mqtt_confirmed"

    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(64))  # the agent's outbox
    seq: Mapped[int] = mapped_column(BigInteger)  # every entry up to here is committed; only ever grows per epoch
    hub: Mapped[str] = mapped_column(String(64))  # changed: the agent sends again what is not confirmed
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime)  # seq moved (or hub changed) last


class HubCommitted(Base):
    """An outbox entry some hub committed beyond its site's confirmed seq: waiting for the ones before it."""

    __tablename__ = "mqtt_committed"

    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    epoch: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    prev: Mapped[int] = mapped_column(BigInteger)
    committed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AnomalyRow(Base):
    """Something suspect in the readings, kept until a person decides (open -> acknowledged -> resolved)."""

    __tablename__ = "anomalies"
    __table_args__ = (UniqueConstraint("kind", "device_id", "meter", "window_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    meter: Mapped[str] = mapped_column(String(32))  # "" when the finding is about the device
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    evidence: Mapped[str] = mapped_column(Text)  # JSON, with the reading ids involved
    holds: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), index=True)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(16))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    # An episode: findings that joined it, and when a reading showed its condition over.
    occurrences: Mapped[int] = mapped_column(Integer, server_default="1")
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AnomalyReading(Base):
    """Which readings an anomaly involves: the join that holds them from usage."""

    __tablename__ = "anomaly_readings"

    anomaly_id: Mapped[int] = mapped_column(ForeignKey("anomalies.id"), primary_key=True)
    reading_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class AuditEntry(Base):
    """Who changed what, when and why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text)  # JSON
    source: Mapped[str | None] = mapped_column(String(128))  # from where: "cli", an API client's address


class StateEntry(Base):
    """Small named values jobs keep between runs (the anomaly detector's watermark)."""

    __tablename__ = "state"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class CustomerRow(Base):
    """A billed account. ``parent_id``: the head office that pays for this branch."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    legal_name: Mapped[str] = mapped_column(String(256))
    trade_name: Mapped[str | None] = mapped_column(String(256))
    country: Mapped[str] = mapped_column(String(2))
    tax_id: Mapped[str | None] = mapped_column(String(64))
    tax_scheme: Mapped[str | None] = mapped_column(String(32))
    electronic_address: Mapped[str | None] = mapped_column(String(256))
    address: Mapped[str] = mapped_column(Text)  # JSON
    contacts: Mapped[str] = mapped_column(Text)  # JSON list; exactly one is the billing contact
    payment_method: Mapped[str] = mapped_column(String(64))
    payment_terms_days: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    language: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    notes: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(Text)  # JSON list
    custom: Mapped[str] = mapped_column(Text)  # JSON object: the deployment's own fields
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SiteRow(Base):
    """A site (the agent's ``site`` name) and the customer it belongs to."""

    __tablename__ = "sites"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))


class AssignmentRow(Base):
    """Who holds a device from ``valid_from`` until ``valid_to`` (exclusive; open when null)."""

    __tablename__ = "device_assignments"
    __table_args__ = (Index(None, "device_id", "valid_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ContractRow(Base):
    """A customer's contract; ``terms`` is the validated contract with all its versions (JSON)."""

    __tablename__ = "contracts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    terms: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InvoiceSeries(Base):
    """The next number of a numbering series: taken and advanced in the finalising transaction."""

    __tablename__ = "invoice_series"

    series: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer)


class InvoiceRow(Base):
    """An invoice or credit note: draft -> finalized -> voided. Finalised rows never change but for voiding."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("series", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # invoice | credit_note
    status: Mapped[str] = mapped_column(String(16), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    # "<customer id>:<period start>" while not voided, else null: one live invoice per customer and period.
    live_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    net: Mapped[Decimal] = mapped_column(DecimalText)
    tax: Mapped[Decimal] = mapped_column(DecimalText)
    total: Mapped[Decimal] = mapped_column(DecimalText)
    series: Mapped[str | None] = mapped_column(String(32))
    number: Mapped[int | None] = mapped_column(Integer)
    number_text: Mapped[str | None] = mapped_column(String(64))
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    snapshot: Mapped[str | None] = mapped_column(Text)  # JSON: seller, customer, contracts as finalised
    credited_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finalized_by: Mapped[str | None] = mapped_column(String(128))
    hold_override: Mapped[str | None] = mapped_column(Text)
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    voided_by: Mapped[str | None] = mapped_column(String(128))
    void_reason: Mapped[str | None] = mapped_column(Text)


class InvoiceLineRow(Base):
    """One priced line with the provenance (readings and rules) that produced it."""

    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(24))
    adjustment: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(String(512))
    customer_code: Mapped[str] = mapped_column(String(64))
    contract_code: Mapped[str] = mapped_column(String(64))
    device_key: Mapped[str | None] = mapped_column(String(128))
    meter: Mapped[str | None] = mapped_column(String(32))
    pool: Mapped[str | None] = mapped_column(String(64))
    service_start: Mapped[date] = mapped_column(Date)
    service_end: Mapped[date] = mapped_column(Date)
    quantity: Mapped[Decimal] = mapped_column(DecimalText)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    tax_rate: Mapped[Decimal] = mapped_column(DecimalText)
    estimated: Mapped[bool] = mapped_column(Boolean)
    held: Mapped[bool] = mapped_column(Boolean)
    provenance: Mapped[str] = mapped_column(Text)  # JSON


class UserRow(Base):
    """A person who works in meterd; the password is an argon2 hash, the TOTP secret encrypted."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(256))
    totp_secret: Mapped[str | None] = mapped_column(Text)  # Fernet token of the base32 secret
    recovery_codes: Mapped[str] = mapped_column(Text)  # JSON list of argon2 hashes, each used once
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # a code's step is accepted once (RFC 6238 5.2)
    disabled: Mapped[bool] = mapped_column(Boolean)
    failed_logins: Mapped[int] = mapped_column(Integer)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))  # a portal user's customer


class PortalLinkRow(Base):
    """A single-use link mailed to a portal user (invitation or password reset); only its SHA-256 is kept."""

    __tablename__ = "portal_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    purpose: Mapped[str] = mapped_column(String(16))  # invite | reset
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChangeRequestRow(Base):
    """A customer's request to change their card: the fields before and after (JSON), decided by staff."""

    __tablename__ = "change_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    requested_by: Mapped[str] = mapped_column(String(64))
    before: Mapped[str] = mapped_column(Text)
    after: Mapped[str] = mapped_column(Text)
    proof_name: Mapped[str | None] = mapped_column(String(256))
    proof_type: Mapped[str | None] = mapped_column(String(128))
    proof: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), index=True)  # open | approved | rejected
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReadingPhotoRow(Base):
    """The photo of the counter a customer sent with a reading from the portal."""

    __tablename__ = "reading_photos"

    reading_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(64))
    photo: Mapped[bytes] = mapped_column(LargeBinary)
    submitted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SessionRow(Base):
    """A login session: its token is kept only as a SHA-256 (it is 32 random bytes, so no slow hash is needed)."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "session" (login) or "api" (a machine's token)
    name: Mapped[str | None] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # what the token may do: at most its user's role
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(String(128))
    # The console's idle timeout counts from here (NULL: from created_at); kept in the store across restarts.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PaymentRow(Base):
    """Money received against a finalised invoice."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(DecimalText)
    received_on: Mapped[date] = mapped_column(Date)
    method: Mapped[str] = mapped_column(String(32))
    reference: Mapped[str] = mapped_column(String(256))
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class InstalmentRow(Base):
    """One part of an invoice's instalment plan (a new plan replaces the old one)."""

    __tablename__ = "instalments"
    __table_args__ = (UniqueConstraint("invoice_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    seq: Mapped[int] = mapped_column(Integer)
    due: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(DecimalText)


class ReminderRow(Base):
    """A reminder notice, queued for whoever sends them; one per invoice and level."""

    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("invoice_id", "level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    level: Mapped[int] = mapped_column(Integer)
    overdue: Mapped[Decimal] = mapped_column(DecimalText)
    text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | sent
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CommentRow(Base):
    """A note on a customer's timeline: who wrote what, when. Append-only."""

    __tablename__ = "customer_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)


class NotificationRow(Base):
    """A message to a customer about a change to their billing data, from one audit entry; retried until sent."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[int] = mapped_column(BigId, unique=True)
    customer: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(256))
    subject: Mapped[str] = mapped_column(String(256))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | sent | failed
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MailRow(Base):
    """One outgoing e-mail, written before it is sent: the MIME bytes as they go out, then the relay's answer."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # "invoice:12", "reminder:7": queued once
    kind: Mapped[str] = mapped_column(String(32))  # invoice | reminder | notice
    invoice_id: Mapped[int | None] = mapped_column(Integer)
    reminder_id: Mapped[int | None] = mapped_column(Integer)
    recipients: Mapped[str] = mapped_column(Text)  # comma-separated addresses
    subject: Mapped[str] = mapped_column(String(512))
    message: Mapped[bytes] = mapped_column(LargeBinary)
    message_id: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued | sending | sent | failed | cancelled
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    relay_answer: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
