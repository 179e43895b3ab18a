"""Two hubs share one site's load through an MQTT 5 shared subscription, into one PostgreSQL database."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.runtime.app import Daemon
from daemon.storage.repository import Store
from tests.integration.test_mqtt_ingest import broker_connected, hub_settings, publish, wait_for, wire_reading

pytestmark = pytest.mark.postgres


async def test_two_hubs_split_the_stream_and_store_each_reading_once(
    write_config: Callable[..., Path], tmp_path: Path, pg_url: str
) -> None:
    site = f"t{uuid.uuid4().hex[:10]}"
    hubs = [
        Daemon(
            hub_settings(
                write_config, tmp_path, site, client_id=f"hub{n}-{site}", store_url=pg_url, shared_group=f"hubs-{site}"
            )
        )
        for n in (1, 2)
    ]
    tasks = [asyncio.create_task(hub.run()) for hub in hubs]
    received = [
        lambda hub=hub: hub.metrics.registry.get_sample_value("meterd_mqtt_messages_received_total") or 0
        for hub in hubs
    ]

    for hub in hubs:
        await wait_for(broker_connected(hub))
    await publish(
        site, [(f"S{n % 9}", json.dumps(wire_reading(site, n, serial=f"S{n % 9}")).encode()) for n in range(600)]
    )
    async with Store.open(pg_url, upgrade=False) as store:

        async def all_in() -> bool:
            return len(await store.readings()) == 600

        await wait_for(all_in, timeout_s=30)
        stored = await store.readings()
    for hub, task in zip(hubs, tasks, strict=True):
        hub.request_stop()
        await asyncio.wait_for(task, 20)
    counts = [get() for get in received]
    assert sorted(r.id for r in stored) == sorted(f"{site}-r{n}" for n in range(600))
    assert sum(counts) == 600  # the broker gave each message to one hub only
    assert min(counts) > 0  # and both hubs took a share
