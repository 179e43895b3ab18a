"""One detection run: new readings (and the window they need) through the detectors, into the store.

Incremental: only devices with readings received since the last run are read, each from
its earliest new reading minus the lookback the detectors need. Findings are stored as
episodes (see :mod:`billing.anomalies.episodes`): one seen before, or continuing a running
episode, updates that episode; a reading after an episode's last finding ends it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Final

from billing.anomalies import DetectorSettings, Kind, by_settings
from billing.anomalies.detectors import detect_all, stale, usual_silence
from billing.anomalies.episodes import reading_moments
from daemon.storage.anomalies import AnomalyRecord, AnomalyStore

WATERMARK: Final = "anomalies.received_until"
# Per device, its longest recent gap between readings: what "silent" means for it.
USUAL_SILENCE: Final = "anomalies.usual_silence"


async def detect_new(
    anomalies: AnomalyStore,
    settings: DetectorSettings,
    *,
    now: datetime,
    poll_interval_s: int,
    tuned: Mapping[str, DetectorSettings] | None = None,
) -> list[AnomalyRecord]:
    """Run every detector over what arrived since the last run; returns the anomalies it created.

    ``tuned``: devices judged by settings of their own (their site's or contract's knobs).
    """
    raw = await anomalies.get_state(WATERMARK)
    watermark = datetime.fromisoformat(raw) if raw else None
    lookback_days = max(max(k.spike_window_days, k.spike_history_days) for k in [settings, *(tuned or {}).values()]) + 2
    frame, newest = await anomalies.readings_frame(received_after=watermark, lookback_days=lookback_days)
    supplies = await anomalies.supplies_frame(frame)
    # pandas work is CPU-bound: keep it off the event loop.
    findings = await asyncio.to_thread(partial(detect_all, supplies=supplies, tuned=tuned), frame, settings)
    raw_usual = await anomalies.get_state(USUAL_SILENCE)
    usual = json.loads(raw_usual) if raw_usual else {}
    usual |= usual_silence(frame)
    last_seen = dict(await anomalies.last_seen())
    for knobs, devices in by_settings(last_seen, settings, tuned).items():
        findings += stale(
            [(device, last_seen[device]) for device in devices],
            now=now,
            poll_interval_s=poll_interval_s,
            settings=knobs,
            usual=usual,
        )
    moments = reading_moments(frame)
    created = await anomalies.record(findings, now=now, moments=moments)
    await anomalies.end_episodes(moments)
    await anomalies.withdraw_spikes([f for f in findings if f.kind == Kind.LEVEL_SHIFT], now=now)
    await anomalies.resolve_recovered_stale(now=now)
    if newest is not None:
        await anomalies.set_state(USUAL_SILENCE, json.dumps(usual))
        await anomalies.set_state(WATERMARK, newest.isoformat())
    return created
