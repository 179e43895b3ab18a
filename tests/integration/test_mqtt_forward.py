"""Agent -> broker -> hub against the real Mosquitto: exactly what the agent stored reaches the hub."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from collectors import wire
from collectors.mqtt.connection import Backoff, BrokerOptions, stay_connected
from daemon.cli.main import IngestCounts, ingest_file
from daemon.kernel.errors import StorageError
from daemon.runtime import app as app_module
from daemon.runtime.app import Daemon
from daemon.runtime.scheduler import Job, JobRunner
from daemon.services.metrics import Metrics
from daemon.services.mqtt import StoreOutbox, build_forwarder, forward_encoder, outbox_upkeep
from daemon.services.pipeline import Pipeline
from daemon.settings import Settings, load
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.factories import reading
from tests.integration.mosquitto import OwnBroker
from tests.integration.test_mqtt_ingest import MQTT_HOST, MQTT_PORT, broker_connected, hub_settings, wait_for


def agent_settings(
    write_config: Callable[..., Path], tmp_path: Path, site: str, broker_port: int = MQTT_PORT, extra: str = ""
) -> Settings:
    return load(
        write_config(
            f'site = "{site}"\nrole = "agent"\nstate_dir = "{tmp_path / "agent"}"\n[metrics]\nenabled = false\n'
            f'[mqtt]\nhost = "{MQTT_HOST}"\nport = {broker_port}\nclient_id = "agent-{site}"\n'
            f"session_expiry_s = 120\nreplay_rate = 5000\nmax_inflight = 200\n{extra}",
            name=f"agent-{site}.toml",
        ),
        {},
    )


async def test_agent_readings_reach_the_hub_exactly_once_field_for_field(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = f"t{uuid.uuid4().hex[:10]}"
    hub, hub_task = await _running_hub(write_config, tmp_path, site)
    sent = [reading(site=site, serial=f"SER{n % 7}", minutes=n, total=10_000 + n) for n in range(300)]

    async def emit(pipeline: Pipeline, _metrics: Metrics) -> None:
        for start_at in range(0, len(sent), 50):
            await pipeline.emit(sent[start_at : start_at + 50])

    _agent_runs_once(monkeypatch, emit)
    agent = Daemon(agent_settings(write_config, tmp_path, site))
    agent_task = asyncio.create_task(agent.run())
    async with Store.open(hub.settings.database_url, upgrade=False) as hub_store:

        async def all_in() -> bool:
            return len(await hub_store.readings()) == len(sent)

        await wait_for(all_in, timeout_s=30)
        received = {r.id: r for r in await hub_store.readings()}
    await wait_for(lambda: _sample(agent.metrics, "meterd_outbox_depth", 0))
    for daemon, task in ((agent, agent_task), (hub, hub_task)):
        daemon.request_stop()
        await asyncio.wait_for(task, 20)
    assert set(received) == {r.id for r in sent}
    for original in sent:
        got = received[original.id]
        assert (got.device.key, got.taken_at, got.meters, got.site) == (
            original.device.key,
            original.taken_at,
            original.meters,
            original.site,
        )
    assert _value(agent.metrics, "meterd_forwarded_total") == len(sent)


async def test_readings_stored_after_the_outbox_drained_are_forwarded_on_the_same_connection(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SQLite reused the ids of a drained outbox, which the forwarder had already passed:
    # the second round waited for the next reconnect (seen on an agent box; the hub got each
    # round only after a restart).
    site = f"t{uuid.uuid4().hex[:10]}"
    hub, hub_task = await _running_hub(write_config, tmp_path, site)
    rounds = [
        [reading(site=site, serial="SER1", minutes=10 * r + n, total=1000 + 10 * r + n) for n in range(5)]
        for r in range(3)
    ]

    async def emit_rounds(pipeline: Pipeline, metrics: Metrics) -> None:
        for done, batch in enumerate(rounds, start=1):
            await pipeline.emit(batch)
            await wait_for(partial(_drained, metrics, forwarded=5 * done))

    _agent_runs_once(monkeypatch, emit_rounds)
    agent = Daemon(agent_settings(write_config, tmp_path, site))
    agent_task = asyncio.create_task(agent.run())
    async with Store.open(hub.settings.database_url, upgrade=False) as hub_store:

        async def all_in() -> bool:
            return len(await hub_store.readings()) == 15

        await wait_for(all_in, timeout_s=30)
    assert _value(agent.metrics, "meterd_broker_disconnects_total") == 0  # one connection did it all
    for daemon, task in ((agent, agent_task), (hub, hub_task)):
        daemon.request_stop()
        await asyncio.wait_for(task, 20)


async def _running_hub(
    write_config: Callable[..., Path], tmp_path: Path, site: str
) -> tuple[Daemon, asyncio.Task[None]]:
    hub = Daemon(hub_settings(write_config, tmp_path, site))
    task = asyncio.create_task(hub.run())
    await wait_for(broker_connected(hub))
    return hub, task


def _agent_runs_once(monkeypatch: pytest.MonkeyPatch, job: Callable[[Pipeline, Metrics], Awaitable[None]]) -> None:
    """The next daemon started gets one more job, run at its start: ``job(pipeline, metrics)``."""
    real_build_jobs = app_module.build_jobs

    def build_jobs(
        settings: Settings, store: Store, pipeline: Pipeline, metrics: Metrics, *rest: Any, **more: Any
    ) -> list[Job]:
        return [
            *real_build_jobs(settings, store, pipeline, metrics, *rest, **more),
            Job("emit", 3600, partial(job, pipeline, metrics)),
        ]

    monkeypatch.setattr(app_module, "build_jobs", build_jobs)


async def _drained(metrics: Metrics, *, forwarded: int) -> bool:
    return _value(metrics, "meterd_outbox_depth") == 0 and _value(metrics, "meterd_forwarded_total") == forwarded


def _value(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


async def _sample(metrics: Metrics, name: str, wanted: float) -> bool:
    return _value(metrics, name) == wanted


async def test_readings_ingested_on_an_agent_are_forwarded_to_the_hub(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # Issue 18.3: `meterd ingest` on an agent stored readings that never left the agent.
    site = f"t{uuid.uuid4().hex[:10]}"
    records = [wire.encode(reading(site=site, serial=f"SER{n % 3}", minutes=n, total=500 + n)) for n in range(20)]
    other_site = wire.encode(reading(site=f"{site}-x", serial="SER9"))
    raw = "\n".join(json.dumps(r) for r in [*records, other_site]).encode()
    settings = agent_settings(write_config, tmp_path, site)
    async with Store.open(settings.database_url) as agent_store:
        counts = await ingest_file(agent_store, settings, raw, "export.ndjson", progress=False)
        (letter,) = await agent_store.dead_letters()
    assert counts == IngestCounts(records=21, stored=20, duplicates=0, rejected=1)
    assert (letter.reason, letter.origin) == ("wrong_site", "export.ndjson:21")
    hub, hub_task = await _running_hub(write_config, tmp_path, site)
    agent = Daemon(settings)
    agent_task = asyncio.create_task(agent.run())
    async with Store.open(hub.settings.database_url, upgrade=False) as hub_store:

        async def all_in() -> bool:
            return len(await hub_store.readings()) == len(records)

        await wait_for(all_in, timeout_s=30)
        received = sorted(r.id for r in await hub_store.readings())
    for daemon, task in ((agent, agent_task), (hub, hub_task)):
        daemon.request_stop()
        await asyncio.wait_for(task, 20)
    assert received == sorted(r["id"] for r in records)


async def test_a_hub_away_past_its_session_expiry_loses_nothing(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 18.4: an agent dropped a reading at the broker's PUBACK; a hub away longer than
    # its session expiry lost everything the broker had queued for it meanwhile.
    (tmp_path / "broker").mkdir()
    broker = OwnBroker(tmp_path / "broker", free_port())
    broker.start()
    site = f"t{uuid.uuid4().hex[:10]}"
    hub_config = write_config(
        f'site = "{site}"\nrole = "hub"\nstate_dir = "{tmp_path / "hub"}"\n[metrics]\nenabled = false\n'
        f'[mqtt]\nhost = "{MQTT_HOST}"\nport = {broker.port}\nclient_id = "hub-{site}"\nsession_expiry_s = 1\n'
        "batch_wait_ms = 50\nreconnect_min_s = 0.2\nreconnect_max_s = 1\n",
        name="hub.toml",
    )
    rounds = [
        [reading(site=site, serial=f"SER{n % 4}", minutes=100 * r + n, total=1000 + 100 * r + n) for n in range(40)]
        for r in range(2)
    ]
    second_round = asyncio.Event()

    async def emit_rounds(pipeline: Pipeline, metrics: Metrics) -> None:
        if metrics is not agent.metrics:
            return  # the hubs get the job too
        await pipeline.emit(rounds[0])
        await second_round.wait()
        await pipeline.emit(rounds[1])

    _agent_runs_once(monkeypatch, emit_rounds)
    agent = Daemon(agent_settings(write_config, tmp_path, site, broker_port=broker.port))
    hub = Daemon(load(hub_config, {}))
    hub_task = asyncio.create_task(hub.run())
    await wait_for(broker_connected(hub))  # one at a time: Alembic's migration context is process-wide
    agent_task = asyncio.create_task(agent.run())
    try:
        await wait_for(broker_connected(agent))
        async with (
            Store.open(hub.settings.database_url, upgrade=False) as hub_store,
            Store.open(agent.settings.database_url, upgrade=False) as agent_store,
        ):

            async def stored(count: int) -> bool:
                return len(await hub_store.readings()) == count

            async def queued(count: int) -> bool:
                return (await agent_store.outbox_stats())[0] == count

            await wait_for(partial(stored, 40), timeout_s=30)
            await wait_for(partial(queued, 0))  # the hub confirmed round 1
            hub.request_stop()
            await asyncio.wait_for(hub_task, 20)
            second_round.set()  # published while the hub is away: queued in its session ...
            await wait_for(lambda: _sample(agent.metrics, "meterd_forwarded_total", 80))
            await asyncio.sleep(4)  # ... which expires (1 s) and is dropped with what it held
            assert (await agent_store.outbox_stats())[
                0
            ] == 40  # acknowledged by the broker, not confirmed by the hub: kept
            hub = Daemon(load(hub_config, {}))
            hub_task = asyncio.create_task(hub.run())
            await wait_for(partial(stored, 80), timeout_s=30)
            await wait_for(partial(queued, 0))
            received = sorted(r.id for r in await hub_store.readings())
    finally:
        for daemon, task in ((agent, agent_task), (hub, hub_task)):
            daemon.request_stop()
            await asyncio.wait_for(task, 20)
        broker.stop()
    assert received == sorted(r.id for batch in rounds for r in batch)


async def test_an_agent_confirmed_by_the_broker_forgets_at_the_puback(
    write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # For hubs in a shared group, which do not confirm: no hub runs here, the broker's PUBACK is enough.
    site = f"t{uuid.uuid4().hex[:10]}"
    sent = [reading(site=site, serial="SER1", minutes=n, total=100 + n) for n in range(30)]

    async def emit(pipeline: Pipeline, _metrics: Metrics) -> None:
        await pipeline.emit(sent)

    _agent_runs_once(monkeypatch, emit)
    agent = Daemon(agent_settings(write_config, tmp_path, site, extra='confirmed_by = "broker"\n'))
    agent_task = asyncio.create_task(agent.run())
    await wait_for(lambda: _sample(agent.metrics, "meterd_forwarded_total", len(sent)))
    async with Store.open(agent.settings.database_url, upgrade=False) as agent_store:

        async def drained() -> bool:
            return (await agent_store.outbox_stats())[0] == 0

        await wait_for(drained)
    agent.request_stop()
    await asyncio.wait_for(agent_task, 20)


async def test_a_forwarder_stopped_during_a_store_call_stops_at_once(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """The stop's cancel can break a store call, which then fails as a StorageError (in a TaskGroup on 3.11
    that is all it reports). The forwarder must still end: seen in the suite as a daemon taking its whole
    stop grace, the forwarder retrying the store after its cancel."""
    site = f"t{uuid.uuid4().hex[:10]}"
    settings = agent_settings(write_config, tmp_path, site)
    entered = asyncio.Event()

    class BrokenByTheCancel:
        """The daemon's outbox, whose first call is under way when the stop comes and fails because of it."""

        def __init__(self, outbox: StoreOutbox) -> None:
            self._outbox = outbox

        async def epoch(self) -> str:
            entered.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise StorageError("store operation 'outbox epoch' failed: the connection was invalidated") from None
            return await self._outbox.epoch()

        def __getattr__(self, name: str) -> object:
            return getattr(self._outbox, name)

    async with Store.open(settings.database_url) as store:
        forwarder = build_forwarder(settings, Metrics())
        task = asyncio.create_task(forwarder.run(BrokenByTheCancel(StoreOutbox(store, Metrics()))))  # type: ignore[arg-type]
        await asyncio.wait_for(entered.wait(), 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        if not done:
            task.cancel()  # one more try; a forwarder that swallows cancels is not awaited again
        assert done, "the forwarder went on after its cancel"
        assert task.cancelled()


async def test_a_connection_stopped_while_its_session_breaks_stops_at_once() -> None:
    """A cancel can break the broker connection mid-session, which then fails as an MqttError (a publish
    waiting for its PUBACK, the client's exit). stay_connected, which the hub's ingest and the agent's
    forwarder both run on, must end with the cancel, not take it for an outage and reconnect."""
    entered = asyncio.Event()
    sessions = 0

    async def session(_client: aiomqtt.Client) -> None:
        nonlocal sessions
        sessions += 1
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise aiomqtt.MqttError("Disconnected during message iteration") from None

    broker = BrokerOptions(MQTT_HOST, MQTT_PORT, client_id=f"stop-{uuid.uuid4().hex[:10]}", session_expiry_s=0)
    task = asyncio.create_task(stay_connected(broker, _Connection(), Backoff(0.05, 0.1), session))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    if not done:
        task.cancel()  # one more try; a loop that swallows cancels is not awaited again
    assert done, f"stay_connected went on after its cancel ({sessions} sessions)"
    assert task.cancelled()
    assert sessions == 1


async def test_a_job_stopped_during_a_store_call_ends_cancelled() -> None:
    """The scheduler's boundary logs a job's failure and carries on; a failure the stop caused is the stop."""
    entered = asyncio.Event()

    async def job() -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise StorageError("store operation 'poll' failed: the connection was invalidated") from None

    metrics = Metrics()
    task = asyncio.create_task(JobRunner(metrics).run(Job("poll", 60, job)))
    await asyncio.wait_for(entered.wait(), 10)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    assert done
    assert task.cancelled()
    assert metrics.registry.get_sample_value("meterd_job_runs_total", {"task": "poll", "outcome": "cancelled"}) == 1


class _Connection:
    def connected(self, *, up: bool) -> None:
        pass


async def test_an_outbox_waiting_for_its_hub_is_bounded_by_outbox_max(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # Issue 18.4: rows wait for the hub's confirmation, but never past mqtt.outbox_max: the oldest go, counted.
    site = f"t{uuid.uuid4().hex[:10]}"
    settings = agent_settings(write_config, tmp_path, site, extra="outbox_max = 1000\n")
    sent = [reading(site=site, serial=f"SER{n % 5}", minutes=n, total=10 + n) for n in range(1200)]
    metrics = Metrics()
    async with Store.open(settings.database_url) as store:
        await store.store(sent, now=sent[0].taken_at, forward=forward_encoder(site))
        await outbox_upkeep(StoreOutbox(store, metrics), store, settings, metrics)
        kept = await store.outbox_pending(limit=2000)
    assert _value(metrics, "meterd_outbox_dropped_total") == 200
    assert _value(metrics, "meterd_outbox_depth") == 1000
    assert [json.loads(entry.payload)["id"] for entry in kept] == [r.id for r in sent[200:]]  # the oldest went
