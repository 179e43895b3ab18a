"""Supply forecasts: cartridges and replacements, days to empty, replenishment due, yield (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.supplies import (
    Forecast,
    Level,
    PageCounter,
    cartridges,
    forecast,
    replacements,
    replenishment_due,
    yields,
)

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
PAGES_PER_DAY = 100
PERCENT_PER_PAGE = 0.05  # 2,000 pages, 20 days a cartridge


def _hours(days: int) -> list[datetime]:
    return [T0 + timedelta(hours=h) for h in range(days * 24)]


def _counter(days: int) -> PageCounter:
    return PageCounter([(at, round(PAGES_PER_DAY * (at - T0).total_seconds() / 86400)) for at in _hours(days)])


def _levels(days: int, *, start: float = 100.0, step: int = 10) -> list[Level]:
    """Hourly levels of cartridges replaced at empty, reported in ``step`` % (rounded)."""
    out, level = [], start
    for at in _hours(days):
        level -= PERCENT_PER_PAGE * PAGES_PER_DAY / 24
        if level <= 0:
            level = 100.0
        out.append(Level(at, round(level / step) * step))
    return out


def test_a_level_that_jumps_up_is_a_new_cartridge_dated_by_the_reading_that_saw_it() -> None:
    day = timedelta(days=1)
    levels = [
        Level(T0, 30),
        Level(T0 + day, 20),
        Level(T0 + 2 * day, None),
        Level(T0 + 3 * day, 21),
        Level(T0 + 4 * day, 100),
        Level(T0 + 5 * day, 90),
    ]
    [seen] = replacements(levels)
    assert (seen.installed_at, seen.level_before) == (T0 + timedelta(days=4), 21)
    assert [len(c.levels) for c in cartridges(levels)] == [4, 2]  # a one-point rise and an unknown are no cartridge


def test_days_to_empty_from_ten_percent_steps_is_right_to_the_day() -> None:
    now = T0 + timedelta(days=36, hours=7)  # the second cartridge (day 20 on) is at 20 % true: 4 days left
    history = cartridges([level for level in _levels(60) if level.at <= now])
    result = forecast(history[-1], _counter(37), now, previous=history[-2])
    assert result.empty_on is not None
    assert result.days_left is not None
    assert result.uncertainty_days is not None
    true_empty = T0 + timedelta(days=40)
    assert abs((result.empty_on - true_empty.date()).days) <= 1
    assert 0 < result.uncertainty_days < result.days_left
    assert result.percent_per_page is not None
    assert abs(result.percent_per_page - PERCENT_PER_PAGE) < 0.005


def test_a_device_that_reports_no_level_gets_no_date_and_says_why() -> None:
    history = cartridges([Level(at, None) for at in _hours(30)])
    result = forecast(history[-1], _counter(30), T0 + timedelta(days=29))
    assert (result.level, result.empty_on) == (None, None)
    assert "unknown" in result.basis


def test_replenishment_is_due_by_the_forecast_or_the_level_and_not_before() -> None:
    today = T0.date()
    far = Forecast(60, 100.0, 0.05, 30.0, today + timedelta(days=30), 1.0, "test")
    near = Forecast(60, 100.0, 0.05, 12.0, today + timedelta(days=12), 1.0, "test")  # 3 sigma early: day 9
    low = Forecast(4, None, None, None, None, None, "too few level changes yet")
    assert not replenishment_due(far, today, lead_days=10, low_percent=5)
    assert replenishment_due(near, today, lead_days=10, low_percent=5)
    assert replenishment_due(low, today, lead_days=10, low_percent=5)
    assert not replenishment_due(
        Forecast(None, None, None, None, None, None, "level unknown"), today, lead_days=10, low_percent=5
    )


def test_a_cartridge_far_below_its_nominal_yield_is_flagged_one_taken_out_early_is_not() -> None:
    day = timedelta(days=1)
    levels = [
        Level(T0, 100),
        Level(T0 + 10 * day, 50),  # in the device when the history begins: not judged
        Level(T0 + 20 * day, 100),
        Level(T0 + 30 * day, 0),  # 2,000 pages from 100 % to empty
        Level(T0 + 40 * day, 100),
        Level(T0 + 45 * day, 50),  # out early at 50 %: 1,000 pages for half
        Level(T0 + 50 * day, 100),
    ]
    counter = PageCounter([(T0 + d * day, d * PAGES_PER_DAY) for d in range(60)])
    found = yields(cartridges(levels), counter, nominal=2_000)
    assert [(y.pages, y.used_percent, y.full_pages, y.short) for y in found] == [
        (2_000, 100, 2_000, False),
        (1_000, 50, 2_000, False),
    ]
    leaking = yields(cartridges(levels), counter, nominal=4_000)
    assert [y.short for y in leaking] == [True, True]
