"""A device's daily history and its charts: the last value of each day, pages since the day before, breaks marked
where an episode or an unexplained fall is, and SVG that escapes what it shows."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from daemon.services.device_history import DROP, DayPoint, Mark, breaks, daily
from daemon.storage.anomalies import AnomalyRecord
from daemon.storage.repository import MeterPoint
from daemon.web import charts

START = datetime(2026, 11, 1, 6, tzinfo=UTC)


def _points(values: list[int], *, per_day: int = 1) -> list[MeterPoint]:
    step = timedelta(hours=24 // per_day)
    return [MeterPoint("mono", START + n * step, v, "snmp", f"r{n}") for n, v in enumerate(values)]


def _episode(kind: str, day: date) -> AnomalyRecord:
    at = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    return AnomalyRecord(
        7, kind, "warning", "KY1", "mono", at, at, {}, True, "resolved", at, at, "reset", "tech", "board", 1, None
    )


def test_a_day_is_its_last_value_and_its_pages_are_since_the_day_before() -> None:
    days = daily(_points([100, 130, 170, 220], per_day=2))  # two readings a day
    assert days == [DayPoint(date(2026, 11, 1), 130, None), DayPoint(date(2026, 11, 2), 220, 90)]


def test_a_fall_has_no_pages_and_is_marked_unless_an_episode_explains_it() -> None:
    days = daily(_points([1000, 1100, 50, 80]))
    assert [d.pages for d in days] == [None, 100, None, 30]
    assert breaks(days, []) == [Mark(date(2026, 11, 3), DROP, None, None)]
    explained = breaks(days, [_episode("reset", date(2026, 11, 3))])
    assert explained == [Mark(date(2026, 11, 3), "reset", 7, "reset")]
    outside = breaks(days, [_episode("wrap", date(2026, 12, 20))])  # not in the days shown
    assert [m.kind for m in outside] == [DROP]


def test_a_chart_escapes_its_words_and_draws_every_marker() -> None:
    points = [charts.Point(date(2026, 11, d), 100 * d) for d in range(1, 6)]
    drawn = charts.line_chart("c", "<b>mono</b>", "summary", points, [charts.Marker(date(2026, 11, 3), "reset #7")])
    assert "<b>" not in drawn
    assert "&lt;b&gt;mono&lt;/b&gt;" in drawn
    assert drawn.count('class="marker"') == 1
    assert "reset #7" in drawn
    bars = charts.bar_chart(
        "p", "pages", "summary", [charts.Point(date(2026, 11, 1), 20), charts.Point(date(2026, 11, 2), None)]
    )
    assert bars.count('class="bar"') == 1  # a day without a figure has no bar
    assert ">20<" in bars  # the top of the scale is the largest figure, from zero
