"""Period usage from lifetime counters: boundary reads, estimates, segments, held readings.

For each requested device x meter x [start, end) the start and end reads are the readings
closest to the boundaries within a window (default ±3 days; on a tie the earlier one).
Without one, the boundary is estimated: the last read before it plus the device's recent
average daily volume times the days in between. Consecutive periods share their
boundary read, so no page is billed twice or lost between them.

Usage is counted step by step between the two reads: a Counter32 wrap counts through
2^32, any other backward step (a reset or a swap) starts a new segment. A reset a reviewer
confirmed (``restarts``: the row where the counter restarted, with the value it restarted
from, 0 unless the reviewer gave one) counts from there: 640 pages, a reset, a first read of
35 and 960 more bill 640 + 35 + 960 = 1,635. An unconfirmed backward step (a swap: another
device's counter) counts nothing for that one step. Each segment keeps its own read pair,
so end - start = usage on every pair. Held readings are left out as if never taken, and
mark the request. A boundary with no read within the window is an estimate, or the
device's first read after the boundary (an installation), and says which.
Everything is vectorised (numpy: one sort, then binary searches): a year of daily reads of
10,000 devices is one pass, not a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import numpy as np
import pandas as pd

from billing.anomalies import COUNTER32

READ_COLUMNS: Final = ["row_id", "device", "meter", "taken_at", "value"]
REQUEST_COLUMNS: Final = ["device", "meter", "start", "end"]
_SECONDS_PER_DAY: Final = 86_400.0
_TIME: Final = "datetime64[us, UTC]"
Ints = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True, slots=True)
class ReadRules:
    window: timedelta = timedelta(days=3)
    estimate_lookback: timedelta = timedelta(days=90)
    max_pages_per_minute: float = 500.0  # a backward step is a wrap only if the pages through 2^32 are plausible


Restarts = Mapping[int, int]  # reading row -> the value its counter restarted from (a confirmed reset)


def classify_steps(frame: pd.DataFrame, by: list[str], max_pages_per_minute: float) -> pd.DataFrame:
    """Per reading (sorted by ``by`` then time): the pages counted since the previous one, wrap, reset.

    ``frame`` needs the ``by`` columns, ``taken_at`` and ``value``; the result has the same
    index with ``counted`` (int64), ``wrap`` and ``reset`` (bool).
    """
    groups = frame.groupby(by, sort=False, observed=True)
    previous = groups["value"].shift(1).to_numpy(dtype="float64")
    first = np.isnan(previous)
    minutes = (frame["taken_at"] - groups["taken_at"].shift(1)).dt.total_seconds().to_numpy() / 60.0
    counted, wrap, reset = _steps(
        frame["value"].to_numpy(dtype="int64"),
        np.where(first, 0, previous).astype("int64"),
        first,
        np.where(np.isnan(minutes), 1.0, minutes),
        max_pages_per_minute,
    )
    return pd.DataFrame({"counted": counted, "wrap": wrap, "reset": reset}, index=frame.index)


def _steps(  # noqa: PLR0917 - the step's columns, the speed limit, the confirmed restarts
    value: Ints,
    previous: Ints,
    first: np.ndarray[Any, Any],
    minutes: np.ndarray[Any, Any],
    max_pages_per_minute: float,
    restart_from: Ints | None = None,
) -> tuple[Ints, np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Pages counted per step, and which steps are wraps and which resets: the one rule for both callers.

    A backward step is a Counter32 wrap when the pages through 2^32 fit the time since the
    previous read at ``max_pages_per_minute``; any other is a reset (or swap). A reset whose
    ``restart_from`` is known (>= 0: a confirmed reset) counts the pages since that value;
    an unconfirmed one counts 0 (another device's counter says nothing about these pages).
    """
    step = value - previous
    through_wrap = value + COUNTER32 - previous
    backward = ~first & (step < 0)
    wrap = backward & (previous < COUNTER32) & (through_wrap <= np.maximum(minutes, 1.0) * max_pages_per_minute)
    reset = backward & ~wrap
    restarted = np.zeros(len(value), dtype="int64")
    if restart_from is not None:
        restarted = np.where(restart_from >= 0, np.maximum(value - restart_from, 0), 0)
    counted: Ints = np.where(first, 0, np.where(reset, restarted, np.where(wrap, through_wrap, step)))
    return counted, wrap, reset


