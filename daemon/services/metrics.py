"""Every Prometheus metric meterd exports, defined once on an injected registry."""

from __future__ import annotations

import platform
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from daemon import __version__

# Seconds: a poll round of a large site takes minutes, a maintenance job milliseconds.
_JOB_BUCKETS: Final = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """The daemon's metrics. Label values come from code and config, never from raw input."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info("meterd_build", "meterd version and runtime.", registry=r)
        self.build_info.info({"version": __version__, "python": platform.python_version()})
        self.job_runs = Counter(
            "meterd_job_runs_total", "Scheduled job runs by outcome.", ["task", "outcome"], registry=r
        )
        self.job_duration = Histogram(
            "meterd_job_duration_seconds",
            "Wall time of scheduled job runs.",
            ["task"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_last_success = Gauge(
            "meterd_job_last_success_timestamp_seconds",
            "Unix time of the last successful run of each job.",
            ["task"],
            registry=r,
        )
        self.readings_stored = Counter(
            "meterd_readings_stored_total", "Readings written to the store.", ["source"], registry=r
        )
        self.meter_values_stored = Counter(
            "meterd_meter_values_stored_total",
            "Meter values (one per reading and meter) written to the store.",
            ["source"],
            registry=r,
        )
        self.meter_values_pruned = Counter(
            "meterd_meter_values_pruned_total",
            "Raw meter values older than storage.raw_retention_months removed (day boundaries kept).",
            registry=r,
        )
        self.duplicates = Counter(
            "meterd_readings_duplicate_total",
            "Readings dropped because the store already held them.",
            ["source"],
            registry=r,
        )
        self.dead_letters = Counter(
            "meterd_dead_letters_total",
            "Inputs rejected into the dead-letter table.",
            ["source", "reason"],
            registry=r,
        )
        self.db_errors = Counter("meterd_db_errors_total", "Store operations that failed.", ["operation"], registry=r)
        self.devices = Gauge("meterd_devices", "Devices known to the store.", registry=r)
        self.scheduler_running = Gauge("meterd_scheduler_running", "1 while the job scheduler runs.", registry=r)
        self.device_up = Gauge(
            "meterd_device_up", "1 if the device answered its last poll, 0 if not.", ["address"], registry=r
        )
        self.snmp_polls = Counter(
            "meterd_snmp_polls_total", "Device polls by outcome (ok, timeout, error).", ["outcome"], registry=r
        )
        self.ingest_lag = Histogram(
            "meterd_ingest_lag_seconds",
            "Time from a reading being taken to it being committed (now - taken_at).",
            ["source"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86_400, 7 * 86_400),
            registry=r,
        )
        self.broker_connected = Gauge("meterd_broker_connected", "1 while connected to the MQTT broker.", registry=r)
        self.broker_reconnects = Counter(
            "meterd_broker_disconnects_total", "Times the MQTT connection was lost or refused.", registry=r
        )
        self.mqtt_received = Counter("meterd_mqtt_messages_received_total", "MQTT messages received.", registry=r)
        self.outbox_depth = Gauge("meterd_outbox_depth", "Readings waiting in the agent's outbox.", registry=r)
        self.outbox_oldest = Gauge(
            "meterd_outbox_oldest_seconds",
            "Age of the oldest reading waiting in the outbox (0 when empty).",
            registry=r,
        )
        self.outbox_capacity = Gauge(
            "meterd_outbox_capacity", "mqtt.outbox_max: alert on depth / capacity before it is reached.", registry=r
        )
        self.outbox_dropped = Counter(
            "meterd_outbox_dropped_total", "Oldest readings dropped because the outbox was full.", registry=r
        )
        self.forwarded = Counter(
            "meterd_forwarded_total",
            "Readings the broker acknowledged (PUBACK); they leave the outbox when the hub confirms.",
            registry=r,
        )
        self.anomalies_open = Gauge(
            "meterd_anomalies_open",
            "Anomalies not yet resolved, by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.anomaly_notifications = Counter(
            "meterd_anomaly_notifications_total", "New anomalies the notification hook accepted.", registry=r
        )
        self.mail_queued = Gauge("meterd_mail_queued", "E-mails in the outbox not sent yet.", registry=r)
        self.mail_failed = Gauge("meterd_mail_failed", "E-mails the relay refused for good, or gave up on.", registry=r)
        self.mail_sent = Counter("meterd_mail_sent_total", "E-mails the relay accepted.", registry=r)
        self.mail_oldest_queued = Gauge(
            "meterd_mail_oldest_queued_seconds", "Age of the oldest e-mail not sent yet (0: none).", registry=r
        )
        # Counts per site and state, never a series per device: a 10,000-printer fleet stays a few dozen series.
        self.devices_by_status = Gauge(
            "meterd_devices_by_status",
            "Devices by their last hrDeviceStatus (running, warning, down, testing, unknown), per site.",
            ["site", "status"],
            registry=r,
        )
        self.faults_open = Gauge(
            "meterd_device_faults_open",
            "Open device faults (error bits and standing printer alerts) by fault, per site.",
            ["site", "fault"],
            registry=r,
        )
        self.service_alerts_open = Gauge(
            "meterd_service_alerts_open",
            "Faults open past service.alert_after_minutes that raised a service alert, per site.",
            ["site"],
            registry=r,
        )
        self.service_alerts = Counter(
            "meterd_service_alerts_total", "Service alerts raised (one per fault episode).", ["site"], registry=r
        )
        self.udp_receive_errors = Counter(
            "meterd_udp_receive_errors_total",
            "UDP datagrams the kernel dropped for want of receive buffer during poll rounds (host-wide).",
            registry=r,
        )
