"""A reading keeps the address and model it was read with: a printer that moves (DHCP) or is reported under
a new model string keeps its history as it was, in `readings --format json`, the API and across the upgrade."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from daemon.cli.main import main
from daemon.kernel.reading import Reading
from daemon.storage import migrate
from daemon.storage.models import Device, ReadingRow
from daemon.storage.repository import Store
from tests.factories import reading
from tests.integration.test_api import Api
from tests.integration.test_api import api as api  # noqa: PLC0414 - the fixture, by its name
from tests.integration.test_api import api_users as api_users  # noqa: PLC0414 - what the fixture needs

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _moved() -> list[Reading]:
    before = reading(address="10.0.4.21", reading_id="r1")
    after = reading(address="10.0.9.7", reading_id="r2", minutes=60, total=15300)
    return [before, replace(after, device=replace(after.device, model="LaserJet MFP M130fw"))]


async def test_readings_list_the_address_and_model_each_was_read_with(
    api: Api, store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.store.store(_moved(), now=NOW)
    expected = [("10.0.4.21", "LaserJet MFP M130nw"), ("10.0.9.7", "LaserJet MFP M130fw")]
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["readings", "--db", store_url, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["device"]["address"], r["device"]["model"]) for r in listed] == expected
    found = await api.client.get("/api/v1/readings", headers=await api.token("admin"))
    assert found.status_code == 200, found.text
    assert [(r["device"]["address"], r["device"]["model"]) for r in found.json()["items"]] == expected


async def test_readings_stored_before_the_upgrade_take_their_devices_address_and_model(store_url: str) -> None:
    async with Store.open(store_url, upgrade=False) as store:
        await migrate.upgrade(store.engine, "0009")
        async with store.engine.begin() as conn:
            device = await conn.execute(
                insert(Device).values(
                    key="VNCRC48198",
                    vendor="HP",
                    model="LaserJet MFP M130nw",
                    address="10.0.4.21",
                    site="acme-hq",
                    first_seen=NOW,
                    last_seen=NOW,
                )
            )
            await conn.execute(
                insert(ReadingRow.__table__).values(
                    reading_id="old",
                    device_id=device.inserted_primary_key[0],
                    meter="total",
                    value=1,
                    unit="impressions",
                    derived=False,
                    taken_at=NOW,
                    received_at=NOW,
                    source="test",
                )
            )
        await migrate.upgrade(store.engine)
        [old] = await store.readings()
    assert (old.device.address, old.device.model) == ("10.0.4.21", "LaserJet MFP M130nw")
