"""Periodic jobs on APScheduler 3's AsyncIOScheduler, with the bookkeeping a graceful stop needs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from daemon.kernel.clock import Clock, utc_now
from daemon.kernel.errors import MeterdError, raise_if_cancelling
from daemon.services.metrics import Metrics

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Job:
    """A named coroutine run every ``interval_s`` seconds (and once at start)."""

    name: str
    interval_s: float
    run: Callable[[], Awaitable[None]]


class JobRunner:
    """Runs one job invocation with its metrics and log line, and knows which runs are in flight."""

    def __init__(self, metrics: Metrics, clock: Clock = utc_now) -> None:
        self._metrics = metrics
        self._clock = clock
        self._in_flight: set[asyncio.Task[object]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self, job: Job) -> bool:
        """Run ``job`` once; return whether it succeeded. Only CancelledError escapes."""
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        started = time.perf_counter()
        outcome = "error"
        try:
            await job.run()
            outcome = "success"
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as err:
            outcome = "cancelled"  # until known otherwise: the stop may have broken the job mid-way
            raise_if_cancelling()
            outcome = "error"
            if isinstance(err, MeterdError):
                # An expected failure: one line, no traceback.
                log.error("job_failed", job=job.name, error=str(err), error_type=type(err).__name__)  # noqa: TRY400
            else:
                # The supervisor boundary: a bug in one job must not stop the daemon; it is logged whole.
                log.exception("job_crashed", job=job.name)
        finally:
            duration = time.perf_counter() - started
            self._metrics.job_runs.labels(task=job.name, outcome=outcome).inc()
            self._metrics.job_duration.labels(task=job.name).observe(duration)
            if outcome == "success":
                self._metrics.job_last_success.labels(task=job.name).set(self._clock().timestamp())
            log.info("job_completed", job=job.name, outcome=outcome, duration_ms=round(duration * 1000, 1))
            if task is not None:
                self._in_flight.discard(task)
        return outcome == "success"

    async def drain(self, grace_s: float) -> bool:
        """Wait up to ``grace_s`` for in-flight runs; return True when none is left."""
        pending = set(self._in_flight)
        if pending:
            await asyncio.wait(pending, timeout=grace_s)
        return not any(not t.done() for t in self._in_flight)

    async def cancel_all(self) -> None:
        """Cancel whatever still runs and wait for it to unwind."""
        pending = [t for t in self._in_flight if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)


def build_scheduler(
    jobs: list[Job], runner: JobRunner, *, misfire_grace_s: int, clock: Clock = utc_now
) -> AsyncIOScheduler:
    """A scheduler holding every job; jobs coalesce and never overlap themselves."""
    scheduler = AsyncIOScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": misfire_grace_s},
    )
    first_run = clock() + timedelta(seconds=1)
    for job in jobs:
        scheduler.add_job(
            runner.run,
            IntervalTrigger(seconds=job.interval_s, timezone=UTC),
            args=[job],
            id=job.name,
            name=job.name,
            next_run_time=first_run,
        )
    return scheduler
