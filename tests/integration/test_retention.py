"""storage.raw_retention_months: old raw readings thinned to each day's ends, and the bill does not change."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import func, insert, select

from billing.reads import ReadRules
from daemon.kernel.reading import Meter, MeterValue, Reading
from daemon.services.billing import measure_usage
from daemon.services.metrics import Metrics
from daemon.services.retention import thin_old_readings
from daemon.storage.billing import BillingStore
from daemon.storage.models import AnomalyReading, AnomalyRow, Device, ReadingRow
from daemon.storage.repository import Store
from daemon.storage.retention import cutoff, prune_readings
from tests.factories import reading

JAN_1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2026, 2, 1, tzinfo=UTC)
DEVICES = ("A1", "B2", "C3")


def _fleet() -> list[Reading]:
    """Three printers read every 15 minutes through January, printing at random during office hours."""
    rng = random.Random(24)
    readings = []
    for serial in DEVICES:
        total = rng.randrange(10_000, 90_000)
        at = JAN_1
        while at < FEB_1:
            if 7 <= at.hour < 19 and at.weekday() < 5:
                total += rng.randrange(0, 40)
            base = reading(serial=serial, at=at, reading_id=f"{serial}-{at:%d%H%M}", source="snmp")
            readings.append(replace(base, meters=(MeterValue(Meter.TOTAL, total),), supplies=()))
            at += timedelta(minutes=15)
    return readings


async def _usage(store: Store) -> pd.DataFrame:
    periods = [
        (JAN_1, JAN_1 + timedelta(days=10)),
        (JAN_1 + timedelta(days=10), FEB_1),
        (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 20, tzinfo=UTC)),
    ]
    requests = pd.DataFrame(
        [(device, "total", pd.Timestamp(start), pd.Timestamp(end)) for device in DEVICES for start, end in periods],
        columns=["device", "meter", "start", "end"],
    )
    usage = await measure_usage(BillingStore(store), requests, ReadRules())
    return usage[["usage", "start_value", "end_value", "start_at", "end_at"]].reset_index(drop=True)


async def _count(store: Store, *where: object) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(ReadingRow).where(*where))).scalar_one())


async def test_thinning_keeps_each_days_ends_and_every_bill_the_same(store_url: str) -> None:
    now = datetime(2026, 12, 5, 9, tzinfo=UTC)
    async with Store.open(store_url) as store:
        fleet = _fleet()
        for start in range(0, len(fleet), 500):
            await store.store(fleet[start : start + 500], now=now)
        person = replace(
            fleet[100], id="typed-in", source="manual", taken_at=fleet[100].taken_at + timedelta(minutes=1)
        )
        await store.store([person], now=now)
        evidence = fleet[200]  # mid-day: would go, but an anomaly holds it as evidence
        async with store.engine.begin() as conn:
            device_id = (await conn.execute(select(Device.id).where(Device.key == evidence.device.key))).scalar_one()
            anomaly = await conn.execute(
                insert(AnomalyRow).values(
                    kind="spike",
                    severity="warning",
                    device_id=device_id,
                    meter="total",
                    window_start=evidence.taken_at,
                    window_end=evidence.taken_at,
                    evidence="{}",
                    holds=False,
                    status="resolved",
                    detected_at=now,
                )
            )
            await conn.execute(
                insert(AnomalyReading).values(anomaly_id=anomaly.inserted_primary_key[0], reading_id=evidence.id)
            )
        before = await _usage(store)
        rows_before = await _count(store)

        metrics = Metrics()
        pruned = await thin_old_readings(store, 10, metrics, now)  # cut-off: 5 February 2026

        assert cutoff(now, 10) == datetime(2026, 2, 5, tzinfo=UTC)
        assert pruned.days == 35
        rows_after = await _count(store)
        assert rows_after == len(DEVICES) * 31 * 2 + 2  # each day's first and last, the manual one, the evidence
        assert pruned.rows == rows_before - rows_after
        assert metrics.registry.get_sample_value("meterd_meter_values_pruned_total") == pruned.rows
        assert await _count(store, ReadingRow.reading_id == "typed-in") == 1
        assert await _count(store, ReadingRow.reading_id == evidence.id) == 1
        pd.testing.assert_frame_equal(await _usage(store), before)
        # Done is done: the next run starts where this one stopped.
        assert (await prune_readings(store, cutoff(now, 10))).days == 0


def test_the_cutoff_is_a_utc_midnight_months_back_and_the_31st_falls_back() -> None:
    assert cutoff(datetime(2026, 3, 31, 15, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert cutoff(datetime(2026, 1, 15, tzinfo=UTC), 13) == datetime(2024, 12, 15, tzinfo=UTC)
