"""Hub ingest against the real Mosquitto: exactly what was published is stored, bad payloads dead-lettered."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from structlog.testing import capture_logs

from collectors import wire
from collectors.mqtt.connection import BrokerOptions
from collectors.mqtt.ingest import IngestOptions, MqttIngest
from daemon.kernel.clock import utc_now
from daemon.kernel.errors import PayloadError
from daemon.kernel.reading import Reading
from daemon.runtime.app import Daemon
from daemon.services.review import resolve
from daemon.settings import Settings, load
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.repository import Store

MQTT_HOST = os.environ.get("TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("TEST_MQTT_PORT", "1883"))


def wire_reading(site: str, n: int, *, serial: str = "HUBTEST1") -> dict[str, Any]:
    return {
        "schema": "meterd.reading/1",
        "id": f"{site}-r{n}",
        "site": site,
        "taken_at": f"2026-11-22T10:{n // 60:02d}:{n % 60:02d}Z",
        "device": {"serial": serial, "vendor": "HP", "model": "LaserJet", "address": "10.0.4.21"},
        "meters": [{"meter": "total", "value": 1000 + n, "unit": "impressions"}],
    }


def hub_settings(
    write_config: Callable[..., Path],
    tmp_path: Path,
    site: str,
    *,
    client_id: str | None = None,
    store_url: str | None = None,
    **mqtt: object,
) -> Settings:
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in mqtt.items())
    storage = f'[storage]\nurl = "{store_url}"\n' if store_url else ""
    client = client_id or f"hub-{site}"
    return load(
        write_config(
            f'site = "{site}"\nrole = "hub"\nstate_dir = "{tmp_path / client}"\n'
            f"[metrics]\nenabled = false\n{storage}"
            f'[mqtt]\nhost = "{MQTT_HOST}"\nport = {MQTT_PORT}\nclient_id = "{client}"\n'
            f'sites = ["{site}"]\nsession_expiry_s = 120\nbatch_wait_ms = 50\nmax_payload_bytes = 4096\n{extra}',
            name=f"{client}.toml",
        ),
        {},
    )


async def publish(site: str, payloads: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client(MQTT_HOST, MQTT_PORT, identifier=f"pub-{uuid.uuid4().hex[:8]}") as client:
        for key, payload in payloads:
            await client.publish(f"meterd/v1/{site}/{key}/reading", payload, qos=1)


async def wait_for(condition: Callable[[], Any], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await condition():
            await asyncio.sleep(0.1)


@pytest.fixture
def site() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
async def running_hub(write_config: Callable[..., Path], tmp_path: Path, site: str) -> AsyncIterator[Daemon]:
    daemon = Daemon(hub_settings(write_config, tmp_path, site))
    task = asyncio.create_task(daemon.run())
    await wait_for(broker_connected(daemon))
    yield daemon
    daemon.request_stop()
    await asyncio.wait_for(task, 20)


def broker_connected(daemon: Daemon) -> Callable[[], Awaitable[bool]]:
    """A condition for wait_for: the daemon reports itself connected to the broker."""

    async def check() -> bool:
        return daemon.metrics.registry.get_sample_value("meterd_broker_connected") == 1

    return check


async def test_published_readings_are_stored_exactly_once_and_bad_ones_dead_lettered(
    running_hub: Daemon, site: str
) -> None:
    good = [("HUBTEST1", json.dumps(wire_reading(site, n)).encode()) for n in range(200)]
    bad = [
        ("HUBTEST1", b"{not json"),
        ("HUBTEST1", json.dumps({**wire_reading(site, 999), "meters": [{"meter": "pages", "value": 1}]}).encode()),
        ("HUBTEST1", b'{"a":' * 500 + b"1" + b"}" * 500),  # a nesting bomb
        ("HUBTEST1", b"x" * 5000),  # over max_payload_bytes
        ("HUBTEST1", b"\xff\xfe invalid utf-8"),
    ]
    await publish(site, good + bad + good[:20])  # the last 20 again: redelivered copies
    store_url = running_hub.settings.database_url
    async with Store.open(store_url, upgrade=False) as store:

        async def all_in() -> bool:
            copies = running_hub.metrics.registry.get_sample_value(
                "meterd_readings_duplicate_total", {"source": "mqtt"}
            )
            return len(await store.readings()) == 200 and len(await store.dead_letters()) == 5 and copies == 20

        await wait_for(all_in)
        readings = await store.readings()
        letters = await store.dead_letters()
    assert sorted(r.id for r in readings) == sorted(f"{site}-r{n}" for n in range(200))
    assert {r.id: r.meters[0].value for r in readings} == {f"{site}-r{n}": 1000 + n for n in range(200)}
    assert sorted(letter.reason for letter in letters) == sorted(
        ["invalid_json", "unknown_meter", "too_deep", "oversize", "invalid_utf8"]
    )
    assert all(letter.origin == f"meterd/v1/{site}/HUBTEST1/reading" for letter in letters)
    sample = running_hub.metrics.registry.get_sample_value
    assert sample("meterd_readings_duplicate_total", {"source": "mqtt"}) == 20
    assert sample("meterd_dead_letters_total", {"source": "mqtt", "reason": "too_deep"}) == 1


async def test_readings_published_while_the_hub_is_down_wait_in_its_session(
    write_config: Callable[..., Path], tmp_path: Path, site: str
) -> None:
    settings = hub_settings(write_config, tmp_path, site)
    first = Daemon(settings)
    task = asyncio.create_task(first.run())
    await wait_for(broker_connected(first))  # the broker now holds the hub's session and subscription
    first.request_stop()
    await asyncio.wait_for(task, 20)
    await publish(site, [("HUBTEST1", json.dumps(wire_reading(site, n)).encode()) for n in range(50)])
    second = Daemon(settings)
    task = asyncio.create_task(second.run())
    async with Store.open(settings.database_url, upgrade=False) as store:

        async def all_in() -> bool:
            return len(await store.readings()) == 50

        await wait_for(all_in)
    second.request_stop()
    await asyncio.wait_for(task, 20)


class _Recorder:
    """A sink and the ingest's events in one: what arrived, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def connected(self, *, up: bool) -> None:
        pass

    def received(self, count: int) -> None:
        pass

    async def emit(self, readings: list[Reading]) -> object:
        self.batches.append([r.id for r in readings])
        return None

    async def reject(self, raw: bytes, *, origin: str, source: str, error: PayloadError) -> None:
        raise AssertionError(error)


