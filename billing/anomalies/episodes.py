"""Findings grouped into episodes: one per device x kind x meter x contiguous run of suspect readings.

A clerk decides once per problem, not once per reading: consecutive findings of one kind on
one device (no reading in between that the detector let pass) are one episode; the first
reading after its last finding shows the condition over and ends it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from billing.anomalies import Finding, Kind, KindTraits
from billing.anomalies.detectors import device_moments

# Per device, the moments of its readings (int64 nanoseconds since the epoch, UTC, sorted).
Moments = Mapping[str, np.ndarray[Any, np.dtype[np.int64]]]


@dataclass(frozen=True, slots=True)
class Episode(KindTraits):
    kind: Kind
    device: str
    meter: str | None
    findings: tuple[Finding, ...]  # in time order
    ended_at: datetime | None  # the first reading after the last finding: the condition is over

    @property
    def window_start(self) -> datetime:
        return self.findings[0].window_start

    @property
    def window_end(self) -> datetime:
        return max(f.window_end for f in self.findings)

    @property
    def evidence(self) -> dict[str, Any]:
        """The current evidence: the latest finding's."""
        return self.findings[-1].evidence

    @property
    def readings(self) -> list[str]:
        return list(
            dict.fromkeys(r for f in self.findings for r in f.evidence.get("readings", []) if isinstance(r, str))
        )


def reading_moments(frame: pd.DataFrame) -> dict[str, np.ndarray[Any, np.dtype[np.int64]]]:
    """Per device in ``frame`` (the detectors' frame), the sorted moments of its readings."""
    if frame.empty:
        return {}
    names, device, moment = device_moments(frame)
    cuts = np.flatnonzero(device[1:] != device[:-1]) + 1
    starts = np.r_[0, cuts]
    return {str(names[device[at]]): part for at, part in zip(starts, np.split(moment, cuts), strict=True)}


def _nanos(moment: datetime) -> int:
    return int(pd.Timestamp(moment).value)


def readings_between(moments: Moments, device: str, after: datetime, before: datetime) -> bool | None:
    """Whether ``device`` has a reading strictly between ``after`` and ``before``; None: no readings known."""
    mine = moments.get(device)
    if mine is None:
        return None
    low = np.searchsorted(mine, _nanos(after), side="right")
    high = np.searchsorted(mine, _nanos(before), side="left")
    return bool(high > low)


def first_reading_after(moments: Moments, device: str, moment: datetime) -> datetime | None:
    """The first reading of ``device`` after ``moment``: where a condition last seen then shows over."""
    mine = moments.get(device)
    if mine is None:
        return None
    at = int(np.searchsorted(mine, _nanos(moment), side="right"))
    return pd.Timestamp(int(mine[at]), tz="UTC").to_pydatetime() if at < mine.size else None


def continues(moments: Moments, device: str, last_seen: datetime, start: datetime) -> bool:
    """A finding starting at ``start`` continues an episode last seen at ``last_seen``.

    It does when the two overlap, or when no reading lies between them (the detector let
    none pass). Without readings to judge by, only an overlap continues an episode.
    """
    if start <= last_seen:
        return True
    return readings_between(moments, device, last_seen, start) is False


def episodes(findings: Iterable[Finding], moments: Moments) -> list[Episode]:
    """``findings`` as episodes, in time order per device, kind and meter."""
    runs: dict[tuple[Kind, str, str | None], list[tuple[list[Finding], datetime]]] = {}
    for finding in sorted(findings, key=lambda f: (f.kind, f.device, f.meter or "", f.window_start)):
        series = runs.setdefault((finding.kind, finding.device, finding.meter), [])
        if series and continues(moments, finding.device, series[-1][1], finding.window_start):
            run, last_seen = series[-1]
            run.append(finding)
            series[-1] = (run, max(last_seen, finding.window_end))
        else:
            series.append(([finding], finding.window_end))
    return [
        Episode(kind, device, meter, tuple(run), first_reading_after(moments, device, last_seen))
        for (kind, device, meter), series in runs.items()
        for run, last_seen in series
    ]
