"""Supply levels stored when they change (plus a daily heartbeat), read back as of each reading."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import insert, select

from billing.anomalies import DetectorSettings
from daemon.kernel.reading import Reading, Supply
from daemon.services.anomaly_detection import detect_new
from daemon.storage import migrate
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.models import Device, ReadingRow, SupplyLevel
from daemon.storage.repository import Store
from tests.factories import T0, reading

NOW = T0 + timedelta(days=30)


def _toner_at(poll: int) -> int:
    return 90 - poll // 40  # a point every 10 hours of 15-minute polls


async def _supply_rows(store: Store) -> list[tuple[str, int | None]]:
    async with store.engine.connect() as conn:
        stmt = select(SupplyLevel.reading_id, SupplyLevel.level_percent).order_by(SupplyLevel.taken_at)
        return [(reading_id, level) for reading_id, level in await conn.execute(stmt)]


async def test_levels_are_stored_when_they_change_and_every_reading_reads_back_as_taken(store_url: str) -> None:
    # Three days of 15-minute polls with a colour device's four cartridges, toner sinking a point every 10 hours.
    polls = [
        dataclasses.replace(
            reading(reading_id=f"p{i}", minutes=15 * i, total=1000 + i, toner=_toner_at(i)),
            supplies=(
                Supply("Black Toner", "toner", "black", _toner_at(i)),
                Supply("Cyan Toner", "toner", "cyan", 70),
                Supply("Magenta Toner", "toner", "magenta", None),  # "some remaining": NULL, never changes
                Supply("Waste Toner Box", "wasteToner", None, 10 + i // 100),
            ),
        )
        for i in range(288)
    ]
    async with Store.open(store_url) as store:
        # In batches the way a daemon stores rounds, and out of order within each batch.
        for start in range(0, len(polls), 16):
            outcome = await store.store(polls[start : start + 16][::-1], now=NOW)
            assert outcome.stored == 16
        rows = await _supply_rows(store)
        stored = await store.readings()
    assert stored == polls  # field for field, every supply of every reading
    black_changes = len({_toner_at(i) for i in range(288)})  # 8 levels
    # First poll: 4 rows; then each change (black 7, waste 2); a heartbeat a day for the three that sat still
    # a whole day (cyan, magenta at p96 and p192; waste at p96 and p196): black never did.
    assert len(rows) == 4 + (black_changes - 1) + 2 + 3 * 2
    assert len(rows) < 288 * 4 / 20


async def test_a_heartbeat_is_stored_once_a_day_and_a_supply_no_longer_reported_disappears(store_url: str) -> None:
    steady = [reading(reading_id=f"s{i}", minutes=60 * i, toner=50) for i in range(49)]  # two days, hourly
    without = dataclasses.replace(reading(reading_id="gone", minutes=60 * 49 + 60 * 24), supplies=())
    async with Store.open(store_url) as store:
        await store.store(steady, now=NOW)
        await store.store([without], now=NOW)
        rows = await _supply_rows(store)
        back = {r.id: r for r in await store.readings()}
    assert rows == [("s0", 50), ("s24", 50), ("s48", 50)]
    assert back["s47"].supplies == steady[47].supplies
    assert back["gone"].supplies == ()


async def test_a_reading_of_supplies_alone_that_changed_nothing_is_stored_not_a_duplicate(store_url: str) -> None:
    first = reading(reading_id="a")
    only_supplies = dataclasses.replace(reading(reading_id="b", minutes=15), meters=())
    async with Store.open(store_url) as store:
        await store.store([first], now=NOW)
        outcome = await store.store([only_supplies], now=NOW)
        again = await store.store([first], now=NOW)
    assert (outcome.stored, outcome.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 1)  # a copy of a stored reading stays a copy


async def test_a_late_reading_with_a_change_is_kept(store_url: str) -> None:
    async with Store.open(store_url) as store:
        await store.store([reading(reading_id="x0", toner=40), reading(reading_id="x2", minutes=30, toner=40)], now=NOW)
        await store.store([reading(reading_id="x1", minutes=15, toner=30)], now=NOW)  # arrives late
        levels = {r.id: r.supplies[0].level_percent for r in await store.readings()}
        count = len(await _supply_rows(store))
    # x1's change is kept; x2 (stored before, compacted away as unchanged) now reads the late level: the
    # documented limit of late arrivals (daemon/storage/supplies.py), until the next change or heartbeat.
    assert levels == {"x0": 40, "x1": 30, "x2": 30}
    assert count == 2


async def test_the_migration_compacts_old_history_without_losing_a_change(store_url: str) -> None:
    # History written the old way, a row per poll: two days of hourly polls, toner sinking a point every 5 hours.
    polls = [reading(reading_id=f"h{i}", minutes=60 * i, toner=60 - i // 5) for i in range(48)]
    async with Store.open(store_url, upgrade=False) as store:
        await migrate.upgrade(store.engine, "0013")  # the revision before the compaction
        async with store.engine.begin() as conn:
            device = (await conn.execute(insert(Device).returning(Device.id), [_device_row()])).scalar_one()
            await conn.execute(insert(ReadingRow), [_meter_row(r, device) for r in polls])
            await conn.execute(insert(SupplyLevel), [_supply_row(r, device) for r in polls])
        assert len(await _supply_rows(store)) == 48
        await migrate.upgrade(store.engine)
        rows = await _supply_rows(store)
        back = await store.readings()
    # Every change (h0, h5, ..., h45: 10 levels) and a heartbeat for none: no level sat a whole day.
    assert rows == [(f"h{i}", 60 - i // 5) for i in range(0, 48, 5)]
    assert [r.supplies for r in back] == [r.supplies for r in polls]


def _device_row() -> dict[str, object]:
    return {
        "key": "VNCRC48198",
        "vendor": "HP",
        "model": "M130nw",
        "address": "10.0.4.21",
        "site": "acme-hq",
        "first_seen": T0,
        "last_seen": T0,
    }


def _meter_row(r: Reading, device: int) -> dict[str, object]:
    return {
        "reading_id": r.id,
        "device_id": device,
        "meter": "total",
        "value": r.meters[0].value,
        "unit": "impressions",
        "derived": False,
        "taken_at": r.taken_at_utc,
        "received_at": NOW,
        "source": "test",
    }


def _supply_row(r: Reading, device: int) -> dict[str, object]:
    s = r.supplies[0]
    return {
        "reading_id": r.id,
        "device_id": device,
        "taken_at": r.taken_at_utc,
        "name": s.name,
        "kind": s.kind,
        "color": s.color,
        "level_percent": s.level_percent,
    }


async def test_toner_that_drops_once_while_the_total_stands_still_is_still_found_from_compacted_levels(
    store_url: str,
) -> None:
    # 60 %, unchanged (its last row the heartbeat at hour 48), then one drop to 50 % while the total stood still:
    # no row of the stand-still shows the 60 it fell from.
    start = T0 + timedelta(hours=50)
    polls = [reading(reading_id=f"b{h}", minutes=60 * h, total=7_000 + 50 * h, toner=60) for h in range(50)]
    polls += [
        reading(reading_id=f"s{h}", at=start, minutes=60 * h, total=9_400, toner=60 if h < 10 else 50)
        for h in range(11)
    ]
    async with Store.open(store_url) as store:
        await store.store(polls, now=NOW)
        anomalies = AnomalyStore(store)
        created = await detect_new(
            anomalies, DetectorSettings(), now=start + timedelta(hours=10, minutes=5), poll_interval_s=3600
        )
    found = [a for a in created if a.kind == "uncounted"]
    assert [(f.evidence["level_from"], f.evidence["level_to"]) for f in found] == [(60, 50)]


async def test_a_change_another_writer_stored_is_not_lost_through_this_stores_cache(store_url: str) -> None:
    # Two hubs on one store (each a Store with its own cache of last levels). Hub A last stored 50 %;
    # hub B then stores the drop to 40 %; A's next reading is 50 % again (a new cartridge). A's cache
    # still says 50 %: trusted, A would skip its row and the reading would read back B's 40 %.
    polls = [reading(reading_id=f"r{i}", minutes=15 * i, toner=toner) for i, toner in enumerate([50, 40, 50, 50, 50])]
    async with Store.open(store_url) as hub_a, Store.open(store_url) as hub_b:
        await hub_a.store([polls[0]], now=NOW)
        await hub_b.store([polls[1]], now=NOW)
        await hub_a.store([polls[2]], now=NOW)
        # Then the two take turns at the same level: once the stale entry is found, they settle on the store's rows.
        await hub_b.store([polls[3]], now=NOW)
        await hub_a.store([polls[4]], now=NOW)
        levels = {r.id: r.supplies[0].level_percent for r in await hub_a.readings()}
        rows = await _supply_rows(hub_a)
    assert levels == {"r0": 50, "r1": 40, "r2": 50, "r3": 50, "r4": 50}
    assert rows[:3] == [("r0", 50), ("r1", 40), ("r2", 50)]
    # Settled: r4 is not written. (PostgreSQL writes r3, B's entry being 40 %; on SQLite B sees A's row first.)
    assert rows[3:] in ([], [("r3", 50)])


async def test_a_store_row_removed_behind_the_cache_is_written_again(store_url: str) -> None:
    # The cache's row gone (someone deleted it by hand): the cache's "unchanged" would leave the reading without
    # a level; the store's check writes it.
    async with Store.open(store_url) as store:
        await store.store([reading(reading_id="k0", toner=30)], now=NOW)
        async with store.engine.begin() as conn:
            await conn.execute(SupplyLevel.__table__.delete())
        await store.store([reading(reading_id="k1", minutes=15, toner=30)], now=NOW)
        levels = {r.id: r.supplies[0].level_percent if r.supplies else None for r in await store.readings()}
    assert levels == {"k0": None, "k1": 30}


async def test_the_cache_spares_the_store_its_level_query_once_warm(store_url: str) -> None:
    # One writer, level unchanged: after the first batch (cold, read from the store), the cache answers and every
    # unchanged supply is a guarded row the store declines; entries are known for every supply seen.
    async with Store.open(store_url) as store:
        await store.store([reading(reading_id="w0", toner=70)], now=NOW)
        statements: list[str] = []
        listener = _record(statements)
        sqlalchemy_event.listen(store.engine.sync_engine, "before_cursor_execute", listener)
        await store.store([reading(reading_id=f"w{i}", minutes=15 * i, toner=70) for i in range(1, 5)], now=NOW)
        sqlalchemy_event.remove(store.engine.sync_engine, "before_cursor_execute", listener)
        rows = await _supply_rows(store)
    assert len(store.last_levels) == 1
    assert rows == [("w0", 70)]
    assert not [s for s in statements if s.lstrip().startswith("SELECT") and "supplies.level_percent" in s]


def _record(statements: list[str]) -> Callable[..., None]:
    def listener(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    return listener
