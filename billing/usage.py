"""Usage per device and meter over a period, from stored readings.

Wraps are continued, resets start a new segment, held readings are left out (they stay
out until a person resolves their anomaly).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from billing.anomalies import DetectorSettings
from billing.reads import classify_steps

USAGE_COLUMNS = ["device", "meter", "unit", "first_value", "last_value", "usage", "segments", "wraps", "held"]


def usage(
    frame: pd.DataFrame, *, start: datetime, end: datetime, held: set[str], settings: DetectorSettings | None = None
) -> pd.DataFrame:
    """Pages (or images, inches …) per device and meter between ``start`` (inclusive) and ``end`` (exclusive).

    The last reading before ``start`` is the baseline. A backward step that is a Counter32
    wrap counts through 2^32; any other backward step starts a new segment and counts
    nothing for that step (the pages of one poll interval at most). Readings in ``held``
    are left out as if never taken, and counted in ``held``.
    """
    settings = settings or DetectorSettings()
    if frame.empty:
        return pd.DataFrame(columns=USAGE_COLUMNS)
    frame = frame.sort_values(["device", "meter", "taken_at"], kind="stable")
    is_held = frame["reading_id"].isin(held)
    held_counts = (
        frame[is_held & (frame["taken_at"] >= start) & (frame["taken_at"] < end)].groupby(["device", "meter"]).size()
    )
    kept = frame[~is_held & (frame["taken_at"] < end)]
    before = kept[kept["taken_at"] < start].groupby(["device", "meter"]).tail(1)
    period = pd.concat([before, kept[kept["taken_at"] >= start]]).sort_values(["device", "meter", "taken_at"])
    steps = classify_steps(period, ["device", "meter"], settings.max_pages_per_minute)
    period = period.assign(counted=steps["counted"], wrap=steps["wrap"], reset=steps["reset"])
    summary = period.groupby(["device", "meter"], sort=True).agg(
        unit=("unit", "last"),
        first_value=("value", "first"),
        last_value=("value", "last"),
        usage=("counted", "sum"),
        segments=("reset", "sum"),
        wraps=("wrap", "sum"),
    )
    summary["segments"] += 1
    summary["usage"] = summary["usage"].astype("int64")
    summary["held"] = held_counts.reindex(summary.index, fill_value=0).astype("int64")
    return summary.reset_index()[USAGE_COLUMNS]
