"""The detectors: pure functions over a frame of readings, vectorised with pandas.

The frame has one row per reading and meter: ``device``, ``site``, ``address``,
``meter``, ``unit``, ``taken_at`` (UTC), ``value``, ``reading_id``. Each detector
returns the findings it sees in it; none of them does I/O.
"""

from __future__ import annotations

import itertools
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
_NS_PER_DAY: Final = 86_400 * 10**9


def empty_frame(columns: Iterable[str] = COLUMNS) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})


def detect_all(
    frame: pd.DataFrame,
    settings: DetectorSettings,
    *,
    supplies: pd.DataFrame | None = None,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> list[Finding]:
    """Every reading-based detector over ``frame`` (stale devices need the clock: see :func:`stale`).

    ``supplies`` (SUPPLY_COLUMNS) adds :func:`uncounted`; ``tuned`` gives devices settings of
    their own (their site's or contract's knobs) in place of ``settings``.
    """
    if frame.empty:
        return []
    # Factorise the text columns once: every grouping below then works on integer codes.
    text = [c for c in ("device", "site", "address", "meter", "unit") if c in frame.columns]
    frame = frame.astype(dict.fromkeys(text, "category"))
    frame = _ordered(frame)
    groups = by_settings(frame["device"].unique().tolist(), settings, tuned)
    findings = []
    for knobs, devices in groups.items():
        part = frame if len(groups) == 1 else frame[frame["device"].isin(devices)].reset_index(drop=True)
        days = daily_usage(part)
        findings += [
            *counter_steps(part, knobs),
            *spikes(part, knobs, days=days),
            *frozen(part, knobs, days=days),
            *inconsistent(part, knobs),
        ]
        if supplies is not None:
            findings += uncounted(part, supplies[supplies["device"].isin(devices)], knobs)
    # Swaps and moves compare devices with each other (and take no knobs): over the whole frame.
    return findings + device_changes(frame)


def _codes(column: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """A column as integer codes: equal values, equal codes (the order between them is of no matter here)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype("int64")
    return pd.factorize(column)[0].astype("int64")


def _nanoseconds(column: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.asarray(column.dt.as_unit("ns").astype("int64").to_numpy(), dtype="int64")


def _series_starts(frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """True where a row starts a device's meter series (``frame`` in series order)."""
    device, meter = _codes(frame["device"]), _codes(frame["meter"])
    starts: np.ndarray[Any, np.dtype[np.bool_]] = np.r_[True, (device[1:] != device[:-1]) | (meter[1:] != meter[:-1])]
    return starts


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each device's meter series together and in time order; as it is when it already is.

    Checking is a few vector comparisons; sorting 60 million rows is not, and the store and
    the bench hand over frames already in this order.
    """
    device, meter, moment = _codes(frame["device"]), _codes(frame["meter"]), _nanoseconds(frame["taken_at"])
    same_device, same_meter = device[1:] == device[:-1], meter[1:] == meter[:-1]
    # A frame is in order when each series' rows are together and in time; which series comes first is free.
    starts = np.r_[True, ~(same_device & same_meter)]
    in_time = bool(np.all(moment[1:][same_device[:] & same_meter] >= moment[:-1][same_device & same_meter]))
    keys = device * (int(meter.max()) + 1 if meter.size else 1) + meter
    together = np.unique(keys[starts]).size == int(starts.sum())
    if in_time and together:
        return frame.reset_index(drop=True)
    return frame.take(np.lexsort((moment, meter, device))).reset_index(drop=True)


def counter_steps(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Backward steps told apart as wrap or reset, and forward steps no engine can make (jump).

    A backward step is a Counter32 wrap when the counter was below 2^32 and the step it
    implies through 2^32 fits in the time between the readings at the fastest plausible
    engine speed; otherwise the counter was reset.
    """
    frame = _ordered(frame)
    starts = _series_starts(frame)
    value = frame["value"].to_numpy(dtype="float64")
    moment = _nanoseconds(frame["taken_at"])
    before = np.r_[np.nan, value[:-1]]
    before[starts] = np.nan
    minutes = np.maximum(np.diff(moment, prepend=moment[:1]) / 60e9, 1.0)
    allowed = minutes * settings.max_pages_per_minute
    with np.errstate(invalid="ignore"):
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
        at = np.flatnonzero(mask)
        if not at.size:
            continue
        rows, previous = frame.take(at), frame.take(at - 1)
        for row, earlier, stepped, limit in zip(_rows(rows), _rows(previous), step[at], allowed[at], strict=True):
            findings.append(
                Finding(
                    kind,
                    row["device"],
                    row["meter"],
                    _py(earlier["taken_at"]),
                    _py(row["taken_at"]),
                    {
                        "readings": [earlier["reading_id"], row["reading_id"]],
                        "values": [int(earlier["value"]), int(row["value"])],
                        "step": int(stepped),
                        "max_plausible_step": int(limit),
                    },
                )
            )
    return findings


def device_changes(frame: pd.DataFrame) -> list[Finding]:
    """Another serial answering at a known address (swap), a serial showing up at another site (moved).

    A swap is reported once, at the new serial's first reading from that address, so two
    devices behind one address (a print server) are not reported on every alternation.
    """
    readings = _one_row_per_reading(frame)
    # Only addresses several serials answered at, and serials seen at several sites, can tell of a change:
    # in a settled fleet that is a handful of rows, and only those are sorted.
    place = [_codes(readings[c]) for c in ("device", "site", "address")]
    moves = np.r_[True, np.any([c[1:] != c[:-1] for c in place], axis=0)]  # a row where one of them changes
    places = readings.loc[moves, ["site", "address", "device"]].drop_duplicates()
    serials_at = places.groupby(["site", "address"], observed=True)["device"].nunique()
    shared = serials_at[serials_at > 1].reset_index()["address"]
    sites_of = places.groupby("device", observed=True)["site"].nunique()
    travelled = sites_of[sites_of > 1].index
    involved = readings["device"].isin(travelled) | readings["address"].isin(shared)
    readings = readings[involved].sort_values("taken_at", kind="stable").reset_index(drop=True)
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
            Kind.SWAP,
            row["device"],
            None,
            _py(row["previous_at"]),
            _py(row["taken_at"]),
            {
                "readings": [row["previous_id"], row["reading_id"]],
                "address": row["address"],
                "site": row["site"],
                "previous_device": row["previous_device"],
            },
        )
        for row in _rows(swaps)
    )
    by_device = readings.groupby("device", sort=False, observed=True)
    moved = readings.assign(
        from_site=by_device["site"].shift(1),
        previous_id=by_device["reading_id"].shift(1),
        previous_at=by_device["taken_at"].shift(1),
    )
    moved = moved[moved["from_site"].notna() & (moved["site"] != moved["from_site"])]
    findings.extend(
        Finding(
            Kind.MOVED,
            row["device"],
            None,
            _py(row["previous_at"]),
            _py(row["taken_at"]),
            {
                "readings": [row["previous_id"], row["reading_id"]],
                "from_site": row["from_site"],
                "to_site": row["site"],
            },
        )
        for row in _rows(moved)
    )
    return findings


