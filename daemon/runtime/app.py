"""The daemon: resources in one AsyncExitStack, long-lived work in one TaskGroup, a two-stage stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack
from typing import Any, Final

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from collectors.snmp.collector import SnmpCollector
from daemon.kernel.clock import Clock, utc_now
from daemon.kernel.errors import MeterdError
from daemon.runtime.http import Health, OpsServer
from daemon.runtime.jobs import build_jobs, build_poll_round
from daemon.runtime.scheduler import Job, JobRunner, build_scheduler
from daemon.services.metrics import Metrics
from daemon.services.mqtt import (
    StoreOutbox,
    broker_options,
    build_forwarder,
    build_ingest,
    forward_encoder,
    outbox_upkeep,
)
from daemon.services.pipeline import Pipeline
from daemon.services.traps import trap_listener
from daemon.settings import Settings
from daemon.storage.audit import audit_source
from daemon.storage.engine import mask
from daemon.storage.lock import daemon_lock, migration_lock
from daemon.storage.repository import Store

log = structlog.get_logger(__name__)

_HEALTH_DB_TIMEOUT_S: Final = 2.0


def lock_identity(settings: Settings) -> str:
    """What the store lock is held for: the site, or for a hub the site and its MQTT client id."""
    if settings.role == "hub":
        return f"{settings.site}/hub/{broker_options(settings).client_id}"
    return settings.site


class Daemon:
    """``meterd run``. The constructor does no I/O; :meth:`run` opens and closes everything."""

    def __init__(self, settings: Settings, *, metrics: Metrics | None = None, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics()
        self._clock = clock
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._scheduler: AsyncIOScheduler | None = None
        self._store: Store | None = None
        self.ops_port: int | None = None
        self.api_port: int | None = None
        self.trap_port: int | None = None

    def request_stop(self) -> None:
        """First call: stop taking work and let runs finish. Second call: cancel them now."""
        if self._stop.is_set():
            log.warning("forced_stop_requested")
            self._force.set()
        else:
            log.info("stop_requested", grace_s=self.settings.scheduler.shutdown_grace_s)
            self._stop.set()

    async def run(self, *, once: bool = False) -> None:
        """Run until stopped (or, with ``once``, run every job one time and return).

        Raises:
            MeterdError: start-up failed (store, lock, listen address); nothing was left half-done.
        """
        settings = self.settings
        audit_source.set("daemon")  # what its jobs record (the API's requests say their client's address)
        async with AsyncExitStack() as stack:
            store = await stack.enter_async_context(
                Store.open(settings.database_url, busy_timeout_ms=settings.storage.busy_timeout_ms, upgrade=False)
            )
            self._store = store
            # Lock before migrating: two daemons started together must not both migrate.
            await stack.enter_async_context(daemon_lock(store.engine, lock_identity(settings)))
            async with migration_lock(store.engine):
                await store.migrate()
            stack.push_async_callback(self._flush, store)
            forwarder = build_forwarder(settings, self.metrics) if settings.role == "agent" else None
            pipeline = Pipeline(
                store,
                self.metrics,
                self._clock,
                forward=forward_encoder(settings.site) if forwarder else None,
                on_queued=forwarder.wake if forwarder else None,
            )
            collector = await stack.enter_async_context(SnmpCollector(site=settings.site))
            poll_round = build_poll_round(settings, store, pipeline, self.metrics, collector)
            jobs = build_jobs(settings, store, pipeline, self.metrics, collector, poll_round=poll_round)
            outbox = StoreOutbox(store, self.metrics, self._clock)
            if forwarder is not None:
                jobs.append(
                    Job("outbox_upkeep", 60, functools.partial(outbox_upkeep, outbox, store, settings, self.metrics))
                )
            runner = JobRunner(self.metrics, self._clock)
            log.info(
                "daemon_started",
                site=settings.site,
                store=mask(settings.database_url),
                jobs=[j.name for j in jobs],
                once=once,
            )
            if once:
                results = [await runner.run(job) for job in jobs]
                if not all(results):
                    msg = "one or more jobs failed in --once mode; see the job_failed or job_crashed events above"
                    raise MeterdError(msg)
                return
            if settings.metrics.enabled:
                ops = OpsServer(self.metrics, self.health, settings.metrics.host, settings.metrics.port)
                await stack.enter_async_context(ops.serving())
                self.ops_port = ops.bound_port
            if settings.api.enabled:
                # FastAPI, the console and the accounts' password hashing are ~60 MB an agent with
                # the API off (its usual case) never uses: loaded only when the API is served.
                from daemon.api.app import create_app, serving  # noqa: PLC0415 - see above
                from daemon.api.security import ApiContext  # noqa: PLC0415 - see above
                from daemon.services.accounts import accounts_for  # noqa: PLC0415 - see above

                context = ApiContext(settings, store, accounts_for(settings, store, self._clock), self._clock)
                self.api_port = await stack.enter_async_context(
                    serving(create_app(context), settings.api.host, settings.api.port)
                )
            if settings.snmp.traps.enabled:
                listener = await stack.enter_async_context(trap_listener(settings, poll_round))
                self.trap_port = listener.bound_port
            stack.enter_context(self._signal_handlers())
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._run_scheduler(jobs, runner), name="scheduler")
                # Stream collectors run beside the scheduler until the daemon stops.
                if settings.role == "hub":
                    ingest = build_ingest(settings, self.metrics, store)
                    tasks.create_task(self._run_stream(ingest.run(pipeline)), name="mqtt-ingest")
                if forwarder is not None:
                    tasks.create_task(self._run_stream(forwarder.run(outbox)), name="mqtt-forward")

    async def _run_stream(self, stream: Coroutine[Any, Any, None]) -> None:
        """Run a stream collector until the daemon stops, then cancel it.

        Cancelling mid-batch is safe: an uncommitted batch was never acknowledged, so the
        broker delivers it again, and a committed but unacknowledged one is dropped as
        duplicates on redelivery.
        """
        task = asyncio.ensure_future(stream)
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # a stream that ended by itself crashed: let the TaskGroup see it
        finally:
            for waiter in (task, stopping):
                waiter.cancel()
            await asyncio.gather(task, stopping, return_exceptions=True)

    async def _run_scheduler(self, jobs: list[Job], runner: JobRunner) -> None:
        grace = self.settings.scheduler.shutdown_grace_s
        scheduler = build_scheduler(
            jobs, runner, misfire_grace_s=self.settings.scheduler.misfire_grace_s, clock=self._clock
        )
        self._scheduler = scheduler
        scheduler.start()
        self.metrics.scheduler_running.set(1)
        try:
            await self._stop.wait()
            scheduler.pause()  # stage one: no new runs; in-flight runs may finish
            drain = asyncio.ensure_future(runner.drain(grace))
            force = asyncio.ensure_future(self._force.wait())
            await asyncio.wait({drain, force}, return_when=asyncio.FIRST_COMPLETED)
            drained = drain.done() and drain.result()
            for waiter in (drain, force):
                waiter.cancel()
            await asyncio.gather(drain, force, return_exceptions=True)  # no task left behind
            if not drained:
                log.warning("jobs_cancelled_at_stop", in_flight=runner.in_flight)
        finally:
            scheduler.shutdown(wait=False)
            await runner.cancel_all()  # stage two: whatever is left is cancelled and unwound
            self.metrics.scheduler_running.set(0)
            self._scheduler = None

    async def _flush(self, store: Store) -> None:
        try:
            await store.flush()
        except MeterdError as err:
            log.error("flush_failed", error=str(err))  # noqa: TRY400 - an expected failure: one line, no trace
            raise
        log.info("daemon_stopped", site=self.settings.site)

    async def health(self) -> Health:
        """Liveness and readiness: the scheduler runs and the store answers."""
        checks: dict[str, str] = {}
        scheduler_ok = self._scheduler is not None and self._scheduler.running and not self._stop.is_set()
        checks["scheduler"] = "running" if scheduler_ok else "stopped"
        db_ok = False
        if self._store is not None:
            try:
                async with asyncio.timeout(_HEALTH_DB_TIMEOUT_S):
                    await self._store.ping()
                db_ok = True
                checks["database"] = "ok"
            except (MeterdError, TimeoutError) as err:
                checks["database"] = f"failing: {err}" if str(err) else "failing: timed out"
        else:
            checks["database"] = "not open"
        return Health(ok=scheduler_ok and db_ok, checks=checks)

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            yield
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
