"""Column types that enforce the store's invariants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; a naive datetime is refused as a bug.

    SQLite has no zone-aware type, so values are stored there as naive UTC text
    (which also sorts correctly); PostgreSQL gets ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = aware_utc(value)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], object] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # Straight to the text SQLite's DATETIME stores (same format), in one step: the generic
        # path (this check, then SQLAlchemy's field-by-field formatting) was a fifth of a hub's
        # commit time. A batch repeats the same time object row after row (received_at, and
        # taken_at for each meter of a reading): the last one is remembered, by identity.
        last: tuple[datetime | None, str | None] = (None, None)

        def to_text(value: datetime | None) -> str | None:
            nonlocal last
            seen, text = last
            if value is seen:
                return text
            text = None if value is None else sqlite_time(value)
            last = (value, text)
            return text

        return to_text

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_time(moment: datetime) -> str:
    """How a time is stored on SQLite: naive UTC text with microseconds, which sorts as time does."""
    return aware_utc(moment).replace(tzinfo=None).isoformat(" ", "microseconds")


def aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        msg = f"naive datetime {value.isoformat()} given to the store; times must be aware"
        raise ValueError(msg)
    return value.astimezone(UTC)


class DecimalText(TypeDecorator[Decimal]):
    """Exact decimals on every backend: SQLite has no decimal type (NUMERIC there is a float)."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:  # noqa: ARG002
        if value is None:
            return None
        if not isinstance(value, Decimal):
            msg = f"{value!r} given to a decimal column; money and quantities must be Decimal"
            raise TypeError(msg)
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:  # noqa: ARG002
        return None if value is None else Decimal(value)
