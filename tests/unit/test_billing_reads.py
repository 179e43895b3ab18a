"""Period usage from lifetime counters, worked by hand: boundary reads, estimates, resets, wraps, holds."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.reads import ReadRules, period_usage

OCT_1 = pd.Timestamp("2026-10-01", tz="UTC")
NOV_1 = pd.Timestamp("2026-11-01", tz="UTC")
DEC_1 = pd.Timestamp("2026-12-01", tz="UTC")


def reads(*rows: tuple[str, str, int]) -> pd.DataFrame:
    """(device, time, value) rows of the mono meter; row ids 1, 2, 3 … in the order given."""
    return pd.DataFrame(
        [(n, device, "mono", pd.Timestamp(at, tz="UTC"), value) for n, (device, at, value) in enumerate(rows, 1)],
        columns=["row_id", "device", "meter", "taken_at", "value"],
    )


def request(*spans: tuple[str, pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame([(d, "mono", s, e) for d, s, e in spans], columns=["device", "meter", "start", "end"])


def daily(device: str, first: str, days: int, start: int, *, per_day: int, hour: int = 6) -> list[tuple[str, str, int]]:
    day0 = pd.Timestamp(first)
    return [(device, str(day0 + timedelta(days=i, hours=hour)), start + per_day * i) for i in range(days)]


def test_boundary_reads_are_the_closest_within_the_window_and_shared_by_consecutive_months() -> None:
    frame = reads(*daily("A", "2026-09-28", 70, 1000, per_day=40))
    result = period_usage(frame, request(("A", OCT_1, NOV_1), ("A", NOV_1, DEC_1)))
    october, november = result.iloc[0], result.iloc[1]
    # 1 Oct 06:00 is 6 h after the boundary, 30 Sep 06:00 is 18 h before: the 1 Oct read (day 3) starts October.
    assert (october.start_value, october.start_at) == (1000 + 40 * 3, pd.Timestamp("2026-10-01 06:00", tz="UTC"))
    # 1 Nov 06:00 (day 34) ends October and starts November: one read, never billed twice.
    assert october.end_row_id == november.start_row_id == 35
    assert october.usage == 40 * 31  # 1240
    assert november.usage == 40 * 30  # 1200
    assert not october.start_estimated
    assert not october.end_estimated


def test_on_a_tie_the_earlier_read_wins() -> None:
    frame = reads(
        ("A", "2026-09-30 12:00", 100),
        ("A", "2026-10-01 12:00", 150),
        ("A", "2026-10-31 12:00", 400),
        ("A", "2026-11-01 12:00", 420),
    )
    row = period_usage(frame, request(("A", OCT_1, NOV_1))).iloc[0]
    assert (row.start_value, row.end_value) == (100, 400)  # 12 h either side: the one before
    assert row.usage == 300


def test_a_missing_end_read_is_estimated_from_the_recent_daily_average() -> None:
    # 100 pages a day from 1 to 19 Oct (06:00), then silence: nothing within 3 days of 1 Nov.
    frame = reads(*daily("B", "2026-10-01", 19, 100, per_day=100))
    row = period_usage(frame, request(("B", OCT_1, NOV_1))).iloc[0]
    # Average over the reads of the last 90 days: (1900 - 100) / 18 days = 100 a day.
    # Last read 19 Oct 06:00 -> 1 Nov 00:00 is 12.75 days: 1900 + 1275 = 3175.
    assert row.end_estimated
    assert row.end_row_id == -1
    assert row.end_basis_row == 19
    assert row.end_value == 3175
    assert row.usage == 3175 - 100  # 3075
    assert not row.start_estimated


def test_a_device_without_any_read_before_the_period_starts_at_its_first_read() -> None:
    frame = reads(*daily("N", "2026-10-17", 16, 5000, per_day=10))
    row = period_usage(frame, request(("N", OCT_1, NOV_1))).iloc[0]
    assert (row.start_value, row.start_estimated) == (5000, False)  # its first read, not an estimate
    assert row.end_value == 5000 + 10 * 15  # 1 Nov 06:00
    assert row.usage == 150


def test_a_reset_mid_period_starts_a_new_segment_and_the_segments_add_up() -> None:
    # 1,000 pages a day to 10 Oct (value 10,000 + 9 x 1,000 = 19,000), the board is swapped: 50 then 1,050 a day more.
    before = daily("R", "2026-10-01", 10, 10_000, per_day=1000)
    after = daily("R", "2026-10-11", 22, 50, per_day=1000)
    row = period_usage(reads(*before, *after), request(("R", OCT_1, NOV_1))).iloc[0]
    # Segment 1: 19,000 - 10,000 = 9,000. Segment 2: 1 Nov 06:00 is day 21 after 11 Oct: 50 + 21,000 - 50 = 21,000.
    # The step 19,000 -> 50 itself counts nothing (the pages of that one poll interval are not known).
    assert row.segments == 2
    assert row.usage == 9_000 + 21_000


def test_a_confirmed_reset_bills_the_first_value_after_it_and_each_segment_keeps_its_read_pair() -> None:
    # Issue 17 items 5 and 6: 640 pages, the counter is reset and first reads 35, then 960 more.
    frame = reads(
        ("K", "2026-10-01 06:00", 50_320),
        ("K", "2026-10-10 06:00", 50_960),
        ("K", "2026-10-11 06:00", 35),
        ("K", "2026-11-01 06:00", 995),
    )
    confirmed = period_usage(frame, request(("K", OCT_1, NOV_1)), restarts={3: 0}).iloc[0]
    assert confirmed.usage == 640 + 35 + 960  # 1,635 pages printed, 1,635 billed
    pairs = confirmed.segment_reads
    assert [(p["start"]["value"], p["end"]["value"], p["pages"]) for p in pairs] == [
        (50_320, 50_960, 640),
        (0, 995, 995),
    ]
    assert all(p["end"]["value"] - p["start"]["value"] == p["pages"] for p in pairs)
    assert pairs[1]["start"]["restart"]
    # The reviewer says the counter restarted from 20 (anomalies resolve ... --action reset --value 20).
    from_twenty = period_usage(frame, request(("K", OCT_1, NOV_1)), restarts={3: 20}).iloc[0]
    assert from_twenty.usage == 640 + 15 + 960
    assert from_twenty.segment_reads[1]["start"]["value"] == 20
    # Unconfirmed (it may be another device's counter): the step itself counts nothing.
    unconfirmed = period_usage(frame, request(("K", OCT_1, NOV_1))).iloc[0]
    assert unconfirmed.usage == 640 + 960
    assert [(p["start"]["value"], p["end"]["value"]) for p in unconfirmed.segment_reads] == [
        (50_320, 50_960),
        (35, 995),
    ]


def test_a_boundary_read_outside_the_window_says_whether_it_is_an_estimate_or_the_first_read() -> None:
    # Issue 17 item 7: assigned from 1 Oct, first ever read on 25 Oct (installation).
    frame = reads(("I", "2026-10-25 09:00", 7), ("I", "2026-11-01 06:00", 307))
    row = period_usage(frame, request(("I", OCT_1, NOV_1))).iloc[0]
    assert row.start_first_read
    assert not row.start_estimated
    assert not row.end_first_read
    inside = period_usage(
        reads(("J", "2026-10-02 09:00", 7), ("J", "2026-11-01 06:00", 307)), request(("J", OCT_1, NOV_1))
    ).iloc[0]
    assert not inside.start_first_read  # within the 3-day window: an ordinary boundary read


def test_a_counter32_wrap_counts_through_two_to_the_32() -> None:
    top = 2**32
    frame = reads(
        ("W", "2026-10-01 06:00", top - 500), ("W", "2026-10-15 06:00", top - 100), ("W", "2026-11-01 06:00", 250)
    )
    row = period_usage(frame, request(("W", OCT_1, NOV_1))).iloc[0]
    assert row.wraps == 1
    assert row.segments == 1
    assert row.usage == 400 + 100 + 250  # to 2^32 - 100, through the wrap, to 250


def test_held_readings_are_left_out_and_mark_the_line() -> None:
    frame = reads(("H", "2026-10-01 06:00", 1000), ("H", "2026-10-20 06:00", 900_000), ("H", "2026-11-01 06:00", 2000))
    row = period_usage(frame, request(("H", OCT_1, NOV_1)), held={2}).iloc[0]
    assert row.usage == 1000
    assert row.held == 1
    unheld = period_usage(frame, request(("H", OCT_1, NOV_1))).iloc[0]
    assert unheld.held == 0
    assert unheld.segments == 2


def test_a_device_with_no_reads_at_all_bills_nothing_and_says_so() -> None:
    row = period_usage(reads(("A", "2026-10-01 06:00", 1)), request(("Z", OCT_1, NOV_1))).iloc[0]
    assert row.no_reads
    assert row.usage == 0


values = st.lists(st.integers(min_value=0, max_value=2**32 + 10), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(values=values, gaps=st.lists(st.integers(min_value=1, max_value=9 * 24), min_size=40, max_size=40))
def test_usage_is_never_negative_and_months_add_up_when_every_boundary_has_a_read(
    values: list[int], gaps: list[int]
) -> None:
    at = pd.Timestamp("2026-09-25", tz="UTC")
    rows = []
    for value, gap in zip(values, gaps, strict=False):
        at += timedelta(hours=gap)
        rows.append(("P", str(at.tz_convert(None)), value))
    frame = reads(*rows)
    months = period_usage(frame, request(("P", OCT_1, NOV_1), ("P", NOV_1, DEC_1)))
    assert (months["usage"] >= 0).all()
    whole = period_usage(frame, request(("P", OCT_1, DEC_1))).iloc[0]
    if not months[["start_estimated", "end_estimated"]].to_numpy().any():
        assert months["usage"].sum() == whole.usage


def test_the_window_is_a_rule_of_its_own() -> None:
    frame = reads(("A", "2026-09-29 06:00", 100), ("A", "2026-10-31 06:00", 400), ("A", "2026-11-04 06:00", 500))
    narrow = ReadRules(window=timedelta(days=1))
    row = period_usage(frame, request(("A", OCT_1, NOV_1)), rules=narrow).iloc[0]
    assert row.start_estimated  # 29 Sep is 42 h away: outside a one-day window
    assert not row.end_estimated
    assert row.end_value == 400


def test_a_glitch_up_and_back_is_left_out_while_held_and_counts_its_jump_once_approved() -> None:
    # Ported from billing/usage.py's end-to-end check: one reading 900,000 too high between steady 5-page steps.
    steady = [("G", str(pd.Timestamp("2026-10-01 00:00") + timedelta(hours=n)), 10_000 + 5 * n) for n in range(48)]
    glitch = [(d, at, value + 900_000) if n == 20 else (d, at, value) for n, (d, at, value) in enumerate(steady)]
    span = request(("G", OCT_1, OCT_1 + timedelta(hours=47)))
    # Rows 20, 21, 22 (the reading before the glitch, the glitch, the one after) held as the detectors hold them.
    held = period_usage(reads(*glitch), span, held={20, 21, 22}).iloc[0]
    assert (held.usage, held.segments, held.held) == (5 * 47, 1, 3)
    approved = period_usage(reads(*glitch), span).iloc[0]
    # The step up counts in full; the step back down is a reset that counts nothing and starts a second segment.
    assert (approved.usage, approved.segments) == (5 * 19 + 900_005 + 5 * 26, 2)