def daily_usage(frame: pd.DataFrame) -> pd.DataFrame:
    """Per device, meter and day with readings: pages per day since the previous day with readings.

    Usage across a gap is spread over the gap (a device asleep for a weekend does not
    spike on Monday); backward steps give no usage (they are wraps or resets, found apart).
    Columns: device, meter, day, value, reading_id and taken_at (the day's last reading),
    usage, series (an integer per device and meter).
    """
    frame = _ordered(frame)
    starts = _series_starts(frame)
    day = _nanoseconds(frame["taken_at"]) // _NS_PER_DAY
    last = np.flatnonzero(np.r_[starts[1:] | (day[1:] != day[:-1]), True])
    days = frame.take(last)[["device", "meter", "value", "reading_id", "taken_at"]].reset_index(drop=True)
    series = np.cumsum(starts)[last]
    first = np.r_[True, series[1:] != series[:-1]]
    value = days["value"].to_numpy(dtype="float64")
    step = np.diff(value, prepend=np.nan)
    gap = np.diff(day[last], prepend=0).astype("float64")
    step[first] = np.nan
    with np.errstate(invalid="ignore"):
        usage = np.where(step >= 0, step / gap, np.nan)
    days["day"] = pd.to_datetime(day[last] * _NS_PER_DAY, utc=True)
    days["usage"] = usage
    days["series"] = series
    return days


