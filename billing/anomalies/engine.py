"""One detection run: new readings (and the window they need) through the detectors, into the store.

Incremental: only devices with readings received since the last run are read, each from
its earliest new reading minus the lookback the detectors need. Idempotent: a finding
already recorded (same kind, device, meter and window start) is not recorded again.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Final

from billing.anomalies import DetectorSettings
from billing.anomalies.detectors import detect_all, stale, uncounted, usual_silence
from daemon.storage.anomalies import AnomalyRecord, AnomalyStore

WATERMARK: Final = "anomalies.received_until"
# Per device, its longest recent gap between readings: what "silent" means for it.
USUAL_SILENCE: Final = "anomalies.usual_silence"


async def detect_new(
    anomalies: AnomalyStore, settings: DetectorSettings, *, now: datetime, poll_interval_s: int
) -> list[AnomalyRecord]:
    """Run every detector over what arrived since the last run; returns the anomalies it created."""
    raw = await anomalies.get_state(WATERMARK)
    watermark = datetime.fromisoformat(raw) if raw else None
    lookback_days = settings.spike_window_days + 2
    frame, newest = await anomalies.readings_frame(received_after=watermark, lookback_days=lookback_days)
    supplies = await anomalies.supplies_frame(frame)
    # pandas work is CPU-bound: keep it off the event loop.
    findings = await asyncio.to_thread(detect_all, frame, settings)
    findings += await asyncio.to_thread(uncounted, frame, supplies, settings)
    raw_usual = await anomalies.get_state(USUAL_SILENCE)
    usual = json.loads(raw_usual) if raw_usual else {}
    usual |= usual_silence(frame)
    findings += stale(
        await anomalies.last_seen(), now=now, poll_interval_s=poll_interval_s, settings=settings, usual=usual
    )
    created = await anomalies.record(findings, now=now)
    await anomalies.resolve_recovered_stale(now=now)
    if newest is not None:
        await anomalies.set_state(USUAL_SILENCE, json.dumps(usual))
        await anomalies.set_state(WATERMARK, newest.isoformat())
    return created
