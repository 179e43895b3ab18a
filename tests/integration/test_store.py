"""The store on SQLite and PostgreSQL: migrations, idempotent writes, UTC, one daemon per store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, insert, inspect, select

from daemon.kernel.errors import AlreadyRunningError, DatabaseUnreachableError, PayloadError, StorageError
from daemon.kernel.reading import Meter, MeterValue, Supply
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.storage import migrate
from daemon.storage.audit import AuditMissingError, write_audit
from daemon.storage.billing import BillingStore
from daemon.storage.lock import daemon_lock
from daemon.storage.models import Base, CustomerRow, UserRow
from daemon.storage.partitions import not_a_partition
from daemon.storage.repository import Store
from tests.factories import T0, reading

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


async def test_migrations_build_the_schema_from_empty(store_url: str) -> None:
    async with Store.open(store_url, upgrade=False) as store:
        assert await migrate.current_revision(store.engine) is None
        await migrate.upgrade(store.engine)
        assert await migrate.current_revision(store.engine) == migrate.head_revision()
        async with store.engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    assert {"devices", "readings", "supplies", "dead_letters", "alembic_version"} <= tables


async def test_migrations_match_the_models(store_url: str) -> None:
    """A model change without a migration fails here."""
    async with Store.open(store_url) as store, store.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True, "include_name": not_a_partition}),
                Base.metadata,
            )
        )
    assert diff == []


async def test_upgrade_twice_is_a_no_op(store_url: str) -> None:
    async with Store.open(store_url) as store:
        await migrate.upgrade(store.engine)
        assert await migrate.current_revision(store.engine) == migrate.head_revision()


async def test_a_store_at_the_head_is_told_without_alembic_and_an_older_one_still_migrates(store_url: str) -> None:
    head = migrate.head_revision()
    assert migrate.script_head() == head  # the revision files read as text agree with Alembic
    async with Store.open(store_url, upgrade=False) as store:
        assert not await migrate.at_head(store.engine)  # empty: no version table yet
        await migrate.upgrade(store.engine, "0018")
        assert not await migrate.at_head(store.engine)
        assert await store.migrate() == ("0018", head)
        assert await migrate.at_head(store.engine)
        assert await store.migrate() == (head, head)
        assert await migrate.current_revision(store.engine) == head


async def test_duplicate_readings_are_dropped_and_counted(store_url: str, metrics: Metrics) -> None:
    async with Store.open(store_url) as store:
        pipeline = Pipeline(store, metrics, clock=lambda: NOW)
        first = reading(reading_id="r-1")
        later = reading(reading_id="r-2", total=15300, minutes=15)
        outcome = await pipeline.emit([first, later])
        assert (outcome.stored, outcome.duplicates, outcome.values) == (2, 0, 6)
        # The same id again, and the same device/meter/instant under a new id: both count once.
        same_instant = reading(reading_id="r-3", minutes=15)
        outcome = await pipeline.emit([first, same_instant])
        assert (outcome.stored, outcome.duplicates, outcome.values) == (0, 2, 0)
        # A copy in the same batch as its original (a redelivered MQTT message can be): one stored, one dropped.
        fresh = reading(reading_id="r-4", total=15400, minutes=30)
        outcome = await pipeline.emit([fresh, fresh])
        assert (outcome.stored, outcome.duplicates) == (1, 1)
        stored = await store.readings()
    assert [r.id for r in stored] == ["r-1", "r-2", "r-4"]
    assert stored[1].meters[0].value == 15300
    registry = metrics.registry  # over the three batches: 2 + 0 + 1 stored, 0 + 2 + 1 dropped, 6 + 0 + 3 values
    assert registry.get_sample_value("meterd_readings_stored_total", {"source": "test"}) == 3
    assert registry.get_sample_value("meterd_readings_duplicate_total", {"source": "test"}) == 3
    assert registry.get_sample_value("meterd_meter_values_stored_total", {"source": "test"}) == 9


async def test_a_reading_partly_stored_already_adds_only_its_new_rows(store_url: str) -> None:
    """Rows already there are skipped one by one; the reading counts as stored for the rows it added."""
    first = reading(reading_id="r-1")
    # The same device and instant under another id, with one meter and one supply the first lacked.
    overlapping = dataclasses.replace(
        first,
        id="r-2",
        meters=(*first.meters, MeterValue(Meter.COLOR, 40)),
        supplies=(*first.supplies, Supply("Drum", "opc", None, 80)),
    )
    untouched = reading(serial="OTHER", reading_id="r-3")
    async with Store.open(store_url) as store:
        await store.store([first], now=NOW)
        outcome = await store.store([overlapping, untouched, first], now=NOW)
        stored = {r.id: r for r in await store.readings()}
    assert (outcome.stored, outcome.duplicates, outcome.values) == (2, 1, 4)
    assert [m.meter for m in stored["r-2"].meters] == [Meter.COLOR]
    # Read back, a reading shows its device's levels as of its time: the toner r-1 stored at that instant too.
    assert [s.name for s in stored["r-2"].supplies] == ["Black Cartridge HP CF217A", "Drum"]
    # Both readings of that instant show the device's levels then, the drum r-2 reported among them.
    assert stored["r-1"] == dataclasses.replace(first, supplies=stored["r-2"].supplies)
    assert stored["r-3"] == untouched


async def test_readings_come_back_field_for_field(store_url: str) -> None:
    original = reading(reading_id="r-1")
    async with Store.open(store_url) as store:
        await store.store([original], now=NOW)
        (back,) = await store.readings(device=original.device.key)
    assert back == original


async def test_times_are_stored_as_utc_and_come_back_aware(store_url: str) -> None:
    istanbul = timezone(timedelta(hours=3))
    local = datetime(2026, 11, 1, 11, 0, tzinfo=istanbul)
    async with Store.open(store_url) as store:
        await store.store([reading(at=local, reading_id="r-tz")], now=NOW)
        (back,) = await store.readings(since=T0, until=T0 + timedelta(seconds=1))
    assert back.taken_at == T0
    assert back.taken_at.tzinfo is UTC


async def test_a_naive_time_never_reaches_the_store() -> None:
    with pytest.raises(PayloadError, match="no time zone"):
        reading(at=datetime(2026, 11, 1, 8, 0))  # noqa: DTZ001 - the point of the test


async def test_time_filters_and_device_filter(store_url: str) -> None:
    async with Store.open(store_url) as store:
        await store.store(
            [reading(reading_id=f"r-{i}", minutes=15 * i, total=100 + i) for i in range(4)]
            + [reading(serial="OTHER", reading_id="o-1")],
            now=NOW,
        )
        window = await store.readings(since=T0 + timedelta(minutes=15), until=T0 + timedelta(minutes=45))
        other = await store.readings(device="OTHER")
    assert [r.id for r in window] == ["r-1", "r-2"]
    assert [r.id for r in other] == ["o-1"]


async def test_devices_track_first_and_last_seen(store_url: str) -> None:
    async with Store.open(store_url) as store:
        await store.store([reading(reading_id="b", minutes=30)], now=NOW)
        await store.store([reading(reading_id="a", minutes=0)], now=NOW)  # late, older reading
        (device,) = await store.devices()
    assert (device.first_seen, device.last_seen) == (T0, T0 + timedelta(minutes=30))


async def test_devices_known_before_0020_get_no_name_and_polling_never_overwrites_the_offices_names(
    store_url: str,
) -> None:
    async with Store.open(store_url, upgrade=False) as store:
        await migrate.upgrade(store.engine, "0019")  # the revision before device names
        await store.store([reading(reading_id="a")], now=NOW)
        await migrate.upgrade(store.engine)
        (device,) = await store.devices()
        assert (device.key, device.name, device.location, device.cost_centre) == ("VNCRC48198", None, None, None)
        labels = {"name": "Empfang", "location": "2. OG", "cost_centre": "4711"}
        assert await BillingStore(store).label_device("VNCRC48198", labels, actor="carla", now=NOW)
        assert not await BillingStore(store).label_device("VNCRC48198", labels, actor="carla", now=NOW)  # unchanged
        await store.store([reading(reading_id="b", minutes=30)], now=NOW)  # a newer poll updates model and address
        device = await store.device("VNCRC48198")
    assert (device.name, device.location, device.cost_centre) == ("Empfang", "2. OG", "4711")
    assert device.last_seen == T0 + timedelta(minutes=30)


async def test_dead_letters_keep_the_raw_input(store_url: str, metrics: Metrics) -> None:
    async with Store.open(store_url) as store:
        pipeline = Pipeline(store, metrics, clock=lambda: NOW)
        assert await pipeline.ingest(b'{"schema": "nope"}', origin="meterd/v1/x/y/reading", source="mqtt") is None
        (letter,) = await store.dead_letters()
    assert (letter.raw, letter.reason, letter.origin) == (
        b'{"schema": "nope"}',
        "unknown_schema",
        "meterd/v1/x/y/reading",
    )
    assert (
        metrics.registry.get_sample_value("meterd_dead_letters_total", {"source": "mqtt", "reason": "unknown_schema"})
        == 1
    )


async def test_a_redelivered_dead_letter_is_one_row_with_a_repeat_count(store_url: str, metrics: Metrics) -> None:
    # Issue 18.2: malformed messages of a batch committed but not acknowledged before a crash
    # came again and got a second row; the metric and its alert over-counted after each restart.
    moments = iter([NOW, NOW + timedelta(minutes=5), NOW + timedelta(minutes=6), NOW + timedelta(days=30)])
    async with Store.open(store_url) as store:
        pipeline = Pipeline(store, metrics, clock=lambda: next(moments))
        topic = "meterd/v1/x/y/reading"
        for raw in (b"{not json", b"{not json", b"{not json either"):
            assert await pipeline.ingest(raw, origin=topic, source="mqtt") is None
        await pipeline.ingest(b"{not json", origin=topic, source="mqtt")  # a month later: a new incident
        letters = await store.dead_letters()
    assert [(d.raw, d.repeats, d.received_at, d.last_received_at) for d in letters] == [
        (b"{not json", 1, NOW + timedelta(days=30), NOW + timedelta(days=30)),
        (b"{not json either", 1, NOW + timedelta(minutes=6), NOW + timedelta(minutes=6)),
        (b"{not json", 2, NOW, NOW + timedelta(minutes=5)),
    ]
    sample = metrics.registry.get_sample_value
    assert sample("meterd_dead_letters_total", {"source": "mqtt", "reason": "invalid_json"}) == 3


async def test_a_second_daemon_on_the_same_store_is_refused(store_url: str) -> None:
    async with Store.open(store_url) as first, Store.open(store_url) as second:
        async with daemon_lock(first.engine, "acme-hq"):
            with pytest.raises(AlreadyRunningError, match=r"another meterd daemon .* is running on"):
                async with daemon_lock(second.engine, "acme-hq"):
                    pass
        async with daemon_lock(second.engine, "acme-hq"):  # released with the first daemon
            pass


async def test_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(
        DatabaseUnreachableError,
        match=r"cannot reach the database at postgresql\+psycopg://"
        r"meterd:\*\*\*@127\.0\.0\.1:1/meterd: .*check storage\.url",
    ):
        async with Store.open("postgresql://meterd:hunter2@127.0.0.1:1/meterd"):
            pass


async def test_a_batch_bigger_than_one_insert_is_stored_whole_and_copies_across_slices_count_once(
    store_url: str, metrics: Metrics
) -> None:
    batch = [reading(serial=f"SER{n:04d}", reading_id=f"r-{n}") for n in range(1_200)]  # three slices of 500
    batch.append(batch[3])  # a copy whose original went in the first slice
    async with Store.open(store_url) as store:
        outcome = await Pipeline(store, metrics, clock=lambda: NOW).emit(batch)
        stored = await store.readings()
        devices = await store.devices()
    assert (outcome.stored, outcome.duplicates, outcome.values) == (1_200, 1, 3_600)
    assert len(stored) == 1_200
    assert len(devices) == 1_200


async def test_a_failed_batch_writes_nothing(store_url: str, metrics: Metrics) -> None:
    """One transaction per batch: a failure midway leaves no half-stored reading."""
    async with Store.open(store_url) as store:
        pipeline = Pipeline(store, metrics, clock=lambda: NOW)
        poisoned = reading(reading_id="x" * 65)  # longer than the column on PostgreSQL; SQLite ignores lengths
        # Enough good readings before it that the poisoned one goes in a later insert of the same transaction.
        good = [reading(reading_id=f"ok-{n}", minutes=15 + n) for n in range(600)]
        if store.engine.dialect.name == "sqlite":
            pytest.skip("SQLite does not enforce VARCHAR lengths; the PostgreSQL run covers this")
        with pytest.raises(StorageError):
            await pipeline.emit([*good, poisoned])
        assert await store.readings() == []
        assert await store.devices() == []
    assert metrics.registry.get_sample_value("meterd_db_errors_total", {"operation": "store_readings"}) == 1


async def test_a_change_to_an_audited_table_without_an_audit_entry_is_not_committed(store_url: str) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    user = {
        "login": "mallory",
        "name": "M",
        "role": "admin",
        "password_hash": "x",
        "recovery_codes": "[]",
        "disabled": False,
        "failed_logins": 0,
        "created_at": now,
        "updated_at": now,
    }
    async with Store.open(store_url) as store:
        with pytest.raises(AuditMissingError, match="refused to commit a change to users with no audit entry"):
            async with store.engine.begin() as conn:
                await conn.execute(insert(UserRow).values(user))
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(UserRow))).scalar_one() == 0
        # The same change with its audit entry commits; a table nobody audits needs none.
        async with store.engine.begin() as conn:
            await conn.execute(insert(UserRow).values(user))
            await write_audit(conn, now, "test", "user.add", "user:mallory", {})
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(UserRow))).scalar_one() == 1
            assert (await conn.execute(select(func.count()).select_from(CustomerRow))).scalar_one() == 0
        # A refused transaction leaves nothing behind on its connection for the next one,
        await store.store([reading(reading_id="after-refusal")], now=now)
        # and neither does one given back to the pool without commit or rollback.
        async with store.engine.connect() as conn:
            await conn.execute(insert(UserRow).values(user | {"login": "walked-away"}))
        await store.store([reading(reading_id="after-walking-away", minutes=1)], now=now)
        assert [r.id for r in await store.readings()][-1] == "after-walking-away"
