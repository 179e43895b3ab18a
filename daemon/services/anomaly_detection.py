"""One detection run: new readings (and the window they need) through the detectors, into the store.

Incremental: only devices with readings received since the last run are read, each from
its earliest new reading minus the lookback the detectors need. Findings are stored as
episodes (see :mod:`billing.anomalies.episodes`): one seen before, or continuing a running
episode, updates that episode; a reading after an episode's last finding ends it.
The detection itself is pure (:mod:`billing.anomalies.engine`); this module feeds and stores it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime
from functools import partial
from typing import Final

from billing.anomalies import DetectorSettings, Kind
from billing.anomalies.engine import detect, lookback_days
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
    frame, newest = await anomalies.readings_frame(
        received_after=watermark, lookback_days=lookback_days(settings, tuned)
    )
    supplies = await anomalies.supplies_frame(frame)
    raw_usual = await anomalies.get_state(USUAL_SILENCE)
    last_seen = dict(await anomalies.last_seen())
    # pandas work is CPU-bound: keep it off the event loop.
    found = await asyncio.to_thread(
        partial(
            detect,
            supplies=supplies,
            last_seen=last_seen,
            usual=json.loads(raw_usual) if raw_usual else {},
            now=now,
            poll_interval_s=poll_interval_s,
            tuned=tuned,
        ),
        frame,
        settings,
    )
    created = await anomalies.record(found.findings, now=now, moments=found.moments)
    await anomalies.end_episodes(found.moments)
    await anomalies.withdraw_spikes([f for f in found.findings if f.kind == Kind.LEVEL_SHIFT], now=now)
    await anomalies.resolve_recovered_stale(now=now)
    if newest is not None:
        await anomalies.set_state(USUAL_SILENCE, json.dumps(found.usual))
        await anomalies.set_state(WATERMARK, newest.isoformat())
    return created
