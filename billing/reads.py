"""Period usage from lifetime counters: boundary reads, estimates, segments, held readings.

For each requested device x meter x [start, end) the start and end reads are the readings
closest to the boundaries within a window (default ±3 days; on a tie the earlier one).
Without one, the boundary is estimated: the last read before it plus the device's recent
average daily volume times the days in between. Consecutive periods share their
boundary read, so no page is billed twice or lost between them.

Usage is counted step by step between the two reads: a Counter32 wrap counts through
2^32, any other backward step (a reset or a swap) starts a new segment and counts nothing
for that one step. Held readings are left out as if never taken, and mark the request.
Everything is vectorised (``merge_asof``): a year of daily reads of 10,000 devices is one
pass, not a loop.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class ReadRules:
    window: timedelta = timedelta(days=3)
    estimate_lookback: timedelta = timedelta(days=90)
    max_pages_per_minute: float = 500.0  # a backward step is a wrap only if the pages through 2^32 are plausible


def classify_steps(frame: pd.DataFrame, by: list[str], max_pages_per_minute: float) -> pd.DataFrame:
    """Per reading (sorted by ``by`` then time): the pages counted since the previous one, wrap, reset.

    ``frame`` needs the ``by`` columns, ``taken_at`` and ``value``; the result has the same
    index with ``counted`` (int64), ``wrap`` and ``reset`` (bool).
    """
    groups = frame.groupby(by, sort=False, observed=True)
    value = frame["value"].to_numpy(dtype="int64")
    previous = groups["value"].shift(1).to_numpy(dtype="float64")
    first = np.isnan(previous)
    previous_int = np.where(first, 0, previous).astype("int64")
    minutes = (frame["taken_at"] - groups["taken_at"].shift(1)).dt.total_seconds().to_numpy() / 60.0
    minutes = np.where(np.isnan(minutes), 1.0, np.maximum(minutes, 1.0))
    step = value - previous_int
    through_wrap = value + COUNTER32 - previous_int
    backward = ~first & (step < 0)
    wrap = backward & (previous_int < COUNTER32) & (through_wrap <= minutes * max_pages_per_minute)
    reset = backward & ~wrap
    counted = np.where(first | reset, 0, np.where(wrap, through_wrap, step))
    return pd.DataFrame({"counted": counted, "wrap": wrap, "reset": reset}, index=frame.index)


def period_usage(
    reads: pd.DataFrame, requests: pd.DataFrame, *, held: set[int] | frozenset[int] = frozenset(),
    rules: ReadRules | None = None,
) -> pd.DataFrame:  # fmt: skip
    """Usage for every request row (its index kept), with the reads that bound it.

    ``reads``: READ_COLUMNS (``taken_at`` tz-aware UTC). ``requests``: REQUEST_COLUMNS with
    UTC timestamps. ``held``: row ids usage must leave out. Columns of the result:
    ``usage``, ``segments``, ``wraps``, ``held`` (count), ``no_reads``, and for both ``start_``
    and ``end_``: ``row_id`` (-1 when estimated from nothing), ``value``, ``at``, ``estimated``,
    ``basis_row`` (the read an estimate starts from).
    """
    rules = rules or ReadRules()
    # merge_asof wants one time resolution on both sides; the store's is microseconds.
    if reads["taken_at"].dtype != _TIME:
        reads = reads.assign(taken_at=reads["taken_at"].astype(_TIME))
    requests = requests.assign(start=requests["start"].astype(_TIME), end=requests["end"].astype(_TIME))
    codes = _Codes(reads, requests)
    is_held = reads["row_id"].isin(held).to_numpy() if held else np.zeros(len(reads), dtype=bool)
    kept = _cumulative(reads[~is_held], codes, rules)
    points = _points(requests, codes)
    at_points = _read_at(points, kept, rules)
    result = requests[[]].copy()
    for side in ("start", "end"):
        joined = requests[["device", "meter", side]].assign(key=codes.request_keys, t=requests[side])
        found = joined[["key", "t"]].merge(at_points, on=["key", "t"], how="left")
        found.index = requests.index
        for column in ("row_id", "value", "at", "estimated", "basis_row", "cum", "resets", "wraps"):
            result[f"{side}_{column}"] = found[column]
    result["no_reads"] = result["end_cum"].isna()
    cum_start = result["start_cum"].fillna(0).astype("int64")
    cum_end = result["end_cum"].fillna(0).astype("int64")
    result["usage"] = np.maximum(cum_end - cum_start, 0)
    result["segments"] = (result["end_resets"].fillna(0) - result["start_resets"].fillna(0)).astype("int64") + 1
    result["wraps"] = (result["end_wraps"].fillna(0) - result["start_wraps"].fillna(0)).astype("int64")
    result["held"] = _held_counts(reads[is_held], requests, codes, rules)
    for side in ("start", "end"):
        result[f"{side}_row_id"] = result[f"{side}_row_id"].fillna(-1).astype("int64")
        result[f"{side}_basis_row"] = result[f"{side}_basis_row"].fillna(-1).astype("int64")
        result[f"{side}_estimated"] = result[f"{side}_estimated"].fillna(value=False).astype(bool)
    return result.drop(columns=[f"{s}_{c}" for s in ("start", "end") for c in ("cum", "resets", "wraps")])


class _Codes:
    """device x meter as one int64 key: merge_asof's ``by`` is fastest on a single integer column.

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


