"""Device status and faults read at each poll, stored as episodes, service alerts once per episode.

First data: what the real walks in ../shared/walks hold for hrDeviceStatus, hrPrinterStatus,
hrPrinterDetectedErrorState and prtAlertTable. The crafted `hp_status_sequence` recording
(tests/fixtures/snmp) serves its status objects through snmpsim's writecache variation, so a test
sets a jam, a door or paper-out with an SNMP SET and the next poll sees it: no real walk shows
those bits or the mediaPath/cover/input alert groups.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    set_cmd,
)
from pysnmp.proto.rfc1902 import Integer, OctetString
from structlog.testing import capture_logs

from collectors.snmp import status as st
from collectors.snmp.collector import SnmpCollector
from daemon.cli.main import main
from daemon.services.faults import FaultTracker, faults
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.services.polling import PollRound
from daemon.settings import Settings, load
from daemon.storage.faults import FaultStore, Observed
from daemon.storage.repository import Store
from tests.factories import T0, reading
from tests.integration.conftest import Simulator

SEQUENCE = "hp_status_sequence"
SERIAL = "CNBSTATUS01"


@pytest.mark.parametrize(
    ("community", "walks", "device", "printer", "errors", "codes"),
    [
        # librenms/konica_c250i: hrDeviceStatus 3, error state 0100 = serviceRequested.
        ("konica_c250i", "librenms", "warning", None, ("serviceRequested",), []),
        # printmaster/epson_cwc6500au: three "Ink is low." rows (markerSupplies, code 1105) and "Idle".
        ("epson_cwc6500au", "printmaster", "warning", "idle", (), ["markerInkAlmostEmpty"] * 3 + ["other"]),
        # printmaster/kyocera_cs4053ci: powerUp (generalPrinter) and markerFuserUnderTemperature (marker).
        ("kyocera_cs4053ci", "printmaster", "running", "idle", (), ["powerUp", "markerFuserUnderTemperature"]),
        # printmaster/brother_hll8260cdw: one private row, code 0, "Sleep".
        ("brother_hll8260cdw", "printmaster", "running", "idle", (), ["vendor:0"]),
        # librenms/sharp_mxm266nv: hrDeviceStatus only for the printer, error state 0000.
        ("sharp_mxm266nv", "librenms", "running", None, (), []),
    ],
)
async def test_the_real_walks_status_is_decoded_at_the_probe_and_the_next_poll(
    *,
    snmpsim: Simulator,
    community: str,
    walks: str,
    device: str,
    printer: str | None,
    errors: tuple[str, ...],
    codes: list[str],
) -> None:
    async with SnmpCollector(site="test") as collector:
        target = snmpsim.target(community)
        probed = await collector.poll(target)
        warm = await collector.poll(target)
    assert probed.status is not None, walks
    assert (probed.status.device, probed.status.printer, probed.status.errors) == (device, printer, errors)
    assert [a.code for a in probed.status.alerts] == codes
    assert warm.status is not None
    assert (warm.status.device, warm.status.printer, warm.status.errors) == (device, printer, errors)
    # No standing condition in any of these walks' alert tables: the warm poll walks it only if the status is off.
    assert not any(a.is_condition for a in probed.status.alerts)


async def test_a_device_without_status_objects_reports_none(snmpsim: Simulator) -> None:
    async with SnmpCollector(site="test") as collector:
        report = await collector.poll(snmpsim.target("xerox"))  # librenms/xerox: no hrDevice rows recorded
    assert report.status is None


async def _set(snmpsim: Simulator, *binds: tuple[str, Integer | OctetString]) -> None:
    """An SNMP SET to the simulator's writecache: how the test makes the printer jam, open a door, clear."""
    engine = SnmpEngine()
    try:
        error, status, _index, _binds = await set_cmd(
            engine,
            CommunityData(SEQUENCE),
            await UdpTransportTarget.create(("127.0.0.1", snmpsim.port), timeout=4, retries=1),
            ContextData(),
            *(ObjectType(ObjectIdentity(oid), value) for oid, value in binds),
        )
    finally:
        engine.close_dispatcher()
    assert error is None
    assert int(status) == 0


async def _healthy(snmpsim: Simulator) -> None:
    await _set(
        snmpsim,
        (f"{st.HR_DEVICE_STATUS}.1", Integer(2)),
        (f"{st.HR_PRINTER_ERROR_STATE}.1", OctetString(hexValue="0000")),
        (f"{st.ALERT_SEVERITY}.1.1", Integer(5)),
        (f"{st.ALERT_GROUP}.1.1", Integer(5)),
        (f"{st.ALERT_CODE}.1.1", Integer(507)),
        (f"{st.ALERT_DESCRIPTION}.1.1", OctetString("Ready")),
    )


