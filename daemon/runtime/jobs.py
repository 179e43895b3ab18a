"""The daemon's periodic jobs, built from settings: what runs, how often."""

from __future__ import annotations

import structlog

from collectors.snmp.collector import SnmpCollector
from daemon.kernel.clock import utc_now
from daemon.runtime.scheduler import Job
from daemon.services.anomaly_job import AnomalyJob
from daemon.services.backup import make_backup
from daemon.services.billing import queue_reminders
from daemon.services.faults import FaultTracker
from daemon.services.mail.outbox import deliver
from daemon.services.metrics import Metrics
from daemon.services.notify import notify_customers
from daemon.services.pipeline import Pipeline
from daemon.services.polling import PollRound
from daemon.services.retention import thin_old_readings
from daemon.services.supplies import refresh_supply_alerts
from daemon.settings import Settings
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)


def build_poll_round(
    settings: Settings, store: Store, pipeline: Pipeline, metrics: Metrics, collector: SnmpCollector
) -> PollRound:
    """The configured fleet's poll round, storing status changes when ``service.enabled``."""
    faults = FaultTracker(store, settings, metrics, utc_now) if settings.service.enabled else None
    return PollRound(settings, collector, pipeline, metrics, faults=faults)


def build_jobs(
    settings: Settings,
    store: Store,
    pipeline: Pipeline,
    metrics: Metrics,
    collector: SnmpCollector,
    *,
    poll_round: PollRound | None = None,
) -> list[Job]:
    """Every job this configuration asks for: the SNMP poll round when targets are configured, and upkeep.

    ``poll_round``: the daemon's own, when something else (the trap listener) polls through it too.
    """

    async def maintain_store() -> None:
        await store.maintain()
        await store.make_partitions_ahead()  # a daemon running across a month's end
        if settings.storage.raw_retention_months is not None:
            await thin_old_readings(store, settings.storage.raw_retention_months, metrics, utc_now())
        metrics.devices.set(await store.count_devices())

    jobs = []
    poll_round = poll_round or build_poll_round(settings, store, pipeline, metrics, collector)

    async def poll() -> None:
        await poll_round.run()
        # New printers show in meterd_devices with the round that found them, not an hour later.
        metrics.devices.set(await store.count_devices())

    if poll_round.targets:
        jobs.append(Job("snmp_poll", settings.scheduler.poll_interval_s, poll))
    if settings.anomalies.enabled:
        detection = AnomalyJob(settings, store, metrics, utc_now)
        jobs.append(Job("anomalies", settings.anomalies.interval_s, detection.run))
    if settings.supplies.enabled:

        async def supplies() -> None:
            await refresh_supply_alerts(store, settings, utc_now())

        jobs.append(Job("supplies", settings.supplies.interval_s, supplies))
    jobs.append(Job("maintenance", settings.scheduler.maintenance_interval_s, maintain_store))
    return jobs + office_jobs(settings, store, metrics)


def office_jobs(settings: Settings, store: Store, metrics: Metrics | None = None) -> list[Job]:
    """The back office's periodic work: reminders for overdue invoices, customer notices, mail, backups."""

    async def remind() -> None:
        queued = await queue_reminders(store, settings, now=utc_now())
        if queued:
            log.info("reminders_queued", count=len(queued))

    async def notify() -> None:
        await notify_customers(store, settings, now=utc_now())

    async def mail() -> None:
        await deliver(store, settings, now=utc_now(), metrics=metrics)

    async def backup() -> None:
        made = await make_backup(
            settings.database_url,
            settings.backup_dir,
            site=settings.site,
            keep=settings.backup.keep,
            now=utc_now(),
            key_file=settings.backup_key_file,
        )
        log.info("backup_written", path=str(made.path), size=made.size, sha256=made.sha256)

    wanted = [
        (
            settings.receivables.reminders_interval_h > 0,
            "reminders",
            settings.receivables.reminders_interval_h * 3600,
            remind,
        ),
        (settings.notify.customer_changes, "notify", settings.notify.interval_s, notify),
        (settings.mail.enabled, "mail", settings.mail.interval_s, mail),
        (settings.backup.interval_h > 0, "backup", settings.backup.interval_h * 3600, backup),
    ]
    return [Job(name, round(every_s), run) for on, name, every_s, run in wanted if on]
