"""Detection, holding and review end to end on both stores: a held reading keeps its usage off until resolved."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from billing.anomalies import DetectorSettings
from billing.contracts import Contract, parse_contract
from billing.customers import Customer, parse_customer
from billing.reads import REQUEST_COLUMNS, ReadRules
from daemon.cli.main import main
from daemon.kernel.reading import DeviceInfo, Meter, MeterValue, Reading
from daemon.services.anomaly_detection import detect_new
from daemon.services.anomaly_job import AnomalyJob
from daemon.services.billing import measure_usage
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.services.review import resolve
from daemon.settings import Settings
from daemon.storage.anomalies import AnomalyRecord, AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store
from tests.factories import reading
from tests.integration.test_notify import Hook
from tests.integration.test_notify import hook as hook  # noqa: PLC0414 - the fixture, by its name

START = datetime(2026, 11, 2, tzinfo=UTC)
NOW = START + timedelta(days=3)


def _fleet() -> list:  # type: ignore[type-arg]
    """Two days of 15-minute readings; SER1 has one impossible jump; SER2 is clean."""
    readings = []
    for n in range(2 * 96):
        at = START + timedelta(minutes=15 * n)
        readings.append(reading(serial="SER2", at=at, total=50_000 + 3 * n, reading_id=f"s2-{n}", address="10.0.4.22"))
        glitch = 900_000 if n == 100 else 0  # one reading 900,000 pages too high, then back
        readings.append(reading(serial="SER1", at=at, total=10_000 + 5 * n + glitch, reading_id=f"s1-{n}"))
    return readings


async def _usage(store: Store) -> dict[str, int]:
    """Total pages per device over the two days, as billing measures them (held readings left out)."""
    span = (pd.Timestamp(START), pd.Timestamp(START + timedelta(days=2)))
    requests = pd.DataFrame([(device, "total", *span) for device in ("SER1", "SER2")], columns=REQUEST_COLUMNS)
    table = await measure_usage(BillingStore(store), requests, ReadRules())
    return {device: int(pages) for device, pages in zip(requests["device"], table["usage"], strict=True)}


async def _held(store: Store) -> set[str]:
    """The ids of the readings usage leaves out."""
    return set((await BillingStore(store).held_readings()).values())


async def test_a_jump_is_held_from_usage_until_approved(store_url: str, tmp_path: Path) -> None:
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(_fleet())
        anomalies = AnomalyStore(store)
        created = await detect_new(anomalies, DetectorSettings(), now=NOW, poll_interval_s=900)
        suspect = sorted((a.kind, a.device, a.meter) for a in created if a.kind != "stale")
        assert suspect == [
            ("jump", "SER1", "mono"),
            ("jump", "SER1", "total"),
            ("reset", "SER1", "mono"),
            ("reset", "SER1", "total"),
        ]
        assert await _held(store) == {"s1-99", "s1-100", "s1-101"}
        # Held: the glitch is left out, so SER1's usage is its steady 5 pages per interval.
        assert await _usage(store) == {"SER1": 5 * 191, "SER2": 3 * 191}
        again = await detect_new(anomalies, DetectorSettings(), now=NOW, poll_interval_s=900)
        assert [a for a in again if a.kind != "stale"] == []  # idempotent, and nothing new arrived
    config = tmp_path / "meterd.toml"
    config.write_text(f'[storage]\nurl = "{store_url}"\n')
    for anomaly in created:
        if anomaly.kind in {"jump", "reset"}:
            argv = [
                "anomalies",
                "resolve",
                str(anomaly.id),
                "--action",
                "approve",
                "--reason",
                "checked",
                "--by",
                "alice",
                "--config",
                str(config),
            ]
            assert await asyncio.to_thread(main, argv) == 0
    async with Store.open(store_url) as store:
        assert await _held(store) == set()
        # Approved as is: the 900,005-page step counts, the step back starts a new segment.
        assert (await _usage(store))["SER1"] == 5 * 99 + 900_005 + 5 * 90


async def test_replace_with_a_manual_reading_is_audited_and_keeps_the_suspect_out(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(_fleet())
        created = await detect_new(AnomalyStore(store), DetectorSettings(), now=NOW, poll_interval_s=900)
    jump = next(a for a in created if a.kind == "jump")
    config = tmp_path / "meterd.toml"
    config.write_text(f'[storage]\nurl = "{store_url}"\n')
    argv = [
        "anomalies",
        "resolve",
        str(jump.id),
        "--action",
        "replace",
        "--value",
        str(10_000 + 5 * 100),
        "--reason",
        "read off the panel",
        "--by",
        "bob",
        "--config",
        str(config),
    ]
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    show = ["anomalies", "show", str(jump.id), "--format", "json", "--config", str(config)]
    assert await asyncio.to_thread(main, show) == 0
    shown = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert (shown["status"], shown["resolution"], shown["resolved_by"]) == ("resolved", "replaced", "bob")
    async with Store.open(store_url) as store:
        held = await _held(store)
        assert "s1-100" in held  # the suspect reading stays out for good
        manual = [r for r in await store.readings(device="SER1") if r.source == "manual"]
        assert [m.meters[0].value for m in manual] == [10_500]
        async with store.engine.connect() as conn:
            from sqlalchemy import text  # noqa: PLC0415

            audit = (await conn.execute(text("SELECT actor, action, target, detail FROM audit_log"))).all()
    assert [(a, b, c) for a, b, c, _ in audit] == [("bob", "anomaly.replaced", f"anomaly:{jump.id}")]
    assert json.loads(audit[0][3])["reason"] == "read off the panel"


async def test_a_silent_device_is_stale_once_and_recovers_by_itself(store_url: str) -> None:
    async with Store.open(store_url) as store:
        pipeline = Pipeline(store, Metrics())
        await pipeline.emit([reading(serial="SER9", at=START, total=1, reading_id="x1")])
        anomalies = AnomalyStore(store)
        first = await detect_new(anomalies, DetectorSettings(), now=START + timedelta(hours=2), poll_interval_s=900)
        second = await detect_new(anomalies, DetectorSettings(), now=START + timedelta(hours=3), poll_interval_s=900)
        assert [a.kind for a in first] == ["stale"]
        assert second == []  # the same outage is one anomaly
        await pipeline.emit([reading(serial="SER9", at=START + timedelta(hours=4), total=2, reading_id="x2")])
        await detect_new(anomalies, DetectorSettings(), now=START + timedelta(hours=4, minutes=5), poll_interval_s=900)
        stale = await anomalies.get(first[0].id)
    assert (stale.status, stale.resolution, stale.resolved_by) == ("resolved", "recovered", "system")


async def test_toner_going_while_the_total_stands_still_is_found_from_the_stored_supplies(store_url: str) -> None:
    # SER7 answers every hour with the same total while its toner goes from 60 % to 50 %; SER8 prints as it should.
    fleet = [
        reading(
            serial="SER7",
            at=START + timedelta(hours=h),
            total=7_000,
            toner=60 - h,
            reading_id=f"u7-{h}",
            address="10.0.4.27",
        )
        for h in range(11)
    ]
    fleet += [
        reading(
            serial="SER8",
            at=START + timedelta(hours=h),
            total=8_000 + 30 * h,
            toner=60 - h,
            reading_id=f"u8-{h}",
            address="10.0.4.28",
        )
        for h in range(11)
    ]
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(fleet)
        anomalies = AnomalyStore(store)
        now = START + timedelta(hours=10, minutes=5)
        created = await detect_new(anomalies, DetectorSettings(), now=now, poll_interval_s=3600)
        found = [a for a in created if a.kind == "uncounted"]
        assert [(a.device, a.meter, a.severity, a.holds) for a in found] == [("SER7", "total", "warning", False)]
        assert (found[0].evidence["level_from"], found[0].evidence["level_to"]) == (60, 50)
        assert found[0].evidence["supply"] == "Black Cartridge HP CF217A"
        assert await _held(store) == set()


async def test_a_sites_own_knobs_judge_its_devices(store_url: str) -> None:
    # Two devices silent for two hours, polled every 15 minutes: stale after 3 intervals by default,
    # but the warehouse's printers are polled through a slow link and get 20.
    settings = Settings.model_validate({"anomalies": {"sites": {"warehouse": {"stale_intervals": 20}}}})
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(
            [
                reading(serial="OFFICE1", at=START, reading_id="o1", site="acme-hq"),
                reading(serial="WARE1", at=START, reading_id="w1", site="warehouse", address="10.9.0.1"),
            ]
        )
        await AnomalyJob(settings, store, Metrics(), lambda: START + timedelta(hours=2)).run()
        found = await AnomalyStore(store).find(kind="stale")
    assert [(a.device, a.evidence["silent_s"]) for a in found] == [("OFFICE1", 7200)]


@pytest.mark.parametrize("hook", [[503, 200]], indirect=True)
async def test_each_new_anomaly_is_posted_to_the_hook_retried_after_a_failure(store_url: str, hook: Hook) -> None:
    settings = Settings.model_validate({"anomalies": {"notify_url": hook.url, "notify_attempts": 2}})
    metrics = Metrics()
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(
            [
                reading(serial="SER5", at=START, total=1_000, reading_id="h1"),
                reading(serial="SER5", at=START + timedelta(minutes=15), total=900_000, reading_id="h2"),
            ]
        )
        await AnomalyJob(settings, store, metrics, lambda: START + timedelta(minutes=20)).run()
    posted = [(body["kind"], body["device"], body["meter"]) for body in hook.received]
    # A 899,000-page step in 15 minutes: a jump on total and on mono. The first POST met a 503 and was
    # tried again; then each of the two arrived once.
    assert len(posted) == 3
    assert posted[0] == posted[1]
    assert sorted(posted[1:]) == [("jump", "SER5", "mono"), ("jump", "SER5", "total")]
    assert metrics.registry.get_sample_value("meterd_anomaly_notifications_total") == 2


def _colour_readings(hours: range, *, faulty: set[int]) -> list[Reading]:
    """Hourly readings of CLR1 (500,000 pages), 40 mono and 10 colour an hour; colour counts twice in ``faulty``."""
    readings = []
    for hour in hours:
        doubled = sum(1 for h in faulty if h <= hour)
        mono, color = 400_000 + 40 * (hour + 1), 100_000 + 10 * (hour + 1) + 10 * doubled
        readings.append(
            Reading(
                site="acme-hq",
                taken_at=START + timedelta(hours=hour),
                device=DeviceInfo(key="CLR1", vendor="HP", model="Color LaserJet M479", address="10.0.4.31"),
                meters=(
                    MeterValue(Meter.TOTAL, 500_000 + 50 * (hour + 1)),
                    MeterValue(Meter.MONO, mono),
                    MeterValue(Meter.COLOR, color),
                ),
                source="test",
                id=f"c-{hour}",
            )
        )
    return readings


async def test_an_inconsistent_device_is_one_episode_a_decision_covers_until_the_condition_ends(
    store_url: str,
) -> None:
    # Colour counted twice for a day from hour 48, and again from hour 130.
    faulty = {*range(48, 72), *range(130, 150)}
    async with Store.open(store_url) as store:
        pipeline = Pipeline(store, Metrics())
        anomalies = AnomalyStore(store)

        async def run(hours: range) -> list[AnomalyRecord]:
            await pipeline.emit(_colour_readings(hours, faulty=faulty))
            now = START + timedelta(hours=hours.stop)
            created = await detect_new(anomalies, DetectorSettings(), now=now, poll_interval_s=3600)
            return [a for a in created if a.kind != "stale"]

        assert [a.kind for a in await run(range(60))] == ["inconsistent"]
        [episode] = await anomalies.find(kind="inconsistent")
        assert episode.occurrences > 1
        assert episode.ended_at is None
        assert "c-59" in await _held(store)
        await resolve(store, episode.id, action="approve", value=None, actor="alice", reason="checked", now=NOW)
        # Still counting colour twice: the readings join the approved episode, no new item, nothing held.
        assert await run(range(60, 72)) == []
        [joined] = await anomalies.find(kind="inconsistent", status=None)
        assert (joined.id, joined.status) == (episode.id, "resolved")
        assert joined.occurrences > episode.occurrences
        assert joined.window_end == START + timedelta(hours=71)
        assert await _held(store) == set()
        # Fixed: a day later every interval agrees again, and the episode is over.
        assert await run(range(72, 130)) == []
        [ended] = await anomalies.find(kind="inconsistent", status=None)
        assert ended.ended_at is not None
        # The fault comes back: a new episode, open and holding again.
        again = await run(range(130, 150))
        assert [(a.kind, a.status) for a in again] == [("inconsistent", "open")]
        assert again[0].id != episode.id
        assert "c-149" in await _held(store)


async def test_anomalies_list_pages_and_says_how_many_more(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(
            [reading(serial=f"QUIET{n}", at=START, reading_id=f"q{n}", address=f"10.0.5.{n}") for n in range(5)]
        )
        await detect_new(AnomalyStore(store), DetectorSettings(), now=START + timedelta(hours=2), poll_interval_s=900)
    config = tmp_path / "meterd.toml"
    config.write_text(f'[storage]\nurl = "{store_url}"\n')
    listing = ["anomalies", "list", "--status", "all", "--format", "json", "--config", str(config)]
    pages = []
    for offset in (0, 2, 4):
        capsys.readouterr()
        assert await asyncio.to_thread(main, [*listing, "--limit", "2", "--offset", str(offset)]) == 0
        out, err = capsys.readouterr()
        pages.append(([a["device"] for a in json.loads(out)], err.strip()))
    assert [len(devices) for devices, _ in pages] == [2, 2, 1]
    assert sorted(d for devices, _ in pages for d in devices) == [f"QUIET{n}" for n in range(5)]
    assert [note for _, note in pages] == [
        "anomalies (all): 1-2 of 5; 3 more: --offset 2",
        "anomalies (all): 3-4 of 5; 1 more: --offset 4",
        "anomalies (all): 5-5 of 5",
    ]
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["anomalies", "list", "--limit", "3", "--config", str(config)]) == 0
    assert "1-3 of 5; 2 more: --offset 3" in capsys.readouterr().out


def _customer(code: str) -> Customer:
    return parse_customer(
        {
            "code": code,
            "legal_name": f"{code} GmbH",
            "country": "DE",
            "currency": "EUR",
            "address": {"street": "Hauptstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
            "contacts": [{"name": "Accounts", "email": f"ap@{code.lower()}.example", "billing": True}],
        }
    )


def _per_page(customer: str, price: str) -> Contract:
    return parse_contract(
        {
            "id": f"{customer}-1",
            "customer": customer,
            "versions": [
                {
                    "valid_from": "2026-01-01",
                    "currency": "EUR",
                    "meters": [{"meter": "total", "tiers": [{"price": price}]}],
                }
            ],
        }
    )


async def test_the_review_queue_puts_the_most_money_first_by_customer_and_device_and_acks_a_kind_at_once(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # DEVX (customer X, 0.01 a page) and DEVY (customer Y, 0.05 a page) each show one reading far too high.
    fleet = []
    for n in range(2 * 96):
        at = START + timedelta(minutes=15 * n)
        fleet.append(
            reading(
                serial="DEVX",
                at=at,
                total=10_000 + 5 * n + (900_000 if n == 100 else 0),
                reading_id=f"x-{n}",
                address="10.0.6.1",
            )
        )
        fleet.append(
            reading(
                serial="DEVY",
                at=at,
                total=20_000 + 5 * n + (100_000 if n == 100 else 0),
                reading_id=f"y-{n}",
                address="10.0.6.2",
            )
        )
    async with Store.open(store_url) as store:
        await Pipeline(store, Metrics()).emit(fleet)
        billing = BillingStore(store)
        await billing.save_customers([_customer("X"), _customer("Y")], actor="t", now=NOW)
        for customer, device, price in (("X", "DEVX", "0.01"), ("Y", "DEVY", "0.05")):
            await billing.save_contract(_per_page(customer, price), actor="t", now=NOW)
            await billing.assign(device, customer, start=START.date(), actor="t", now=NOW)
        await detect_new(AnomalyStore(store), DetectorSettings(), now=NOW, poll_interval_s=900)
    config = tmp_path / "meterd.toml"
    config.write_text(f'[storage]\nurl = "{store_url}"\n')
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["anomalies", "queue", "--format", "json", "--config", str(config)]) == 0
    queue = json.loads(capsys.readouterr().out)
    groups = list(dict.fromkeys((item["customer"], item["anomaly"]["device"]) for item in queue))
    assert groups[:2] == [("X", "DEVX"), ("Y", "DEVY")]  # 9,000 EUR held back before 5,000
    first = queue[0]
    assert (first["anomaly"]["kind"], first["anomaly"]["meter"]) == ("jump", "total")
    # From the reading before the held ones (10,490) to the last held (910,500), at 0.01 a page.
    assert (first["pages_held"], Decimal(first["at_stake"]), first["currency"]) == (900_010, Decimal("9000.10"), "EUR")
    devy = next(item for item in queue if item["anomaly"]["device"] == "DEVY")
    assert Decimal(devy["at_stake"]) == Decimal("0.05") * 100_010
    # Bulk: every open jump on DEVX at once; its reset and DEVY's stay open.
    ack = ["anomalies", "ack", "--device", "DEVX", "--kind", "jump", "--reason", "calling the site", "--by", "carol"]
    assert await asyncio.to_thread(main, [*ack, "--config", str(config)]) == 0
    async with Store.open(store_url) as store:
        states = {(a.device, a.kind, a.meter): a.status for a in await AnomalyStore(store).find(status=None)}
    assert states[("DEVX", "jump", "total")] == states[("DEVX", "jump", "mono")] == "acknowledged"
    assert states[("DEVX", "reset", "total")] == states[("DEVY", "jump", "total")] == "open"
    # show: the detector's numbers and the readings around the episode, the held ones marked.
    capsys.readouterr()
    assert (
        await asyncio.to_thread(main, ["anomalies", "show", str(first["anomaly"]["id"]), "--config", str(config)]) == 0
    )
    shown = capsys.readouterr().out
    assert "step: 900005" in shown
    assert "max_plausible_step: 7500" in shown
    lines = [line for line in shown.splitlines() if "x-" in line]
    assert [re.findall(r"x-\d+", line)[0] for line in lines] == [f"x-{n}" for n in range(94, 106)]
    assert [n for n, line in zip(range(94, 106), lines, strict=True) if "held" in line] == [99, 100]


async def test_a_spike_whose_next_day_stays_up_is_withdrawn_as_a_level_shift(store_url: str) -> None:
    # Five weeks of ~300 pages on weekdays, then 1,500 on a Monday: a spike, held. The Tuesday prints
    # 1,400: the level stayed up, a busy spell, and the spike is closed by the system.
    start = datetime(2026, 9, 7, 17, tzinfo=UTC)  # a Monday, end of the working day
    pages = [0 if (start + timedelta(days=d)).weekday() >= 5 else 300 + 10 * (d % 3) for d in range(35)]
    totals = [10_000 + sum(pages[: d + 1]) for d in range(35)]
    readings = [
        reading(serial="BUSY", at=start + timedelta(days=d), total=t, reading_id=f"b-{d}") for d, t in enumerate(totals)
    ]
    monday, tuesday = start + timedelta(days=35), start + timedelta(days=36)
    async with Store.open(store_url) as store:
        pipeline, anomalies = Pipeline(store, Metrics()), AnomalyStore(store)
        await pipeline.emit([*readings, reading(serial="BUSY", at=monday, total=totals[-1] + 1_500, reading_id="b-mo")])
        created = await detect_new(
            anomalies, DetectorSettings(), now=monday + timedelta(hours=1), poll_interval_s=86_400
        )
        [spike] = [a for a in created if (a.kind, a.meter) == ("spike", "total")]
        assert "b-mo" in await _held(store)
        await pipeline.emit([reading(serial="BUSY", at=tuesday, total=totals[-1] + 2_900, reading_id="b-tu")])
        created = await detect_new(
            anomalies, DetectorSettings(), now=tuesday + timedelta(hours=1), poll_interval_s=86_400
        )
        assert ("level_shift", "total", "info", False) in {(a.kind, a.meter, a.severity, a.holds) for a in created}
        withdrawn = await anomalies.get(spike.id)
        assert (withdrawn.status, withdrawn.resolution, withdrawn.resolved_by) == ("resolved", "level_shift", "system")
        assert "b-mo" not in await _held(store)
