"""The daemon's periodic jobs, built from settings: what runs, how often.

Each job's service module is imported when its job is built, not here: detection and the back
office bring pandas, pyarrow, Jinja2 and reportlab (~150 MB resident), which an agent that
neither bills nor detects must not pay for (issue 24). Those imports say `noqa: PLC0415`.
"""

from __future__ import annotations

import structlog

from collectors.snmp.collector import SnmpCollector
from daemon.kernel.clock import utc_now
from daemon.runtime.scheduler import Job
from daemon.services.faults import FaultTracker
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.services.polling import PollRound
from daemon.services.retention import thin_old_readings
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
        from daemon.services.anomaly_job import AnomalyJob  # noqa: PLC0415 - pandas: only where detection runs

        detection = AnomalyJob(settings, store, metrics, utc_now)
        jobs.append(Job("anomalies", settings.anomalies.interval_s, detection.run))
    if settings.supplies.enabled:
        from daemon.services.supplies import refresh_supply_alerts  # noqa: PLC0415 - only where supplies are watched

        async def supplies() -> None:
            await refresh_supply_alerts(store, settings, utc_now())

        jobs.append(Job("supplies", settings.supplies.interval_s, supplies))
    jobs.append(Job("maintenance", settings.scheduler.maintenance_interval_s, maintain_store))
    return jobs + office_jobs(settings, store, metrics)


def office_jobs(settings: Settings, store: Store, metrics: Metrics | None = None) -> list[Job]:
    """The back office's periodic work: reminders for overdue invoices, customer notices, mail, backups.

    Reminders are billing's, so a hub's or a standalone box's: an agent's store holds no invoices.
    """
    jobs: list[Job] = []
    if settings.receivables.reminders_interval_h > 0 and settings.role != "agent":
        from daemon.services.billing import queue_reminders  # noqa: PLC0415 - billing's pandas: hubs and standalone

        async def remind() -> None:
            queued = await queue_reminders(store, settings, now=utc_now())
            if queued:
                log.info("reminders_queued", count=len(queued))

        jobs.append(Job("reminders", round(settings.receivables.reminders_interval_h * 3600), remind))
    if settings.notify.customer_changes:
        from daemon.services.notify import notify_customers  # noqa: PLC0415 - the back office's: only where it is on

        async def notify() -> None:
            await notify_customers(store, settings, now=utc_now())

        jobs.append(Job("notify", settings.notify.interval_s, notify))
    if settings.mail.enabled:
        from daemon.services.mail.outbox import deliver  # noqa: PLC0415 - only where mail is on

        async def mail() -> None:
            await deliver(store, settings, now=utc_now(), metrics=metrics)

        jobs.append(Job("mail", settings.mail.interval_s, mail))
    if settings.backup.interval_h > 0:
        from daemon.services.backup import make_backup  # noqa: PLC0415 - cryptography's AEAD: only where backups run

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

        jobs.append(Job("backup", round(settings.backup.interval_h * 3600), backup))
    return jobs