def _within_series(
    values: pd.Series, series: pd.Series, window: int, min_periods: int, how: str
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A rolling ``how`` over the rows before each one (not itself) of its own series."""
    rolled = getattr(values.groupby(series.to_numpy(), sort=False).rolling(window, min_periods=min_periods), how)()
    result = rolled.droplevel(0).sort_index().to_numpy(dtype="float64")
    return _shifted(result, series.to_numpy(), 1)


def _shifted(
    values: np.ndarray[Any, Any], series: np.ndarray[Any, Any], by: int
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """``values`` moved ``by`` rows later (negative: earlier) within each series; NaN where there is none."""
    out = np.full(values.shape, np.nan)
    if by > 0:
        out[by:] = values[:-by]
        out[by:][series[by:] != series[:-by]] = np.nan
    else:
        out[:by] = values[-by:]
        out[:by][series[:by] != series[-by:]] = np.nan
    return out


def spikes(frame: pd.DataFrame, settings: DetectorSettings, *, days: pd.DataFrame | None = None) -> list[Finding]:
    """A short excursion: one day far above the device's own level, with the days either side back near it.

    The level is the higher of the median of the last ``spike_window_days`` and the highest
    level the device held for two days running in the last ``spike_history_days`` (its busy
    weeks: a month-end rush seen before is its normal). A day far above that level is a
    spike only when the days before and after it are back below ``spike_return`` of the way
    up; a level that stays up is a level shift (informational, holds nothing). The latest
    day has no day after it yet: it is judged a spike until the next day says otherwise.
    """
    days = daily_usage(frame) if days is None else days
    if days.empty:
        return []
    usage, series = days["usage"], days["series"]
    window, minimum = settings.spike_window_days, settings.spike_min_history_days
    median = _within_series(usage, series, window, minimum, "median")
    deviation = pd.Series(np.abs(usage.to_numpy() - median), index=usage.index)
    # Deviations exist only once a median does: ask fewer of them (half the minimum history).
    mad = _within_series(deviation, series, window, max(1, minimum // 2), "median")
    held = usage.groupby(series.to_numpy(), sort=False).rolling(2, min_periods=2).min().droplevel(0).sort_index()
    busiest = _within_series(held, series, settings.spike_history_days, 1, "max")
    level = np.fmax(median, busiest)
    # A perfectly regular device has MAD 0: floor it so ordinary jitter is not a spike.
    spread = np.maximum(np.nan_to_num(mad) * _MAD_TO_SIGMA, level * 0.1 + 1.0)
    now = usage.to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        far = (
            ~np.isnan(median)
            & (now > level + settings.spike_mads * spread)
            & (now > level * settings.spike_min_ratio)
            & (now - level > settings.spike_min_pages)
        )
        back = level + settings.spike_return * (now - level)
        before, after = _shifted(now, series.to_numpy(), 1), _shifted(now, series.to_numpy(), -1)
        short = ~(before > back) & ~(after > back)
    findings = []
    for kind, mask in ((Kind.SPIKE, far & short), (Kind.LEVEL_SHIFT, far & ~short)):
        at = np.flatnonzero(mask)
        for row, used, typical, busy, prior, following in zip(
            _rows(days.take(at)), now[at], median[at], busiest[at], before[at], after[at], strict=True
        ):
            day = _py(row["day"])
            evidence = {
                "readings": [row["reading_id"]] if kind == Kind.SPIKE else [],
                "usage_per_day": round(float(used), 1),
                "median": round(float(typical), 1),
                "busiest_level": None if np.isnan(busy) else round(float(busy), 1),
                "day_before": None if np.isnan(prior) else round(float(prior), 1),
                "day_after": None if np.isnan(following) else round(float(following), 1),
            }
            findings.append(Finding(kind, row["device"], row["meter"], day, day + timedelta(days=1), evidence))
    return findings


def frozen(frame: pd.DataFrame, settings: DetectorSettings, *, days: pd.DataFrame | None = None) -> list[Finding]:
    """A total that stops moving for ``frozen_days`` on a device that keeps answering and used to print."""
    days = daily_usage(frame[frame["meter"] == "total"]) if days is None else days[days["meter"] == "total"]
    if days.empty:
        return []
    days = days.reset_index(drop=True)
    usage, series = days["usage"].to_numpy(dtype="float64"), days["series"].to_numpy()
    day = days["day"].to_numpy()
    still = np.nan_to_num(usage, nan=1.0) == 0
    edges = np.r_[True, (still[1:] != still[:-1]) | (series[1:] != series[:-1])]
    starts = np.flatnonzero(edges)
    ends = np.r_[starts[1:] - 1, still.size - 1]
    starts, ends = starts[still[starts]], ends[still[starts]]
    # Counted from the last day it moved, when that day is the same device's.
    moved = np.where((starts > 0) & (series[np.maximum(starts - 1, 0)] == series[starts]), starts - 1, starts)
    span = (day[ends] - day[moved]) / np.timedelta64(1, "D")
    typical = _within_series(days["usage"], days["series"], settings.spike_window_days, 1, "median")[starts]
    long_enough = (span >= settings.frozen_days) & ((ends - starts + 1) >= settings.frozen_days * 0.7)
    found = np.flatnonzero(long_enough & (typical > 0))
    first, last = days.take(starts[found]), days.take(ends[found])
    return [
        Finding(
            Kind.FROZEN,
            str(begin["device"]),
            "total",
            _py(begin["day"]),
            _py(end["taken_at"]),  # its last reading: the next one shows whether it moves again
            {"readings": [begin["reading_id"], end["reading_id"]], "days_without_change": int(days_still)},
        )
        for begin, end, days_still in zip(_rows(first), _rows(last), span[found], strict=True)
    ]


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
                    evidence = {
                        "readings": [ids[start - 1], ids[end]],
                        "total": int(values[end]),
                        "supply": name,
                        "level_from": int(np.maximum.accumulate(level)[worst]),
                        "level_to": int(level[worst]),
                        "hours": round((last - first) / np.timedelta64(1, "h"), 1),
                    }
                    findings.append(Finding(Kind.UNCOUNTED, str(device), "total", _py(first), _py(last), evidence))
                    break  # one finding per stand-still is enough to send someone
    return findings


def _true_runs(mask: np.ndarray[Any, np.dtype[np.bool_]]) -> list[tuple[int, int]]:
    """(first, last) index of every run of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype("int8"), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), (np.flatnonzero(edges == -1) - 1).tolist(), strict=True))