def period_usage(
    reads: pd.DataFrame,
    requests: pd.DataFrame,
    *,
    held: set[int] | frozenset[int] = frozenset(),
    rules: ReadRules | None = None,
    restarts: Restarts | None = None,
) -> pd.DataFrame:
    """Usage for every request row (its index kept), with the reads that bound it.

    ``reads``: READ_COLUMNS (``taken_at`` tz-aware UTC). ``requests``: REQUEST_COLUMNS with
    UTC timestamps. ``held``: row ids usage must leave out. ``restarts``: confirmed resets
    (row id -> the value the counter restarted from). Columns of the result: ``usage``,
    ``segments``, ``wraps``, ``held`` (count), ``no_reads``, ``segment_reads`` (None for one
    segment, else a read pair per segment: see ``_Series.segment_pairs``), and for both
    ``start_`` and ``end_``: ``row_id`` (-1 when estimated from nothing), ``value``, ``at``,
    ``estimated``, ``basis_row`` (the read an estimate starts from), ``first_read`` (no read
    within the window and none before: the device's first read after the boundary).
    """
    rules = rules or ReadRules()
    codes = _Codes(reads, requests)
    taken = _micros(reads["taken_at"])
    bounds = {side: _micros(requests[side]) for side in ("start", "end")}
    is_held = reads["row_id"].isin(held).to_numpy() if held else np.zeros(len(reads), dtype=bool)
    restart_from = np.full(len(reads), -1, dtype="int64")
    if restarts:  # few: the confirmed resets
        restart_from = reads["row_id"].map(dict(restarts)).fillna(-1).to_numpy("int64")
    kept = ~is_held
    series = _Series.build(
        codes.read_keys[kept],
        taken[kept],
        reads["value"].to_numpy("int64")[kept],
        reads["row_id"].to_numpy("int64")[kept],
        restart_from[kept],
        rules,
    )
    result = pd.DataFrame(index=requests.index)
    found = {}
    for side in ("start", "end"):
        found[side] = series.read_at(codes.request_keys, bounds[side], rules)
        for column in ("row_id", "value", "estimated", "basis_row", "first_read"):
            result[f"{side}_{column}"] = found[side][column]
        result[f"{side}_at"] = pd.to_datetime(found[side]["at"], unit="us", utc=True)
    start, end = found["start"], found["end"]
    result["no_reads"] = end["missing"]
    result["usage"] = np.maximum(end["cum"] - start["cum"], 0)
    result["segments"] = end["resets"] - start["resets"] + 1
    result["wraps"] = end["wraps"] - start["wraps"]
    result["held"] = _held_counts(
        codes.read_keys[is_held], taken[is_held], codes.request_keys, bounds["start"], bounds["end"], rules
    )
    result["segment_reads"] = series.segment_pairs(start, end, result["segments"].to_numpy())
    for side in ("start", "end"):
        result[f"{side}_value"] = result[f"{side}_value"].where(~found[side]["missing"])
    return result


def _micros(column: pd.Series) -> np.ndarray[Any, np.dtype[np.int64]]:
    """UTC microseconds since the epoch, whatever the column's resolution."""
    if column.dtype != _TIME:
        column = pd.to_datetime(column, utc=True).astype(_TIME)
    values: np.ndarray[Any, np.dtype[np.int64]] = column.array.asi8
    return values


