"""Each detector against a short series holding exactly its pattern, and against clean series."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from billing.anomalies import COUNTER32, DetectorSettings, Kind
from billing.anomalies.detectors import (
    counter_steps,
    detect_all,
    device_changes,
    frozen,
    inconsistent,
    spikes,
    stale,
    uncounted,
)

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)  # a Monday
SETTINGS = DetectorSettings()


def series(
    values: list[int],
    *,
    device: str = "SER1",
    meter: str = "total",
    step: timedelta = timedelta(minutes=15),
    address: str | None = "10.0.4.21",
    site: str = "acme",
    start: datetime = T0,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "device": device,
            "site": site,
            "address": address,
            "meter": meter,
            "unit": "impressions",
            "taken_at": pd.to_datetime([start + i * step for i in range(len(values))], utc=True),
            "value": pd.array(values, dtype="int64"),
            "reading_id": [f"{device}-{meter}-{i}" for i in range(len(values))],
        }
    )


def daily(per_day: list[int], *, start_value: int = 10_000, device: str = "SER1") -> pd.DataFrame:
    values, total = [], start_value
    for used in per_day:
        total += used
        values.append(total)
    return series(values, device=device, step=timedelta(days=1))


def kinds(findings: list) -> list[Kind]:  # type: ignore[type-arg]
    return [f.kind for f in findings]


def test_clean_growing_counter_is_silent() -> None:
    assert detect_all(series([100, 105, 105, 130, 200, 260]), SETTINGS) == []


def test_counter32_wrap_is_told_from_a_reset_that_looks_alike() -> None:
    near = COUNTER32 - 40
    wrap = counter_steps(series([near - 100, near, 60]), SETTINGS)  # 100 pages in 15 minutes through 2^32
    assert kinds(wrap) == [Kind.WRAP]
    assert wrap[0].evidence["step"] == 100
    # Same shape, but the implied step is 900,000 pages in 15 minutes: no engine prints that.
    reset = counter_steps(series([near - 100, near - 900_000 + 60_000, 60]), SETTINGS)
    looks_alike = counter_steps(series([COUNTER32 - 1_000_000, COUNTER32 - 999_900, 60]), SETTINGS)
    assert kinds(looks_alike) == [Kind.RESET]
    assert Kind.WRAP not in kinds(reset)


def test_a_drop_far_from_2_32_is_a_reset() -> None:
    found = counter_steps(series([250_000, 250_010, 12]), SETTINGS)
    assert kinds(found) == [Kind.RESET]
    assert found[0].evidence["readings"] == ["SER1-total-1", "SER1-total-2"]
    assert found[0].holds


def test_a_forward_step_no_engine_can_print_is_a_jump() -> None:
    assert kinds(counter_steps(series([1000, 1010, 901_010]), SETTINGS)) == [Kind.JUMP]
    # The same step spread over a fortnight offline is plausible.
    assert counter_steps(series([1000, 1010, 901_010], step=timedelta(days=7)), SETTINGS) == []


def test_another_serial_at_the_same_address_is_a_swap_and_back_and_forth_is_not_repeated() -> None:
    frame = pd.concat([series([10, 20], device="OLD"), series([5, 9, 12], device="NEW", start=T0 + timedelta(hours=1))])
    found = device_changes(frame)
    assert kinds(found) == [Kind.SWAP]
    assert found[0].device == "NEW"
    assert found[0].evidence["previous_device"] == "OLD"
    two_hours = timedelta(hours=2)
    alternating = pd.concat(
        [
            series([1, 2, 3], device="A", step=two_hours),
            series([1, 2, 3], device="B", start=T0 + two_hours / 2, step=two_hours),
        ]
    )
    assert len(device_changes(alternating)) == 1


def test_a_serial_seen_at_another_site_has_moved() -> None:
    later = T0 + timedelta(days=1)
    elsewhere = series([30], site="globex", start=later, address="10.9.9.9").assign(reading_id="at-globex")
    found = device_changes(pd.concat([series([10, 20], site="acme"), elsewhere]))
    assert kinds(found) == [Kind.MOVED]
    assert (found[0].evidence["from_site"], found[0].evidence["to_site"]) == ("acme", "globex")


def test_spike_fires_on_a_day_far_above_the_devices_own_history() -> None:
    regular = [300, 320, 280, 310, 0, 0, 290] * 4  # weekdays around 300, quiet weekends
    found = spikes(daily([*regular, 4000, 300]), SETTINGS)
    assert kinds(found) == [Kind.SPIKE]
    assert found[0].evidence["usage_per_day"] == 4000


def test_spike_needs_history_and_ignores_busy_but_ordinary_days() -> None:
    assert spikes(daily([300, 310, 4000]), SETTINGS) == []  # too little history to judge
    regular = [300, 320, 280, 310, 0, 0, 290] * 4
    assert spikes(daily([*regular, 600, 650]), SETTINGS) == []  # twice the usual is a busy week, not a fault


def _office_days(days: int, *, rush: float = 1.0, spike_on: int | None = None, spike: float = 1.0) -> list[int]:
    """Daily pages of an office printer from T0 (a Monday): ~300 on weekdays, none at weekends.

    The last five weekdays of every month print ``rush`` times as much (an office closing its
    month); day ``spike_on`` prints ``spike`` times as much.
    """
    dates = [T0.date() + timedelta(days=d) for d in range(days)]
    weekdays = [d for d in dates if d.weekday() < 5]
    month_end = {d for month in {d.month for d in weekdays} for d in [w for w in weekdays if w.month == month][-5:]}
    jitter = [300, 320, 280, 310, 295]
    pages = []
    for index, day in enumerate(dates):
        used = jitter[index % 5] if day.weekday() < 5 else 0
        used = int(used * (rush if day in month_end else 1.0))
        pages.append(int(used * spike) if index == spike_on else used)
    return pages


def test_a_month_end_rush_is_a_level_shift_not_a_spike_and_a_true_spike_still_is() -> None:
    rushing = daily(_office_days(120, rush=3.0))
    assert kinds(spikes(rushing, SETTINGS)) == [Kind.LEVEL_SHIFT] * len(spikes(rushing, SETTINGS))
    # Mid-month on a rushing device: one day at 30x is a spike, and only that day.
    spike_on = next(d for d in range(80, 120) if (T0 + timedelta(days=d)).weekday() == 2)
    found = [
        f
        for f in spikes(daily(_office_days(120, rush=3.0, spike_on=spike_on, spike=30.0)), SETTINGS)
        if f.kind == Kind.SPIKE
    ]
    assert [f.window_start for f in found] == [T0.replace(hour=0) + timedelta(days=spike_on)]
    assert found[0].holds


def test_the_latest_day_is_a_spike_until_the_next_stays_up() -> None:
    regular = _office_days(35)
    alone = spikes(daily([*regular, 1500]), SETTINGS)
    assert kinds(alone) == [Kind.SPIKE]  # no day after it yet: judged a spike
    stayed_up = spikes(daily([*regular, 1500, 1400]), SETTINGS)
    assert kinds(stayed_up) == [Kind.LEVEL_SHIFT, Kind.LEVEL_SHIFT]
    assert not stayed_up[0].holds


def test_a_device_asleep_over_a_weekend_does_not_spike_on_monday() -> None:
    values, total = [], 0
    frames = []
    for day in range(35):
        if day % 7 in (5, 6):
            continue  # no readings at all on weekends
        total += 300
        values.append(total)
        frames.append(T0 + timedelta(days=day))
    frame = series(values, step=timedelta(days=1))
    frame["taken_at"] = pd.to_datetime(frames, utc=True)
    assert spikes(frame, SETTINGS) == []


def test_frozen_total_on_a_device_that_answers() -> None:
    found = frozen(daily([300] * 20 + [0] * 16 + [300]), SETTINGS)
    assert kinds(found) == [Kind.FROZEN]
    assert found[0].evidence["days_without_change"] >= SETTINGS.frozen_days
    assert frozen(daily([0] * 30), SETTINGS) == []  # never printed: nothing frozen about it
    assert frozen(daily([300] * 20 + [0] * 9 + [300]), SETTINGS) == []  # a holiday week


def _colour_device(*, start_total: int, hours: int, double_from: int | None, offset: int = 0) -> pd.DataFrame:
    """Hourly readings, 40 mono and 10 colour pages an hour; from hour ``double_from`` colour counts twice.

    ``offset``: pages the total holds and the parts never did (a lifetime difference, not a fault).
    """
    mono, color, total = start_total * 4 // 5, start_total // 5, start_total + offset
    rows = []
    for hour in range(hours):
        mono, total = mono + 40, total + 50
        color += 20 if double_from is not None and hour >= double_from else 10
        rows.append((hour, {"total": total, "mono": mono, "color": color}))
    frame = pd.concat(
        [
            series([values[m] for _, values in rows], meter=m, step=timedelta(hours=1))
            for m in ("total", "mono", "color")
        ]
    )
    frame["reading_id"] = frame["reading_id"].str.replace(r"-(total|mono|color)-", "-", regex=True)
    return frame


@pytest.mark.parametrize("start_total", [5_000, 50_000, 500_000])
def test_inconsistent_fires_within_a_day_of_the_fault_whatever_the_counters_size(start_total: int) -> None:
    found = inconsistent(_colour_device(start_total=start_total, hours=24 * 4, double_from=48), SETTINGS)
    assert found
    assert kinds(found) == [Kind.INCONSISTENT] * len(found)
    first = min(f.window_start for f in found)
    assert T0 + timedelta(hours=48) <= first <= T0 + timedelta(hours=48 + 24)
    assert found[0].evidence["problem"] == "mono + color differs from total"
    assert found[0].evidence["off_by"] > found[0].evidence["tolerance"]


def test_inconsistent_lets_a_lifetime_difference_and_a_clean_device_be() -> None:
    assert inconsistent(_colour_device(start_total=500_000, hours=72, double_from=None), SETTINGS) == []
    # Fax pages in the total the parts never counted: off by 3 %, but every interval agrees.
    assert inconsistent(_colour_device(start_total=5_000, hours=72, double_from=None, offset=150), SETTINGS) == []


def test_a_part_counting_more_than_its_total_is_inconsistent() -> None:
    frame = _colour_device(start_total=10_000, hours=30, double_from=None)
    later = frame["taken_at"] > T0 + timedelta(hours=20)
    frame.loc[later & (frame["meter"] == "mono"), "value"] += 400  # mono counted 400 pages the total never saw
    found = inconsistent(frame, SETTINGS)
    assert found
    assert {f.evidence["problem"] for f in found} <= {"mono + color differs from total", "mono is above total"}


@pytest.mark.parametrize(("silent_for", "stale_expected"), [(timedelta(minutes=40), False), (timedelta(hours=1), True)])
def test_stale_after_three_missed_intervals(silent_for: timedelta, stale_expected: bool) -> None:
    now = T0 + timedelta(days=1)
    found = stale([("SER1", now - silent_for)], now=now, poll_interval_s=900, settings=SETTINGS)
    assert (kinds(found) == [Kind.STALE]) is stale_expected


def levels(
    values: list[int | None],
    *,
    kind: str = "toner",
    name: str = "Black Toner",
    device: str = "SER1",
    step: timedelta = timedelta(minutes=15),
) -> pd.DataFrame:
    """Supply levels read alongside series(): one per reading, same times."""
    return pd.DataFrame(
        {
            "device": device,
            "name": name,
            "kind": kind,
            "taken_at": pd.to_datetime([T0 + i * step for i in range(len(values))], utc=True),
            "level": pd.array(values, dtype="Int64"),
        }
    )


HOURLY = timedelta(hours=1)


def test_toner_used_while_the_total_stands_still_is_uncounted_printing() -> None:
    # 12 hours of the same total while the toner falls from 40 % to 33 %: pages printed, none counted.
    still = series([5_000] * 13, step=HOURLY)
    found = uncounted(still, levels([40, 40, 39, 38, 38, 37, 36, 36, 35, 35, 34, 33, 33], step=HOURLY), SETTINGS)
    assert kinds(found) == [Kind.UNCOUNTED]
    assert (found[0].evidence["level_from"], found[0].evidence["level_to"], found[0].evidence["hours"]) == (
        40,
        33,
        12.0,
    )
    assert found[0].evidence["readings"] == ["SER1-total-0", "SER1-total-12"]
    assert not found[0].holds  # the counter is what is wrong: there is nothing to hold


def test_uncounted_stays_silent_on_normal_printing_noise_short_stops_refills_and_drums() -> None:
    falling = levels([40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28], step=HOURLY)
    # Printing: the total moves while toner goes.
    assert uncounted(series([5_000 + 40 * i for i in range(13)], step=HOURLY), falling, SETTINGS) == []
    still = series([5_000] * 13, step=HOURLY)
    # A level readout that wobbles by a point is no consumption.
    assert uncounted(still, levels([40, 39, 40, 39, 40, 39, 40, 39, 40, 39, 40, 39, 40], step=HOURLY), SETTINGS) == []
    # A new cartridge (3 % -> 100 %) is a rise, not a fall.
    assert uncounted(still, levels([3, 3, 3, 100, 100, 99, 99, 99, 99, 99, 99, 99, 99], step=HOURLY), SETTINGS) == []
    # A drum wears by rotations (warm-up, cleaning), not only by pages.
    assert (
        uncounted(
            still, levels([40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28], kind="drum", step=HOURLY), SETTINGS
        )
        == []
    )
    # Unknown levels (null) say nothing.
    assert uncounted(still, levels([None] * 13, step=HOURLY), SETTINGS) == []
    # Under uncounted_min_hours (6): counters and levels update at their own pace.
    short = series([5_000] * 5, step=HOURLY)
    assert uncounted(short, levels([40, 38, 36, 34, 32], step=HOURLY), SETTINGS) == []
    assert kinds(
        uncounted(short, levels([40, 38, 36, 34, 32], step=HOURLY), DetectorSettings(uncounted_min_hours=4))
    ) == [Kind.UNCOUNTED]


def test_a_long_sleeper_is_left_alone_mid_month_but_not_in_the_days_before_the_month_closes() -> None:
    holidays = 10 * 86_400.0  # it was off for ten days in its last four weeks: that is its usual silence now
    mid_month = datetime(2026, 10, 14, 12, tzinfo=UTC)
    closing = datetime(2026, 10, 29, 12, tzinfo=UTC)  # 2.5 days before 1 November
    for now, expected in ((mid_month, []), (closing, [Kind.STALE])):
        found = stale(
            [("SER1", now - timedelta(hours=80))],
            now=now,
            poll_interval_s=900,
            settings=SETTINGS,
            usual={"SER1": holidays},
        )
        assert kinds(found) == expected
    found = stale(
        [("SER1", closing - timedelta(hours=80))],
        now=closing,
        poll_interval_s=900,
        settings=SETTINGS,
        usual={"SER1": holidays},
    )
    assert found[0].evidence["period_closes"] == "2026-11-01T00:00:00+00:00"
    # A weekend's sleep (62 h) before the close is not the 72 h that puts the month-end read at risk.
    assert (
        stale(
            [("SER1", closing - timedelta(hours=62))],
            now=closing,
            poll_interval_s=900,
            settings=SETTINGS,
            usual={"SER1": 62 * 3600.0},
        )
        == []
    )