def inconsistent(frame: pd.DataFrame, settings: DetectorSettings) -> list[Finding]:
    """Meters that contradict each other over an interval: mono + colour != total, a part above its total.

    Judged on what each meter counted since a reading ``inconsistent_interval_hours`` earlier
    (or the device's first in the frame; or further back, until the total counted
    ``inconsistent_min_pages / inconsistent_tolerance`` pages, so a quiet weekend does not
    hide a fault found on Friday), with a tolerance of ``inconsistent_min_pages`` or
    ``inconsistent_tolerance`` of the total's count over that interval, whichever is more: a
    lifetime counter of 500,000 pages hides a day's fault in its own 1 %; a day's count
    shows it whatever the counter's size. Intervals with a step back are the wrap and reset
    detectors' to judge.
    """
    present = {str(m) for m in frame["meter"].unique()}
    parts = [m for m in _PARTS if m in present]
    if "total" not in present or not parts:  # one meter cannot contradict itself
        return []
    # Only devices with parts can contradict their total: a mono fleet costs nothing here.
    with_parts = frame.loc[frame["meter"].isin(parts).to_numpy(), "device"].unique()
    frame = _ordered(frame[frame["device"].isin(with_parts).to_numpy() & frame["meter"].isin(["total", *parts])])
    keys = pd.DataFrame({"device": _codes(frame["device"]), "moment": _nanoseconds(frame["taken_at"])})
    is_total = (frame["meter"] == "total").to_numpy()
    totals = frame[is_total].reset_index(drop=True)
    wide = keys[is_total].reset_index(drop=True).assign(total=totals["value"].to_numpy(dtype="float64"))
    for part in parts:  # each part's value of the same reading (same device, same moment)
        mine = (frame["meter"] == part).to_numpy()
        values = keys[mine].assign(**{part: frame.loc[mine, "value"].to_numpy(dtype="float64")})
        wide = wide.merge(
            values.drop_duplicates(["device", "moment"], keep="last"), how="left", on=["device", "moment"]
        )
    since = _interval_starts(wide["device"].to_numpy(), wide["moment"].to_numpy(), wide["total"].to_numpy(), settings)
    meters = ["total", *parts]
    now = {m: wide[m].to_numpy() for m in meters}
    counted = {m: now[m] - now[m][since] for m in meters}
    stepped_back = np.any([counted[m] < 0 for m in meters], axis=0)
    total = counted["total"]
    tolerance = np.maximum(total * settings.inconsistent_tolerance, settings.inconsistent_min_pages)
    problem = np.full(total.shape, "", dtype=object)
    off_by = np.zeros(total.shape)
    with np.errstate(invalid="ignore"):
        if {"mono", "color"} <= set(parts):
            difference = counted["mono"] + counted["color"] - total
            off = np.abs(difference) > tolerance
            problem[off], off_by[off] = "mono + color differs from total", difference[off]
        for part in parts:
            above = (problem == "") & (counted[part] > total + tolerance)
            problem[above], off_by[above] = f"{part} is above total", counted[part][above] - total[above]
    suspect = (problem != "") & ~stepped_back & (since != np.arange(total.size))
    # One finding per run of suspect readings (they are one episode): its readings, the latest numbers.
    device = wide["device"].to_numpy()
    edges = np.r_[True, (suspect[1:] != suspect[:-1]) | (device[1:] != device[:-1])]
    starts = np.flatnonzero(edges)
    ends = np.r_[starts[1:] - 1, suspect.size - 1]
    starts, ends = starts[suspect[starts]], ends[suspect[starts]]
    ids = totals["reading_id"]
    findings = []
    for first, at, row, before in zip(
        starts, ends, _rows(totals.take(ends)), _rows(totals.take(since[ends])), strict=True
    ):
        evidence = {
            "readings": ids.iloc[first : at + 1].tolist(),
            "problem": problem[at],
            "values": {m: int(now[m][at]) for m in meters if not np.isnan(now[m][at])},
            "since": _py(before["taken_at"]).isoformat(),
            "since_reading": before["reading_id"],
            "counted": {m: int(counted[m][at]) for m in meters if not np.isnan(counted[m][at])},
            "off_by": int(off_by[at]),
            "tolerance": int(tolerance[at]),
        }
        findings.append(
            Finding(
                Kind.INCONSISTENT,
                row["device"],
                "total",
                _py(totals["taken_at"].iloc[first]),
                _py(row["taken_at"]),
                evidence,
            )
        )
    return findings


