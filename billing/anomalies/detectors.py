"""The detectors: pure functions over a frame of readings, vectorised with pandas.

The frame has one row per reading and meter: ``device``, ``site``, ``address``,
``meter``, ``unit``, ``taken_at`` (UTC), ``value``, ``reading_id``. Each detector
returns the findings it sees in it; none of them does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from billing.anomalies import COUNTER32, DetectorSettings, Finding, Kind, by_settings
from billing.periods import add_months, utc_midnight

COLUMNS: Final = ("device", "site", "address", "meter", "unit", "taken_at", "value", "reading_id")
SUPPLY_COLUMNS: Final = ("device", "name", "kind", "taken_at", "level")
# Supplies that only go down when pages are printed (a drum wears by rotations, waste fills: not these).
_CONSUMED: Final = frozenset({"toner", "ink"})
_SERIES: Final = ["device", "meter"]
# Parts that can never exceed the total they are part of.
_PARTS: Final = ("mono", "color", "print_total", "copy_total", "fax_total", "duplex", "large_total")
_MAD_TO_SIGMA: Final = 1.4826


def empty_frame(columns: Iterable[str] = COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})


def detect_all(
    frame: pd.DataFrame, settings: DetectorSettings, *, supplies: pd.DataFrame | None = None,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> list[Finding]:  # fmt: skip
    """Every reading-based detector over ``frame`` (stale devices need the clock: see :func:`stale`).

    ``supplies`` (SUPPLY_COLUMNS) adds :func:`uncounted`; ``tuned`` gives devices settings of
    their own (their site's or contract's knobs) in place of ``settings``.
    """
    if frame.empty:
        return []
    # Factorise the text columns once: every groupby below then works on integer codes.
    text = [c for c in ("device", "site", "address", "meter", "unit") if c in frame.columns]
    frame = frame.astype(dict.fromkeys(text, "category"))
    frame = frame.sort_values([*_SERIES, "taken_at"], kind="stable").reset_index(drop=True)
    groups = by_settings(frame["device"].unique().tolist(), settings, tuned)
    findings = []
    for knobs, devices in groups.items():
        part = frame if len(groups) == 1 else frame[frame["device"].isin(devices)].reset_index(drop=True)
        findings += [
            *counter_steps(part, knobs),
            *spikes(part, knobs),
            *frozen(part, knobs),
            *inconsistent(part, knobs),
        ]
        if supplies is not None:
            findings += uncounted(part, supplies[supplies["device"].isin(devices)], knobs)
    # Swaps and moves compare devices with each other (and take no knobs): over the whole frame.
    return findings + device_changes(frame)


def counter_steps(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Backward steps told apart as wrap or reset, and forward steps no engine can make (jump).

    A backward step is a Counter32 wrap when the counter was below 2^32 and the step it
    implies through 2^32 fits in the time between the readings at the fastest plausible
    engine speed; otherwise the counter was reset.
    """
    frame = frame.sort_values([*_SERIES, "taken_at"], kind="stable").reset_index(drop=True)
    groups = frame.groupby(_SERIES, sort=False, observed=True)
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
    """Another serial answering at a known address (swap), a serial showing up at another site (moved).

    A swap is reported once, at the new serial's first reading from that address, so two
    devices behind one address (a print server) are not reported on every alternation.
    """
    readings = _one_row_per_reading(frame).sort_values("taken_at", kind="stable").reset_index(drop=True)
    findings: list[Finding] = []
    located = readings.dropna(subset=["address"]).sort_values(["site", "address", "taken_at"], kind="stable")
    at_address = located.groupby(["site", "address"], sort=False, observed=True)
    swaps = located.assign(
        previous_device=at_address["device"].shift(1),
        previous_id=at_address["reading_id"].shift(1),
        previous_at=at_address["taken_at"].shift(1),
    )
    first_there = ~swaps.duplicated(["site", "address", "device"])
    swaps = swaps[first_there & swaps["previous_device"].notna() & (swaps["device"] != swaps["previous_device"])]
    findings.extend(
        Finding(
            Kind.SWAP, row["device"], None, _py(row["previous_at"]), _py(row["taken_at"]),
            {"readings": [row["previous_id"], row["reading_id"]], "address": row["address"], "site": row["site"],
             "previous_device": row["previous_device"]},
        )
        for row in _rows(swaps)
    )  # fmt: skip
    by_device = readings.groupby("device", sort=False, observed=True)
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
    last = days.groupby([*_SERIES, "day"], sort=True, observed=True).agg(
        value=("value", "last"), reading_id=("reading_id", "last")
    )
    last = last.reset_index()
    groups = last.groupby(_SERIES, sort=False, observed=True)
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
    groups = days.groupby(_SERIES, sort=False, observed=True)["usage"]
    window, minimum = settings.spike_window_days, settings.spike_min_history_days
    median = groups.transform(lambda s: s.shift(1).rolling(window, min_periods=minimum).median())
    deviation = (days["usage"] - median).abs()
    days["deviation"] = deviation
    # Deviations exist only once a median does: ask fewer of them (half the minimum history).
    mad = days.groupby(_SERIES, sort=False, observed=True)["deviation"].transform(
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
    for device, series in days.groupby("device", sort=False, observed=True):
        usage = series["usage"].to_numpy()
        day = series["day"].to_numpy()
        ids = series["reading_id"].to_numpy()
        for start, end in _true_runs(np.nan_to_num(usage, nan=1.0) == 0):
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
    return findings


def uncounted(frame: pd.DataFrame, supplies: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Toner or ink used up while the total stood still: pages printed that no counter saw.

    ``supplies`` has SUPPLY_COLUMNS. A level's decline is measured from its highest point
    before (so a new cartridge in between starts no false alarm), one finding per stand-still.
    """
    totals = frame[frame["meter"] == "total"]
    levels = supplies[supplies["kind"].isin(_CONSUMED) & supplies["level"].notna()]
    if totals.empty or levels.empty:
        return []
    levels_of = dict(iter(levels.groupby("device", sort=False, observed=True)))
    shortest = np.timedelta64(int(settings.uncounted_min_hours * 3600), "s")
    findings = []
    for device, series in totals.sort_values(["device", "taken_at"]).groupby("device", sort=False, observed=True):
        if device not in levels_of:
            continue
        values, times, ids = (series[c].to_numpy() for c in ("value", "taken_at", "reading_id"))
        for start, end in _true_runs(np.r_[False, values[1:] == values[:-1]]):
            first, last = times[start - 1], times[end]
            if last - first < shortest:
                continue
            mine = levels_of[device]
            # Levels are stored when they change: the level at ``first`` is each supply's last row at or before it.
            before = mine[mine["taken_at"] <= first].sort_values("taken_at").groupby("name", observed=True).tail(1)
            inside = pd.concat([before, mine[(mine["taken_at"] > first) & (mine["taken_at"] <= last)]])
            inside = inside.sort_values("taken_at")
            for name, supply in inside.groupby("name", sort=True, observed=True):
                level = supply["level"].to_numpy(dtype="float64")
                decline = np.maximum.accumulate(level) - level
                if decline.max() >= settings.uncounted_supply_drop:
                    worst = int(decline.argmax())
                    evidence = {"readings": [ids[start - 1], ids[end]], "total": int(values[end]), "supply": name,
                                "level_from": int(np.maximum.accumulate(level)[worst]), "level_to": int(level[worst]),
                                "hours": round((last - first) / np.timedelta64(1, "h"), 1)}  # fmt: skip
                    findings.append(Finding(Kind.UNCOUNTED, str(device), "total", _py(first), _py(last), evidence))
                    break  # one finding per stand-still is enough to send someone
    return findings


def _true_runs(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> list[tuple[int, int]]:
    """(first, last) index of every run of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype("int8"), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def inconsistent(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Meters of one reading that contradict each other: mono + colour != total, a part above its total."""
    frame = frame[frame["meter"].isin(["total", "mono", "color", *_PARTS])]
    if frame["meter"].nunique() < 2:  # noqa: PLR2004 - one meter cannot contradict itself
        return []
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


def usual_silence(frame: pd.DataFrame, *, days: int = 28) -> dict[str, float]:
    """Per device, the longest gap between readings in its last ``days`` days, in seconds.

    A printer that sleeps through nights and weekends is silent for 60-odd hours every
    week; that is its normal, and staleness is judged against it.
    """
    if frame.empty:
        return {}
    moments = _one_row_per_reading(frame)[["device", "taken_at"]].sort_values(["device", "taken_at"])
    recent = moments[
        moments["taken_at"]
        >= moments.groupby("device", observed=True)["taken_at"].transform("max") - pd.Timedelta(days=days)
    ]
    gaps = recent.groupby("device", observed=True)["taken_at"].diff().dt.total_seconds()
    longest = gaps.groupby(recent["device"], observed=True).max().dropna()
    return {str(device): float(seconds) for device, seconds in longest.items()}


def stale(last_seen: Iterable[tuple[str, datetime]], *, now: datetime, poll_interval_s: int,
          settings: DetectorSettings, usual: Mapping[str, float] | None = None) -> list[Finding]:  # fmt: skip
    """Devices silent longer than ``stale_intervals`` poll intervals and than their own usual silence.

    ``usual`` is :func:`usual_silence` of each device's recent history; the silence must
    exceed it by ``stale_margin`` before the device counts as stale. In the last
    ``stale_close_days`` before a month (a billing period) closes, ``stale_close_hours`` of
    silence is enough whatever the device's habits: its end-of-month read is due.
    """
    base = poll_interval_s * settings.stale_intervals
    usual = usual or {}
    month_end = utc_midnight(add_months(now.date(), 1))
    closing = month_end - now <= timedelta(days=settings.stale_close_days)
    findings = []
    for device, seen in last_seen:
        silent = (now - seen).total_seconds()
        allowed = max(base, settings.stale_margin * usual.get(device, 0.0))
        if closing:
            allowed = min(allowed, max(base, settings.stale_close_hours * 3600))
        if silent > allowed:
            evidence = {
                "last_seen": seen.isoformat(),
                "silent_s": int(silent),
                "usual_silence_s": int(usual.get(device, 0)),
                "period_closes": month_end.isoformat() if closing else None,
            }
            findings.append(Finding(Kind.STALE, device, None, seen, now, evidence))
    return findings


def _one_row_per_reading(frame: pd.DataFrame) -> pd.DataFrame:
    if frame["meter"].nunique() < 2:  # noqa: PLR2004 - one meter: already one row per reading
        return frame
    return frame.drop_duplicates("reading_id")


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain dicts (typed Any: the columns are checked by the code that made them)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _py(moment: Any) -> datetime:  # noqa: ANN401 - pandas and numpy timestamps alike
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.to_pydatetime()