async def _jam(snmpsim: Simulator) -> None:
    """What a printer shows for a jam: down, the jammed bit, a critical mediaPath alert."""
    await _set(
        snmpsim,
        (f"{st.HR_DEVICE_STATUS}.1", Integer(5)),
        (f"{st.HR_PRINTER_ERROR_STATE}.1", OctetString(hexValue="0400")),
        (f"{st.ALERT_SEVERITY}.1.1", Integer(3)),
        (f"{st.ALERT_GROUP}.1.1", Integer(13)),
        (f"{st.ALERT_CODE}.1.1", Integer(8)),
        (f"{st.ALERT_DESCRIPTION}.1.1", OctetString("Paper jam in tray 2")),
    )


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _settings(write_config: Callable[[str], Path], tmp_path: Path, url: str, snmpsim: Simulator) -> Settings:
    return load(
        write_config(
            f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n[storage]\nurl = "{url}"\n'
            "[service]\nalert_after_minutes = 15\n"
            f'[snmp]\ncommunities = ["{SEQUENCE}"]\ntimeout_s = 4\nretries = 1\n'
            f'[[snmp.targets]]\nhost = "127.0.0.1"\nport = {snmpsim.port}\n'
        ),
        {},
    )


async def test_a_jam_is_one_episode_with_start_and_end_and_one_service_alert(
    snmpsim: Simulator, store_url: str, write_config: Callable[[str], Path], tmp_path: Path, metrics: Metrics
) -> None:
    settings = _settings(write_config, tmp_path, store_url, snmpsim)
    clock = _Clock()
    await _healthy(snmpsim)
    try:
        async with (
            Store.open(settings.database_url) as store,
            SnmpCollector(site=settings.site, now=clock) as collector,
        ):
            tracker = FaultTracker(store, settings, metrics, clock)
            poll_round = PollRound(settings, collector, Pipeline(store, metrics, clock), metrics, faults=tracker)

            async def round_at(minutes: int) -> None:
                clock.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
                await poll_round.run()

            with capture_logs() as logs:
                await round_at(0)
                assert await faults(store) == []  # running, nothing wrong: no fault listed
                await _jam(snmpsim)
                await round_at(5)  # seen, not yet an alert: open 0 of 15 minutes
                opened = await faults(store)
                assert sorted(f.code for f in opened) == ["down", "jam", "jammed"]
                assert await faults(store, alerts_only=True) == []
                await round_at(20)  # open 15 minutes: one alert for the visit, not one per signal
                await round_at(35)  # still jammed: no second alert, no new rows
                alerts = await faults(store, alerts_only=True)
                gauge = metrics.registry.get_sample_value
                assert gauge("meterd_devices_by_status", {"site": "acme-hq", "status": "down"}) == 1
                assert gauge("meterd_device_faults_open", {"site": "acme-hq", "fault": "jammed"}) == 1
                assert gauge("meterd_service_alerts_open", {"site": "acme-hq"}) == 1
                await _healthy(snmpsim)
                await round_at(40)
            history = await FaultStore(store).find(open_only=False, include_status=True)
    finally:
        await _healthy(snmpsim)
    assert len(alerts) == 1
    assert alerts[0].code == "down"  # the first of the three to open (the status row comes first)
    assert alerts[0].alert_raised_at == datetime(2026, 11, 2, 9, 20, tzinfo=UTC)
    assert len([e for e in logs if e["event"] == "service_alert"]) == 1
    by_code = {(f.code, f.started_at, f.ended_at) for f in history}
    start, end = datetime(2026, 11, 2, 9, 5, tzinfo=UTC), datetime(2026, 11, 2, 9, 40, tzinfo=UTC)
    assert by_code == {
        ("running", datetime(2026, 11, 2, 9, 0, tzinfo=UTC), start),
        ("down", start, end),
        ("jammed", start, end),
        ("jam", start, end),
        ("running", end, None),
    }
    jam = next(f for f in history if f.code == "jam")
    assert jam.device == SERIAL
    assert jam.detail == "Paper jam in tray 2 (mediaPath 1, noInterventionRequired)"
    assert metrics.registry.get_sample_value("meterd_service_alerts_open", {"site": "acme-hq"}) == 0