def _interval_starts(
    device: np.ndarray[Any, Any],
    moment: np.ndarray[Any, Any],
    total: np.ndarray[Any, Any],
    settings: DetectorSettings,
) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Per reading (rows ordered by device and time), the row its meters are compared from.

    The reading ``inconsistent_interval_hours`` before (the device's first when younger), or the
    one the total's volume floor reaches back to, whichever is earlier.
    """
    since = np.empty(device.size, dtype="int64")
    interval = int(settings.inconsistent_interval_hours * 3600 * 1e9)
    volume = settings.inconsistent_min_pages / settings.inconsistent_tolerance if settings.inconsistent_tolerance else 0
    bounds = np.flatnonzero(np.r_[True, device[1:] != device[:-1], True])
    for first, end in itertools.pairwise(bounds):
        times = moment[first:end]
        by_time = np.searchsorted(times, times - interval, side="right") - 1
        highest = np.fmax.accumulate(total[first:end])  # counters only grow; a step back is another detector's
        by_volume = np.searchsorted(highest, total[first:end] - volume, side="right") - 1
        since[first:end] = first + np.maximum(np.minimum(by_time, by_volume), 0)
    return since


def usual_silence(frame: pd.DataFrame, *, days: int = 28) -> dict[str, float]:
    """Per device, the longest gap between readings in its last ``days`` days, in seconds.

    A printer that sleeps through nights and weekends is silent for 60-odd hours every
    week; that is its normal, and staleness is judged against it.
    """
    if frame.empty:
        return {}
    names, device, moment = device_moments(frame)
    first = np.flatnonzero(np.r_[True, device[1:] != device[:-1]])
    last_of = np.repeat(moment[np.r_[first[1:], device.size] - 1], np.diff(np.r_[first, device.size]))
    recent = moment >= last_of - days * _NS_PER_DAY
    gaps = np.diff(moment, prepend=moment[:1]).astype("float64")
    gaps[first] = np.nan  # a device's first reading has no gap before it
    gaps[~recent | np.r_[False, ~recent[:-1]]] = np.nan  # both ends of a gap within the window
    longest = np.fmax.reduceat(np.nan_to_num(gaps, nan=-1.0), first) / 1e9
    return {str(names[device[at]]): float(seconds) for at, seconds in zip(first, longest, strict=True) if seconds >= 0}


def device_moments(
    frame: pd.DataFrame,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, np.dtype[np.int64]], np.ndarray[Any, np.dtype[np.int64]]]:
    """Each reading once: (device names by code, device codes, moments in ns), ordered by device and time."""
    column = frame["device"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        device, names = _codes(column), column.cat.categories.to_numpy()
    else:
        codes, uniques = pd.factorize(column)
        device, names = codes.astype("int64"), np.asarray(uniques)
    moment = _nanoseconds(frame["taken_at"])
    in_order = np.all((device[1:] > device[:-1]) | ((device[1:] == device[:-1]) & (moment[1:] >= moment[:-1])))
    if not in_order:  # several meters a reading, or a frame as it came
        order = np.lexsort((moment, device))
        device, moment = device[order], moment[order]
    once = np.r_[True, (device[1:] != device[:-1]) | (moment[1:] != moment[:-1])]
    return names, device[once], moment[once]


def stale(
    last_seen: Iterable[tuple[str, datetime]],
    *,
    now: datetime,
    poll_interval_s: int,
    settings: DetectorSettings,
    usual: Mapping[str, float] | None = None,
) -> list[Finding]:
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
    # A reading's total stands for it; a device that reports no total is deduplicated by device and moment.
    is_total = (frame["meter"] == "total").to_numpy()
    rest = frame[~frame["device"].isin(frame.loc[is_total, "device"].unique()).to_numpy()]
    if rest.empty:
        return frame[is_total]
    seconds = _nanoseconds(rest["taken_at"]) // 10**9
    seconds -= seconds.min()
    keys = pd.Series(_codes(rest["device"]) * (int(seconds.max()) + 1) + seconds)
    return pd.concat([frame[is_total], rest[~keys.duplicated().to_numpy()]])


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as plain dicts (typed Any: the columns are checked by the code that made them)."""
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict("records")]


def _py(moment: Any) -> datetime:  # noqa: ANN401 - pandas and numpy timestamps alike
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return stamp.to_pydatetime()
