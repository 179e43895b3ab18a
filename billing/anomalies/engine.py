"""One detection pass over plain data: the readings frame in, the findings out (no store).

The service :mod:`daemon.services.anomaly_detection` reads the frame, the supplies and the
state this needs from the store, runs :func:`detect` and stores what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from billing.anomalies import DetectorSettings, Finding, by_settings
from billing.anomalies.detectors import detect_all, stale, usual_silence
from billing.anomalies.episodes import reading_moments


def lookback_days(settings: DetectorSettings, tuned: Mapping[str, DetectorSettings] | None = None) -> int:
    """How many days before the earliest new reading the detectors need to see."""
    return max(max(k.spike_window_days, k.spike_history_days) for k in [settings, *(tuned or {}).values()]) + 2


@dataclass(frozen=True, slots=True)
class Detection:
    findings: list[Finding]
    # Per device, its longest recent gap between readings, merged with what was known before.
    usual: dict[str, float]
    moments: dict[str, np.ndarray[Any, np.dtype[np.int64]]]


def detect(
    frame: pd.DataFrame,
    settings: DetectorSettings,
    *,
    supplies: pd.DataFrame | None,
    last_seen: Mapping[str, datetime],
    usual: Mapping[str, float],
    now: datetime,
    poll_interval_s: int,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> Detection:
    """Every detector over ``frame``, and staleness over ``last_seen``.

    ``tuned``: devices judged by settings of their own (their site's or contract's knobs).
    """
    findings = detect_all(frame, settings, supplies=supplies, tuned=tuned)
    merged = dict(usual) | usual_silence(frame)
    for knobs, devices in by_settings(last_seen, settings, tuned).items():
        findings += stale(
            [(device, last_seen[device]) for device in devices],
            now=now,
            poll_interval_s=poll_interval_s,
            settings=knobs,
            usual=merged,
        )
    return Detection(findings, merged, reading_moments(frame))
