"""Supply forecasts and replenishment alerts over a real store (SQLite and PostgreSQL), the CLI's list."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.cli.main import main
from daemon.kernel.reading import Reading
from daemon.services.supplies import refresh_supply_alerts, supply_policy
from daemon.settings import Settings
from daemon.storage.models import SupplyAlertRow
from daemon.storage.repository import Store
from daemon.storage.supplies import SupplyStore
from tests.factories import T0, reading

PAGES_PER_DAY = 100
PERCENT_PER_DAY = 5  # a cartridge lasts 20 days; the second goes in on day 20 and is empty on day 40


def _month(first_day: int, last_day: int, *, at: datetime = T0) -> list[Reading]:
    out = []
    for hour in range(first_day * 24, last_day * 24):
        true_level = 100 - (PERCENT_PER_DAY * hour / 24) % 100
        out.append(
            reading(
                reading_id=f"h{hour}",
                at=at,
                minutes=60 * hour,
                total=10_000 + PAGES_PER_DAY * hour // 24,
                toner=round(true_level / 10) * 10,
            )
        )
    return out


async def _store(store: Store, readings: list[Reading]) -> None:
    for start in range(0, len(readings), 24):
        await store.store(readings[start : start + 24], now=readings[start].taken_at_utc)


async def test_a_cartridge_is_forecast_alerted_once_and_its_alert_closes_when_it_is_replaced(store_url: str) -> None:
    settings = Settings()
    now = T0 + timedelta(days=36, hours=7)
    async with Store.open(store_url) as store:
        await _store(store, _month(0, 37))
        [status] = await SupplyStore(store).report(supply_policy(settings), now)
        first = await refresh_supply_alerts(store, settings, now)
        again = await refresh_supply_alerts(store, settings, now + timedelta(hours=1))
        later = await refresh_supply_alerts(store, settings, now + timedelta(days=2))
        await _store(store, _month(37, 42))  # replaced on day 40
        after = await refresh_supply_alerts(store, settings, T0 + timedelta(days=41, hours=7))
        async with store.engine.connect() as conn:
            alerts = (await conn.execute(select(SupplyAlertRow.cartridge_since, SupplyAlertRow.closed_at))).all()
    assert (status.part_number, status.replaced, status.cartridge_since) == ("CF217A", True, T0 + timedelta(days=20))
    assert status.forecast.empty_on is not None
    assert abs((status.forecast.empty_on - (T0 + timedelta(days=40)).date()).days) <= 1
    assert status.due
    assert [s.device for s in first] == ["VNCRC48198"]
    assert (again, later, after) == ([], [], [])  # one alert per cartridge, not one per poll
    assert len(alerts) == 1
    assert alerts[0].closed_at is not None
    assert alerts[0].closed_at.date() == (T0 + timedelta(days=40)).date()


def test_the_replenishment_list_names_the_device_and_part_number_as_csv(
    store_url: str, write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    async def prepare() -> None:
        async with Store.open(store_url) as store:
            await _store(store, _month(0, 37))
            await refresh_supply_alerts(store, Settings(), T0 + timedelta(days=36, hours=7))

    asyncio.run(prepare())
    config = write_config(f'[storage]\nurl = "{store_url}"\n')
    capsys.readouterr()
    assert main(["supplies", "due", "--config", str(config), "--format", "csv", "--log-level", "error"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["device"], r["site"], r["supply"], r["part_number"]) for r in rows] == [
        ("VNCRC48198", "acme-hq", "Black Cartridge HP CF217A", "CF217A")
    ]


async def test_a_low_cartridge_seen_from_the_start_keeps_one_alert_as_the_history_window_moves(store_url: str) -> None:
    # No replacement in sight: the cartridge's start is the history window's first reading, which moves each day.
    settings = Settings.model_validate({"supplies": {"history_days": 28}})
    polls = [reading(reading_id=f"l{h}", minutes=60 * h, total=10_000 + 4 * h, toner=8) for h in range(33 * 24)]
    raised = []
    async with Store.open(store_url) as store:
        await _store(store, polls)
        for day in (29, 30, 32):
            raised += await refresh_supply_alerts(store, settings, T0 + timedelta(days=day, hours=7))
        async with store.engine.connect() as conn:
            alerts = (await conn.execute(select(SupplyAlertRow.id))).all()
    assert [s.forecast.level for s in raised] == [8]
    assert len(alerts) == 1


async def test_a_site_with_its_own_lead_time_is_judged_by_it(store_url: str) -> None:
    now = T0 + timedelta(days=36, hours=7)  # about 4 days left: due with the fleet's 10 days of lead
    near = Settings.model_validate({"supplies": {"sites": {"acme-hq": {"lead_days": 0, "low_percent": 0}}}})
    async with Store.open(store_url) as store:
        await _store(store, _month(0, 37))
        [fleet] = await SupplyStore(store).report(supply_policy(Settings()), now)
        [own] = await SupplyStore(store).report(supply_policy(near), now)
    assert (fleet.due, own.due) == (True, False)