async def test_a_backlog_is_drained_in_order_in_batches_no_larger_than_the_cap(site: str) -> None:
    broker = BrokerOptions(MQTT_HOST, MQTT_PORT, f"hub-{site}", session_expiry_s=120)
    options = IngestOptions(sites=(site,), batch_max=20, batch_wait_s=0.5)
    recorder = _Recorder()
    ingest = MqttIngest(broker, options, recorder)
    with capture_logs() as logs:
        task = asyncio.create_task(ingest.run(recorder))
        await wait_for(lambda: _logged(logs, "mqtt_ingest_subscribed"))  # the broker now keeps the session
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await publish(site, [("HUBTEST1", json.dumps(wire_reading(site, n)).encode()) for n in range(50)])
    task = asyncio.create_task(ingest.run(recorder))
    await wait_for(lambda: _settled(recorder, 50))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert [len(batch) for batch in recorder.batches] == [20, 20, 10]
    assert [reading_id for batch in recorder.batches for reading_id in batch] == [f"{site}-r{n}" for n in range(50)]


async def _logged(logs: list[dict[str, Any]], event: str) -> bool:
    return any(entry["event"] == event for entry in logs)


async def _settled(recorder: _Recorder, count: int) -> bool:
    return sum(len(batch) for batch in recorder.batches) >= count


async def test_a_sender_cannot_write_into_another_sites_device(
    write_config: Callable[..., Path], tmp_path: Path, site: str, store_url: str
) -> None:
    # Issue 18.1: site-a's sender (the broker lets it publish only under meterd/v1/site-a/…)
    # reached site-b's VICTIM1 through the payload; the device moved and gained 999,999 pages.
    victim_site = f"{site}-b"
    settings = hub_settings(write_config, tmp_path, site, store_url=store_url)
    async with Store.open(settings.database_url) as store:
        await store.store(
            [wire.decode(json.dumps(wire_reading(victim_site, 1, serial="VICTIM1")).encode(), source="mqtt")],
            now=utc_now(),
        )
    hub = Daemon(settings)
    task = asyncio.create_task(hub.run())
    await wait_for(broker_connected(hub))
    forged = {
        **wire_reading(victim_site, 2, serial="VICTIM1"),
        "meters": [{"meter": "total", "value": 999_999, "unit": "impressions"}],
    }
    own_site_claim = {**forged, "id": f"{site}-claim", "site": site}
    await publish(
        site,
        [
            ("OWN1", json.dumps(forged).encode()),  # another site and another device than the topic's
            ("VICTIM1", json.dumps(forged).encode()),  # the topic's device, another site
            ("OWN1", json.dumps({**own_site_claim, "id": f"{site}-key"}).encode()),  # its site, another device
            ("VICTIM1", json.dumps(own_site_claim).encode()),  # topic and payload agree: a claim on the device
            ("OWN1", json.dumps(wire_reading(site, 3, serial="OWN1")).encode()),  # its own device: stored
        ],
    )
    async with Store.open(settings.database_url, upgrade=False) as store:

        async def all_in() -> bool:
            return len(await store.dead_letters()) == 4 and len(await store.readings()) == 2

        await wait_for(all_in)
        letters = await store.dead_letters()
        victim = [d for d in await store.devices() if d.key == "VICTIM1"]
        victim_values = [r.meters[0].value for r in await store.readings(device="VICTIM1")]
        moved = await AnomalyStore(store).find(kind="moved", device="VICTIM1")
    hub.request_stop()
    await asyncio.wait_for(task, 20)
    assert sorted(letter.reason for letter in letters) == ["site_changed", *["topic_mismatch"] * 3]
    assert [(d.site, d.last_seen) for d in victim] == [
        (victim_site, wire.decode(json.dumps(wire_reading(victim_site, 1)).encode(), source="x").taken_at_utc)
    ]
    assert victim_values == [1001]
    assert [(m.status, m.evidence["to_site"]) for m in moved] == [("open", site)]
    sample = hub.metrics.registry.get_sample_value
    assert sample("meterd_dead_letters_total", {"source": "mqtt", "reason": "topic_mismatch"}) == 3
    # A person confirms the move: the device goes to the new site with the reading it was held for.
    async with Store.open(settings.database_url, upgrade=False) as store:
        await resolve(store, moved[0].id, action="approve", value=None, actor="alice", reason="moved", now=utc_now())
        victim_site_after = [d.site for d in await store.devices() if d.key == "VICTIM1"]
        victim_values = sorted(r.meters[0].value for r in await store.readings(device="VICTIM1"))
        reasons = sorted(letter.reason for letter in await store.dead_letters())
    assert (victim_site_after, victim_values, reasons) == ([site], [1001, 999_999], ["topic_mismatch"] * 3)
