"""The detectors: pure functions over a frame of readings, vectorised with pandas.

The frame has one row per reading and meter: ``device``, ``site``, ``address``,
``meter``, ``unit``, ``taken_at`` (UTC), ``value``, ``reading_id``. Each detector
returns the findings it sees in it; none of them does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from billing.anomalies import COUNTER32, DetectorSettings, Finding, Kind

COLUMNS: Final = ("device", "site", "address", "meter", "unit", "taken_at", "value", "reading_id")
_SERIES: Final = ["device", "meter"]
# Parts that can never exceed the total they are part of.
_PARTS: Final = ("mono", "color", "print_total", "copy_total", "fax_total", "duplex", "large_total")
_MAD_TO_SIGMA: Final = 1.4826


def empty_frame() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in COLUMNS})


def detect_all(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Every reading-based detector over ``frame`` (stale devices need the clock: see :func:`stale`)."""
    if frame.empty:
        return []
    frame = frame.sort_values([*_SERIES, "taken_at"], kind="stable").reset_index(drop=True)
    return [
        *counter_steps(frame, settings),
        *device_changes(frame),
        *spikes(frame, settings),
        *frozen(frame, settings),
        *inconsistent(frame, settings),
    ]


def counter_steps(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Backward steps told apart as wrap or reset, and forward steps no engine can make (jump).

    A backward step is a Counter32 wrap when the counter was below 2^32 and the step it
    implies through 2^32 fits in the time between the readings at the fastest plausible
    engine speed; otherwise the counter was reset.
    """
    frame = frame.sort_values([*_SERIES, "taken_at"], kind="stable").reset_index(drop=True)
    groups = frame.groupby(_SERIES, sort=False)
    previous = groups["value"].shift(1)
    previous_at = groups["taken_at"].shift(1)
    previous_id = groups["reading_id"].shift(1)
    minutes = (frame["taken_at"] - previous_at).dt.total_seconds().div(60).clip(lower=1.0)
    allowed = minutes * settings.max_pages_per_minute
    value = frame["value"].astype("float64")
    before = previous.astype("float64")
    backwards = value < before
    through_wrap = value + COUNTER32 - before
    wrap = backwards & (before < COUNTER32) & (through_wrap <= allowed)
    reset = backwards & ~wrap
    jump = (value - before) > allowed
    findings: list[Finding] = []
    for kind, mask, step in (
        (Kind.WRAP, wrap, through_wrap),
        (Kind.RESET, reset, value - before),
        (Kind.JUMP, jump, value - before),
    ):
        flagged = frame.loc[mask].assign(
            previous=before[mask], previous_at=previous_at[mask], previous_id=previous_id[mask],
            step=step[mask], allowed=allowed[mask],
        )  # fmt: skip
        findings.extend(
            Finding(
                kind,
                row["device"],
                row["meter"],
                _py(row["previous_at"]),
                _py(row["taken_at"]),
                {
                    "readings": [row["previous_id"], row["reading_id"]],
                    "values": [int(row["previous"]), int(row["value"])],
                    "step": int(row["step"]),
                    "max_plausible_step": int(row["allowed"]),
                },
            )
            for row in _rows(flagged)
        )
    return findings


def device_changes(frame: pd.DataFrame) -> list[Finding]:
    """Another serial answering at a known address (swap), a serial showing up at another site (moved)."""
    readings = frame.drop_duplicates("reading_id").sort_values("taken_at", kind="stable").reset_index(drop=True)
    findings: list[Finding] = []
    for (site, address), at_address in readings.dropna(subset=["address"]).groupby(["site", "address"], sort=False):
        seen: set[str] = set()
        last: dict[str, Any] | None = None
        for row in _rows(at_address):
            if last is not None and row["device"] != last["device"] and row["device"] not in seen:
                evidence = {"readings": [last["reading_id"], row["reading_id"]], "address": address, "site": site,
                            "previous_device": last["device"]}  # fmt: skip
                findings.append(
                    Finding(Kind.SWAP, row["device"], None, _py(last["taken_at"]), _py(row["taken_at"]), evidence)
                )
            seen.add(row["device"])
            last = row
    by_device = readings.groupby("device", sort=False)
    moved = readings.assign(
        from_site=by_device["site"].shift(1),
        previous_id=by_device["reading_id"].shift(1),
        previous_at=by_device["taken_at"].shift(1),
    )
    moved = moved[moved["from_site"].notna() & (moved["site"] != moved["from_site"])]
    findings.extend(
        Finding(
            Kind.MOVED, row["device"], None, _py(row["previous_at"]), _py(row["taken_at"]),
            {"readings": [row["previous_id"], row["reading_id"]],
             "from_site": row["from_site"], "to_site": row["site"]},
        )
        for row in _rows(moved)
    )  # fmt: skip
    return findings


def daily_usage(frame: pd.DataFrame) -> pd.DataFrame:
    """Per device, meter and day with readings: pages per day since the previous day with readings.

    Usage across a gap is spread over the gap (a device asleep for a weekend does not
    spike on Monday); backward steps give no usage (they are wraps or resets, found apart).
    """
    days = frame.assign(day=frame["taken_at"].dt.floor("D"))
    last = days.groupby([*_SERIES, "day"], sort=True).agg(value=("value", "last"), reading_id=("reading_id", "last"))
    last = last.reset_index()
    groups = last.groupby(_SERIES, sort=False)
    step = groups["value"].diff()
    gap_days = groups["day"].diff().dt.days
    per_day = step.astype("float64") / gap_days
    last["usage"] = per_day.where(step >= 0)
    return last


def spikes(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """A day's usage far above the device's own recent days (median and MAD, not mean)."""
    days = daily_usage(frame)
    if days.empty:
        return []
    groups = days.groupby(_SERIES, sort=False)["usage"]
    window, minimum = settings.spike_window_days, settings.spike_min_history_days
    median = groups.transform(lambda s: s.shift(1).rolling(window, min_periods=minimum).median())
    deviation = (days["usage"] - median).abs()
    days["deviation"] = deviation
    # Deviations exist only once a median does: ask fewer of them (half the minimum history).
    mad = days.groupby(_SERIES, sort=False)["deviation"].transform(
        lambda s: s.shift(1).rolling(window, min_periods=max(1, minimum // 2)).median()
    )
    # A perfectly regular device has MAD 0: floor it so ordinary jitter is not a spike.
    spread = np.maximum(mad * _MAD_TO_SIGMA, median * 0.1 + 1.0)
    usage = days["usage"]
    is_spike = (
        median.notna()
        & (usage > median + settings.spike_mads * spread)
        & (usage > median * settings.spike_min_ratio)
        & (usage - median > settings.spike_min_pages)
    )
    flagged = days.loc[is_spike].assign(median=median[is_spike])
    findings = []
    for row in _rows(flagged):
        day = _py(row["day"])
        evidence = {"readings": [row["reading_id"]], "usage_per_day": round(float(row["usage"]), 1),
                    "median": round(float(row["median"]), 1)}  # fmt: skip
        findings.append(Finding(Kind.SPIKE, row["device"], row["meter"], day, day + timedelta(days=1), evidence))
    return findings


def frozen(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """A total that stops moving for ``frozen_days`` on a device that keeps answering and used to print."""
    totals = frame[frame["meter"] == "total"]
    if totals.empty:
        return []
    days = daily_usage(totals)
    findings = []
    for device, series in days.groupby("device", sort=False):
        usage = series["usage"].to_numpy()
        day = series["day"].to_numpy()
        ids = series["reading_id"].to_numpy()
        still = np.nan_to_num(usage, nan=1.0) == 0
        start = 0
        while start < len(still):
            if not still[start]:
                start += 1
                continue
            end = start
            while end + 1 < len(still) and still[end + 1]:
                end += 1
            span_days = (day[end] - day[start - 1 if start else start]) / np.timedelta64(1, "D")
            before = usage[max(0, start - settings.spike_window_days) : start]
            before = before[~np.isnan(before)]
            used_before = before.size > 0 and float(np.median(before)) > 0
            if span_days >= settings.frozen_days and (end - start + 1) >= settings.frozen_days * 0.7 and used_before:
                findings.append(
                    Finding(
                        Kind.FROZEN,
                        str(device),
                        "total",
                        _py(day[start]),
                        _py(day[end]),
                        {"readings": [ids[start], ids[end]], "days_without_change": int(span_days)},
                    )
                )
            start = end + 1
    return findings


def inconsistent(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Meters of one reading that contradict each other: mono + colour != total, a part above its total."""
    wide = frame.pivot_table(
        index=["reading_id", "device", "taken_at"], columns="meter", values="value", aggfunc="last"
    )
    if "total" not in wide.columns:
        return []
    total = wide["total"]
    tolerance = np.maximum(total * settings.inconsistent_tolerance, settings.inconsistent_min_pages)
    problems = pd.Series("", index=wide.index)
    if {"mono", "color"} <= set(wide.columns):
        off = (wide["mono"] + wide["color"] - total).abs() > tolerance
        problems = problems.mask(off, "mono + color differs from total")
    for part in _PARTS:
        if part in wide.columns:
            problems = problems.mask((problems == "") & (wide[part] > total + tolerance), f"{part} is above total")
    flagged = wide.assign(problem=problems)[problems != ""].reset_index()
    meters = [c for c in wide.columns if isinstance(c, str)]
    findings = []
    for row in _rows(flagged):
        values = {m: int(row[m]) for m in meters if pd.notna(row[m])}
        moment = _py(row["taken_at"])
        evidence = {"readings": [row["reading_id"]], "problem": row["problem"], "values": values}
        findings.append(Finding(Kind.INCONSISTENT, row["device"], "total", moment, moment, evidence))
    return findings


def stale(last_seen: Iterable[tuple[str, datetime]], *, now: datetime, poll_interval_s: int,
          settings: DetectorSettings) -> list[Finding]:  # fmt: skip
    """Devices whose newest reading is older than ``stale_intervals`` poll intervals."""
    limit = timedelta(seconds=poll_interval_s * settings.stale_intervals)
    return [
        Finding(
            Kind.STALE, device, None, seen, now,
            {"last_seen": seen.isoformat(), "silent_s": int((now - seen).total_seconds())},
        )
        for device, seen in last_seen
        if now - seen > limit
    ]  # fmt: skip


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain dicts (typed Any: the columns are checked by the code that made them)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _py(moment: Any) -> datetime:  # noqa: ANN401 - pandas and numpy timestamps alike
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.to_pydatetime()
