"""UTCDateTime's short cut on SQLite: exactly the text SQLAlchemy's own DATETIME writes; naive times still refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from daemon.storage.types import UTCDateTime, sqlite_time

DIALECT = sqlite.dialect()
SQLALCHEMY_TEXT = DateTime().dialect_impl(DIALECT).bind_processor(DIALECT)


# hypothesis takes naive bounds and adds the zones itself.
EARLIEST, LATEST = datetime(1, 1, 2), datetime(9999, 12, 30)  # noqa: DTZ001


@given(st.datetimes(min_value=EARLIEST, max_value=LATEST, timezones=st.timezones()))
def test_the_same_text_as_sqlalchemys_datetime_for_any_aware_time(moment: datetime) -> None:
    assert SQLALCHEMY_TEXT is not None
    expected = SQLALCHEMY_TEXT(moment.astimezone(UTC).replace(tzinfo=None))
    assert UTCDateTime().bind_processor(DIALECT)(moment) == expected  # type: ignore[misc]
    assert sqlite_time(moment) == expected


def test_a_repeated_time_object_and_a_new_equal_one_give_the_same_text() -> None:
    to_text = UTCDateTime().bind_processor(DIALECT)
    assert to_text is not None
    first = datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=3)))
    assert to_text(first) == to_text(first) == "2026-12-01 07:00:00.000000"
    assert to_text(datetime(2026, 12, 1, 7, 0, 0, 1, tzinfo=UTC)) == "2026-12-01 07:00:00.000001"
    assert to_text(None) is None


def test_a_naive_time_is_refused() -> None:
    to_text = UTCDateTime().bind_processor(DIALECT)
    assert to_text is not None
    with pytest.raises(ValueError, match="naive datetime"):
        to_text(datetime(2026, 12, 1, 7, 0))  # noqa: DTZ001 - the mistake under test