class _Series:
    """Every kept read sorted by device x meter then time, with its running count of pages, resets, wraps.

    (key, time) is packed into one integer: one argsort orders the reads and a binary search
    finds a boundary, with no second sort by time and no per-row Python.
    """

    def __init__(self, packing: _Packing, packed: Ints, columns: dict[str, Ints]) -> None:
        self.packing, self.packed = packing, packed
        self.key, self.time, self.value, self.row = columns["key"], columns["time"], columns["value"], columns["row"]
        self.cum, self.resets, self.wraps = columns["cum"], columns["resets"], columns["wraps"]
        self.reset, self.restart_from = columns["reset"], columns["restart_from"]

    @classmethod
    def build(  # noqa: PLR0917 - the columns of the kept reads, and the rules
        cls, key: Ints, time_us: Ints, value: Ints, row: Ints, restart_from: Ints, rules: ReadRules
    ) -> _Series:
        packing = _Packing.covering(key, time_us)
        packed = packing.pack(key, time_us)
        order = np.argsort(packed, kind="stable")
        packed, key, time_us, value, row = packed[order], key[order], time_us[order], value[order], row[order]
        restart_from = restart_from[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        previous = np.empty_like(value)
        previous[:1] = 0
        previous[1:] = value[:-1]
        minutes = np.ones(len(key), dtype="float64")
        minutes[1:] = (time_us[1:] - time_us[:-1]) / 60e6
        counted, wrap, reset = _steps(value, previous, first, minutes, rules.max_pages_per_minute, restart_from)
        starts = np.maximum.accumulate(np.where(first, np.arange(len(key)), 0)) if len(key) else np.zeros(0, "int64")
        columns = {
            "key": key,
            "time": time_us,
            "value": value,
            "row": row,
            "cum": _grouped_cumsum(counted, starts),
            "resets": _grouped_cumsum(reset, starts),
            "wraps": _grouped_cumsum(wrap, starts),
            "reset": reset,
            "restart_from": restart_from,
        }
        return cls(packing, packed, columns)

    def pack(self, key: Ints, time_us: Ints) -> Ints:
        return self.packing.pack(key, time_us)

    def read_at(self, key: Ints, at: Ints, rules: ReadRules) -> dict[str, Any]:
        """The read standing for each (key, time), and ``missing`` where there is none.

        The nearest within the window (the earlier on a tie), else estimated from the last
        read before, else the first read after (a device that started later).
        """
        n = len(self.key)
        if not n:
            return _nothing_found(at)
        window = int(rules.window.total_seconds() * 1e6)
        position = np.searchsorted(self.packed, self.pack(key, at), side="left")
        after = np.minimum(position, n - 1)
        before = np.maximum(position - 1, 0)
        has_after = (position < n) & (self.key[after] == key)
        has_before = (position > 0) & (self.key[before] == key)
        gap_before = np.where(has_before, at - self.time[before], np.iinfo(np.int64).max)
        gap_after = np.where(has_after, self.time[after] - at, np.iinfo(np.int64).max)
        take_before = has_before & (gap_before <= window) & (gap_before <= gap_after)
        take_after = ~take_before & has_after & (gap_after <= window)
        found = take_before | take_after
        estimate = ~found & has_before
        first_after = ~found & ~has_before & has_after
        index = np.where(take_before | estimate, before, after)
        extra = self._estimated_pages(index, key, at, rules) * estimate
        missing = ~(found | estimate | first_after)
        real = found | first_after
        return {
            "index": np.where(missing, -1, index),
            "row_id": np.where(real, self.row[index], -1),
            "value": np.where(missing, 0, self.value[index] + extra),
            "at": np.where(real, self.time[index], at),
            "estimated": estimate,
            "first_read": first_after,
            "basis_row": np.where(missing, -1, self.row[index]),
            "cum": np.where(missing, 0, self.cum[index] + extra),
            "resets": np.where(missing, 0, self.resets[index]),
            "wraps": np.where(missing, 0, self.wraps[index]),
            "missing": missing,
        }

    def segment_pairs(self, start: dict[str, Any], end: dict[str, Any], segments: Ints) -> list[Any]:
        """Per request, None for one segment, else one read pair per segment (the few resets, in Python).

        A pair is ``{"start": read, "end": read, "pages": n}`` with a read as ``{"value", "at",
        "estimated", "restart"}``: a segment after a confirmed reset starts at the value the
        counter restarted from (``restart``: true), after an unconfirmed one at its first read.
        Pages are the counted pages (a wrap inside a segment adds 2^32 to end - start).
        """
        out: list[Any] = [None] * len(segments)
        for i in (int(k) for k in np.flatnonzero(segments > 1)):
            first, last = int(start["index"][i]), int(end["index"][i])
            cuts = [j for j in range(first + 1, last + 1) if self.reset[j]]
            reads = [_boundary(start, i)]
            cums = [int(start["cum"][i])]
            for j in cuts:
                reads.append(self._read(j - 1))
                cums.append(int(self.cum[j - 1]))
                confirmed = bool(self.restart_from[j] >= 0)
                value = int(self.restart_from[j]) if confirmed else int(self.value[j])
                reads.append({"value": value, "at": _iso(int(self.time[j])), "estimated": False, "restart": confirmed})
                cums.append(int(self.cum[j - 1]) if confirmed else int(self.cum[j]))
            reads.append(_boundary(end, i))
            cums.append(int(end["cum"][i]))
            out[i] = [
                {"start": reads[k], "end": reads[k + 1], "pages": cums[k + 1] - cums[k]}
                for k in range(0, len(reads), 2)
            ]
        return out

    def _read(self, j: int) -> dict[str, Any]:
        return {"value": int(self.value[j]), "at": _iso(int(self.time[j])), "estimated": False, "restart": False}

    def _estimated_pages(self, last: Ints, key: Ints, at: Ints, rules: ReadRules) -> Ints:
        """The recent daily average times the days from the last read to the boundary, rounded half-up."""
        lookback = int(rules.estimate_lookback.total_seconds() * 1e6)
        oldest = np.searchsorted(self.packed, self.pack(key, self.time[last] - lookback), side="left")
        oldest = np.minimum(np.maximum(oldest, 0), len(self.key) - 1)
        span_days = (self.time[last] - self.time[oldest]) / (_SECONDS_PER_DAY * 1e6)
        pages = (self.cum[last] - self.cum[oldest]).astype("float64")
        per_day = np.divide(pages, span_days, out=np.zeros(len(key)), where=span_days > 0)
        gap_days = (at - self.time[last]) / (_SECONDS_PER_DAY * 1e6)
        extra: Ints = np.floor(per_day * np.maximum(gap_days, 0) + 0.5).astype("int64")
        return extra


def _boundary(found: dict[str, Any], i: int) -> dict[str, Any]:
    return {
        "value": int(found["value"][i]),
        "at": _iso(int(found["at"][i])),
        "estimated": bool(found["estimated"][i]),
        "first_read": bool(found["first_read"][i]),
        "restart": False,
    }


def _iso(micros: int) -> str:
    return pd.Timestamp(micros, unit="us", tz="UTC").isoformat()


def _nothing_found(at: Ints) -> dict[str, Any]:
    """``read_at`` when no reading is kept at all: every boundary is missing."""
    none, zero = np.full(len(at), -1, dtype="int64"), np.zeros(len(at), dtype="int64")
    no = np.zeros(len(at), dtype=bool)
    return {
        "index": none,
        "row_id": none,
        "value": zero,
        "at": at,
        "estimated": no,
        "first_read": no,
        "basis_row": none,
        "cum": zero,
        "resets": zero,
        "wraps": zero,
        "missing": ~no,
    }


@dataclass(frozen=True, slots=True)
class _Packing:
    """(key, time) as one ordered int64: key x span + time since the origin (ms if µs would overflow)."""

    origin: int
    scale: int
    span: int

    @classmethod
    def covering(cls, key: Ints, time_us: Ints) -> _Packing:
        keys = int(key.max()) + 1 if len(key) else 1
        origin = int(time_us.min()) if len(time_us) else 0
        extent = int(time_us.max()) - origin + 3 if len(time_us) else 3
        scale = 1 if keys * extent < 2**62 else 1000
        return cls(origin, scale, (2**62) // keys)

    def pack(self, key: Ints, time_us: Ints) -> Ints:
        # Times outside the stored span are clipped to just before or after it: order is kept.
        relative = np.clip((time_us - self.origin) // self.scale, -1, self.span - 2) + 1
        packed: Ints = key * self.span + relative
        return packed


def _grouped_cumsum(values: np.ndarray[Any, Any], starts: Ints) -> Ints:
    """Running sum within each group (groups are contiguous; ``starts`` gives each row its group's first row)."""
    total = np.cumsum(values.astype("int64"))
    before_group = total[starts] - values.astype("int64")[starts]
    result: Ints = total - before_group
    return result


class _Codes:
    """device x meter as one int64 key, which packs with the time into one sortable integer.

    Built from the distinct values only (a categorical's categories as they are), so the
    millions of reads are never turned into Python strings.
    """

    def __init__(self, reads: pd.DataFrame, requests: pd.DataFrame) -> None:
        self._devices = _distinct(reads["device"], requests["device"])
        self._meter_index = _distinct(reads["meter"], requests["meter"])
        self._meters = len(self._meter_index)
        self.read_keys = self.keys(reads)
        self.request_keys = self.keys(requests)

    def keys(self, frame: pd.DataFrame) -> np.ndarray[Any, np.dtype[np.int64]]:
        device = _codes(frame["device"], self._devices)
        meter = _codes(frame["meter"], self._meter_index)
        keys: np.ndarray[Any, np.dtype[np.int64]] = device * self._meters + meter
        return keys


def _distinct(*columns: pd.Series) -> pd.Index:
    values: list[Any] = []
    for column in columns:
        uniques = column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else pd.unique(column)
        values.extend(uniques.tolist())
    index: pd.Index = pd.Index(sorted(set(values), key=str))
    return index


def _codes(column: pd.Series, index: pd.Index) -> np.ndarray[Any, np.dtype[np.int64]]:
    if isinstance(column.dtype, pd.CategoricalDtype):
        by_category = index.get_indexer(column.cat.categories).astype("int64")
        return by_category[column.cat.codes.to_numpy()]
    found: np.ndarray[Any, np.dtype[np.int64]] = index.get_indexer(pd.Index(column)).astype("int64")
    return found


def _held_counts(  # noqa: PLR0917 - two columns of held reads, three of requests, the rules
    held_keys: Ints, held_times: Ints, keys: Ints, starts: Ints, ends: Ints, rules: ReadRules
) -> Ints:
    """Held readings inside each request's span (boundaries widened by the window)."""
    counts: Ints = np.zeros(len(keys), dtype="int64")
    if not len(held_keys):
        return counts
    window = int(rules.window.total_seconds() * 1e6)
    for key in np.unique(held_keys):  # few: only the readings of open anomalies
        times = np.sort(held_times[held_keys == key])
        mine = keys == key
        lo = np.searchsorted(times, starts[mine] - window, side="left")
        hi = np.searchsorted(times, ends[mine] + window, side="right")
        counts[mine] = hi - lo
    return counts