def _cumulative(kept: pd.DataFrame, codes: _Codes, rules: ReadRules) -> pd.DataFrame:
    keys = codes.keys(kept)
    frame = kept.assign(key=keys).sort_values(["key", "taken_at"], kind="stable")
    steps = classify_steps(frame, ["key"], rules.max_pages_per_minute)
    grouped = steps.groupby(frame["key"], sort=False)
    out = pd.DataFrame(
        {
            "key": frame["key"].to_numpy(),
            "taken_at": frame["taken_at"].array,
            "row_id": frame["row_id"].to_numpy(),
            "value": frame["value"].to_numpy(dtype="int64"),
            "cum": grouped["counted"].cumsum().to_numpy(),
            "resets": grouped["reset"].cumsum().to_numpy(),
            "wraps": grouped["wrap"].cumsum().to_numpy(),
        }
    )
    return out.sort_values("taken_at", kind="stable", ignore_index=True)


def _points(requests: pd.DataFrame, codes: _Codes) -> pd.DataFrame:
    both = pd.concat(
        [
            pd.DataFrame({"key": codes.request_keys, "t": requests["start"].array}),
            pd.DataFrame({"key": codes.request_keys, "t": requests["end"].array}),
        ],
        ignore_index=True,
    )
    return both.drop_duplicates().sort_values("t", kind="stable", ignore_index=True)


def _read_at(points: pd.DataFrame, kept: pd.DataFrame, rules: ReadRules) -> pd.DataFrame:
    """The read standing for each (key, t): nearest within the window, else estimated, else the first after."""
    reads = kept[["key", "taken_at", "row_id", "value", "cum", "resets", "wraps"]]
    nearest = pd.merge_asof(points, reads, left_on="t", right_on="taken_at", by="key", direction="nearest",
                            tolerance=pd.Timedelta(rules.window), allow_exact_matches=True)  # fmt: skip
    nearest = nearest.rename(columns={"taken_at": "at"})
    nearest["estimated"] = False
    nearest["basis_row"] = nearest["row_id"]
    missing = nearest["row_id"].isna()
    if missing.any():
        estimated = _estimate(points[missing.to_numpy()], reads, rules)
        nearest = pd.concat([nearest[~missing], estimated], ignore_index=True)
    return nearest


def _estimate(points: pd.DataFrame, reads: pd.DataFrame, rules: ReadRules) -> pd.DataFrame:
    """Last read before the boundary plus the recent daily average times the days since.

    A boundary with no read before it (a device that started later) takes the first read after it.
    """
    last = pd.merge_asof(points, reads, left_on="t", right_on="taken_at", by="key", direction="backward")
    history = last.assign(since=last["taken_at"] - pd.Timedelta(rules.estimate_lookback))
    has_last = history["row_id"].notna().to_numpy()
    older = pd.merge_asof(
        history[has_last][["key", "since"]].reset_index().sort_values("since", kind="stable"),
        reads[["key", "taken_at", "cum"]].rename(columns={"taken_at": "old_at", "cum": "old_cum"}),
        left_on="since", right_on="old_at", by="key", direction="forward",
    ).set_index("index")  # fmt: skip
    span_days = (history["taken_at"] - older["old_at"].reindex(history.index)).dt.total_seconds() / _SECONDS_PER_DAY
    per_day = ((history["cum"] - older["old_cum"].reindex(history.index)) / span_days).where(span_days > 0, 0.0)
    gap_days = (history["t"] - history["taken_at"]).dt.total_seconds() / _SECONDS_PER_DAY
    extra = np.floor(per_day.fillna(0.0) * gap_days + 0.5)
    estimated = pd.DataFrame(
        {
            "key": history["key"],
            "t": history["t"],
            "at": history["t"],
            "row_id": np.nan,
            "value": history["value"] + extra,
            "cum": history["cum"] + extra,
            "resets": history["resets"],
            "wraps": history["wraps"],
            "estimated": True,
            "basis_row": history["row_id"],
        }
    )[has_last]
    later = points[~has_last]
    if later.empty:
        return estimated
    first = pd.merge_asof(later, reads, left_on="t", right_on="taken_at", by="key", direction="forward")
    first = first.rename(columns={"taken_at": "at"}).assign(estimated=False, basis_row=first["row_id"])
    return pd.concat([estimated, first], ignore_index=True)


def _held_counts(held: pd.DataFrame, requests: pd.DataFrame, codes: _Codes, rules: ReadRules) -> pd.Series:
    """Held readings inside each request's span (boundaries widened by the window)."""
    counts = pd.Series(0, index=requests.index, dtype="int64")
    if held.empty:
        return counts
    spans = pd.DataFrame({"key": codes.request_keys, "lo": requests["start"] - pd.Timedelta(rules.window),
                          "hi": requests["end"] + pd.Timedelta(rules.window), "request": requests.index})  # fmt: skip
    hits = spans.merge(pd.DataFrame({"key": codes.keys(held), "taken_at": held["taken_at"].array}), on="key")
    inside = hits[(hits["taken_at"] >= hits["lo"]) & (hits["taken_at"] <= hits["hi"])]
    return counts.add(inside.groupby("request").size(), fill_value=0).astype("int64")