async def test_paper_out_is_informational_and_a_short_door_opening_raises_nothing(
    snmpsim: Simulator, tmp_path: Path, write_config: Callable[[str], Path], metrics: Metrics
) -> None:
    settings = _settings(write_config, tmp_path, f"sqlite:///{tmp_path / 'faults.db'}", snmpsim)
    clock = _Clock()
    await _healthy(snmpsim)
    try:
        async with (
            Store.open(settings.database_url) as store,
            SnmpCollector(site=settings.site, now=clock) as collector,
        ):
            tracker = FaultTracker(store, settings, metrics, clock)
            poll_round = PollRound(settings, collector, Pipeline(store, metrics, clock), metrics, faults=tracker)
            # noPaper (bit 1) and an input-group alert (inputMediaSupplyEmpty) for two hours: no alert.
            await _set(
                snmpsim,
                (f"{st.HR_DEVICE_STATUS}.1", Integer(3)),
                (f"{st.HR_PRINTER_ERROR_STATE}.1", OctetString(hexValue="4000")),
                (f"{st.ALERT_SEVERITY}.1.1", Integer(4)),
                (f"{st.ALERT_GROUP}.1.1", Integer(8)),
                (f"{st.ALERT_CODE}.1.1", Integer(808)),
            )
            for minutes in (0, 60, 120):
                clock.now = datetime(2026, 11, 2, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
                await poll_round.run()
            paper = await faults(store)
            # A door open for 10 minutes (bit 4, cover alert), closed before alert_after_minutes.
            await _set(
                snmpsim,
                (f"{st.HR_PRINTER_ERROR_STATE}.1", OctetString(hexValue="0800")),
                (f"{st.ALERT_GROUP}.1.1", Integer(6)),
                (f"{st.ALERT_CODE}.1.1", Integer(3)),
            )
            clock.now = datetime(2026, 11, 2, 11, 10, tzinfo=UTC)
            await poll_round.run()
            door = await faults(store)
            await _healthy(snmpsim)
            clock.now = datetime(2026, 11, 2, 11, 20, tzinfo=UTC)
            await poll_round.run()
            alerts = await faults(store, open_only=False, alerts_only=True)
            everything = await faults(store, open_only=False)
    finally:
        await _healthy(snmpsim)
    assert sorted(f.code for f in paper) == ["inputMediaSupplyEmpty", "noPaper", "warning"]
    assert sorted(f.code for f in door) == ["coverOpen", "doorOpen", "warning"]
    assert alerts == []
    assert all(f.ended_at is not None for f in everything if f.code != "warning")


async def _seed_a_jam(store: Store) -> None:
    """A jam seen at 09:00 and still there at 09:30, stored the way a poll round stores it."""
    await store.store([reading(at=T0), reading(at=T0, minutes=30)], now=T0 + timedelta(minutes=30))
    jam = st.DeviceStatus(
        device="down",
        printer="other",
        errors=("jammed",),
        alerts=(st.PrinterAlert("critical", "trained", "mediaPath", 2, None, "jam", "Paper jam in tray 2"),),
    )
    low_paper = st.DeviceStatus(device="warning", printer="idle", errors=("lowPaper",))
    for minutes, status in ((0, jam), (30, jam)):
        await FaultStore(store).record(
            [Observed("VNCRC48198", T0 + timedelta(minutes=minutes), status)],
            alert_on=Settings().service.alert_on,
            alert_after=timedelta(minutes=15),
            now=T0 + timedelta(minutes=minutes),
        )
    await store.store([reading(serial="OTHER1", at=T0)], now=T0)
    await FaultStore(store).record(
        [Observed("OTHER1", T0, low_paper)], alert_on=["jammed"], alert_after=timedelta(0), now=T0
    )


def test_meterd_service_lists_faults_and_alerts_as_csv_and_json(
    store_url: str, write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    async def prepare() -> None:
        async with Store.open(store_url) as store:
            await _seed_a_jam(store)

    asyncio.run(prepare())
    config = write_config(f'[storage]\nurl = "{store_url}"\n')
    capsys.readouterr()
    assert main(["service", "faults", "--config", str(config), "--format", "csv", "--log-level", "error"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sorted((r["device"], r["fault"]) for r in rows) == [
        ("OTHER1", "lowPaper"),
        ("OTHER1", "warning"),
        ("VNCRC48198", "down"),
        ("VNCRC48198", "jam"),
        ("VNCRC48198", "jammed"),
    ]
    assert main(["service", "alerts", "--config", str(config), "--format", "json", "--log-level", "error"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert [(a["device"], a["code"], a["address"]) for a in alerts] == [("VNCRC48198", "down", "10.0.4.21")]
    assert alerts[0]["alert_raised_at"].startswith("2026-11-01 08:30")
    assert main(["service", "faults", "--device", "OTHER1", "--config", str(config), "--log-level", "error"]) == 0
    table = capsys.readouterr().out
    assert "lowPaper" in table
    assert "jammed" not in table
