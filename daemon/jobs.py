"""The daemon's periodic jobs, built from settings: what runs, how often."""

from __future__ import annotations

from daemon.metrics import Metrics
from daemon.pipeline import Pipeline
from daemon.scheduler import Job
from daemon.settings import Settings
from daemon.storage.repository import Store


def build_jobs(settings: Settings, store: Store, pipeline: Pipeline, metrics: Metrics) -> list[Job]:
    """Every job this configuration asks for."""
    del pipeline  # the poll job (SNMP collector) emits into it

    async def maintain_store() -> None:
        await store.maintain()
        metrics.devices.set(await store.count_devices())

    return [Job("maintenance", settings.scheduler.maintenance_interval_s, maintain_store)]
