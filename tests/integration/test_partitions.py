"""`readings` by month on PostgreSQL (migration 0021, daemon/storage/partitions.py), and the copy key with taken_at."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import insert, text
from sqlalchemy.engine import Connection

from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.storage import migrate
from daemon.storage.models import Device, ReadingRow
from daemon.storage.repository import Store
from tests.factories import reading

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
_PARTITIONS = text(
    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings' ORDER BY 1"
)


async def _partitions(store: Store) -> list[str]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(_PARTITIONS)).scalars())


@pytest.mark.postgres
async def test_the_store_makes_this_month_and_the_next_two_and_any_month_a_backfill_brings(pg_url: str) -> None:
    async with Store.open(pg_url) as store:
        async with store.engine.connect() as conn:
            kind = (await conn.execute(text("SELECT relkind FROM pg_class WHERE relname = 'readings'"))).scalar_one()
        assert kind == "p"  # partitioned
        await store.make_partitions_ahead(NOW)
        assert {"readings_y2026m12", "readings_y2027m01", "readings_y2027m02"} <= set(await _partitions(store))
        pipeline = Pipeline(store, Metrics(), clock=lambda: NOW)
        old = reading(reading_id="from-2019", at=datetime(2019, 3, 31, 23, 59, tzinfo=UTC))
        assert (await pipeline.emit([old])).stored == 1
        assert "readings_y2019m03" in await _partitions(store)
        assert (await pipeline.emit([old])).duplicates == 1  # a copy is still one
        async with store.engine.connect() as conn:
            where = await conn.execute(text("SELECT DISTINCT tableoid::regclass::text FROM readings"))
            assert list(where.scalars()) == ["readings_y2019m03"]


@pytest.mark.postgres
async def test_two_stores_making_the_same_month_at_once_both_succeed(pg_url: str) -> None:
    async with Store.open(pg_url) as first, Store.open(pg_url, upgrade=False) as second:
        one = reading(reading_id="a", at=datetime(2020, 7, 1, tzinfo=UTC))
        two = reading(reading_id="b", serial="OTHER", at=datetime(2020, 7, 2, tzinfo=UTC))
        outcomes = await asyncio.gather(first.store([one], now=NOW), second.store([two], now=NOW))
        assert [o.stored for o in outcomes] == [1, 1]
        assert (await _partitions(first)).count("readings_y2020m07") == 1


async def test_readings_stored_before_0021_are_all_there_after_it_and_copies_still_count_once(store_url: str) -> None:
    months = [datetime(2025, 11, 30, 23, 0, tzinfo=UTC), datetime(2026, 1, 15, tzinfo=UTC)]
    async with Store.open(store_url, upgrade=False) as store:
        await migrate.upgrade(store.engine, "0020")
        async with store.engine.begin() as conn:
            device = await conn.execute(
                insert(Device).values(
                    key="VNCRC48198", vendor="HP", model="M130nw", site="acme-hq", first_seen=months[0], last_seen=NOW
                )
            )
            for n, at in enumerate(months):
                await conn.execute(
                    insert(ReadingRow.__table__).values(
                        reading_id=f"before-{n}",
                        device_id=device.inserted_primary_key[0],
                        meter="total",
                        value=100 + n,
                        unit="impressions",
                        derived=False,
                        taken_at=at,
                        received_at=at,
                        source="snmp",
                    )
                )
        await migrate.upgrade(store.engine)
        stored = await store.readings()
        assert [(r.id, r.taken_at_utc) for r in stored] == [("before-0", months[0]), ("before-1", months[1])]
        # The same reading again, now with mono and scans too: only their rows are new.
        again = reading(reading_id="before-1", at=months[1])
        assert [m.meter.value for m in again.meters] == ["total", "mono", "scan_total"]
        assert (await Pipeline(store, Metrics(), clock=lambda: NOW).emit([again])).values == 2
        if store.engine.dialect.name == "postgresql":
            assert {"readings_y2025m11", "readings_y2025m12", "readings_y2026m01"} <= set(await _partitions(store))
            # A later reading gets an id from the sequence the old table had, past the old rows'.
            new = reading(reading_id="after", at=NOW)
            await store.store([new], now=NOW)
            async with store.engine.connect() as conn:
                ids = list((await conn.execute(text("SELECT id FROM readings ORDER BY taken_at"))).scalars())
            assert ids == sorted(set(ids))


async def test_0021_goes_back_down_with_every_row(store_url: str) -> None:
    async with Store.open(store_url) as store:
        await store.store([reading(reading_id="kept", at=NOW)], now=NOW)

        def _down(connection: Connection) -> None:
            config = migrate.alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "0020")

        async with store.engine.begin() as conn:
            await conn.run_sync(_down)
        assert [r.id for r in await store.readings()] == ["kept"]
        await migrate.upgrade(store.engine)
        assert [r.id for r in await store.readings()] == ["kept"]
