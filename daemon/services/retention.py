"""The retention use case: raw readings past `storage.raw_retention_months` thinned, counted and logged."""

from __future__ import annotations

from datetime import datetime

import structlog

from daemon.services.metrics import Metrics
from daemon.storage.repository import Store
from daemon.storage.retention import Pruned, cutoff, prune_readings

log = structlog.get_logger(__name__)


async def thin_old_readings(store: Store, months: int, metrics: Metrics | None, now: datetime) -> Pruned:
    before = cutoff(now, months)
    pruned = await prune_readings(store, before)
    if pruned.days:
        log.info("readings_pruned", before=before.isoformat(), days=pruned.days, meter_values=pruned.rows)
        if metrics is not None:
            metrics.meter_values_pruned.inc(pruned.rows)
    return pruned
