"""The console's Service page on both stores: which printers need a technician, for which customer, where; its CSV.

The page is daemon.services.faults.service_board; these tests call it as the page does and fetch the
page and its CSV through the console (a technician's session), as tests/integration/test_supplies_console.py does.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import tomllib
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from babel.messages.pofile import read_po

from billing.customers import parse_customer
from collectors.snmp import status as st
from daemon.api.app import create_app
from daemon.api.security import ApiContext
from daemon.cli.main import main
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts
from daemon.services.faults import (
    ALERT,
    INFORMATIONAL,
    PENDING,
    SERVICE_HEADER,
    ServiceFilter,
    ServiceRow,
    service_board,
    service_rows,
)
from daemon.settings import ApiSettings, Settings
from daemon.storage.billing import BillingStore
from daemon.storage.faults import FaultStore, Observed
from daemon.storage.repository import Store
from daemon.web.console import PACKAGE
from daemon.web.fault_words import FAULT_WORDS
from tests.factories import T0, reading
from tests.integration.test_api import PASSWORD, Api, Clock, api, api_users  # noqa: F401 - the API fixture
from tests.integration.test_billing import BOOK
from tests.integration.test_device_faults import _seed_a_jam

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
NOW = T0 + timedelta(hours=2)
JAM = st.DeviceStatus(device="down", printer="other", errors=("jammed",))
HEALTHY = st.DeviceStatus(device="running", printer="idle")
DOOR = st.DeviceStatus(device="warning", printer="idle", errors=("doorOpen",))


async def _seed(store: Store) -> None:
    """ACME's HP jammed since 09:00 (alert at 09:30), OTHER1 low on paper, a branch printer whose jam was cleared
    at 09:40, and a door opened five minutes ago on a fourth."""
    await _seed_a_jam(store)
    billing = BillingStore(store)
    await billing.save_customers([parse_customer(c) for c in tomllib.loads(BOOK)["customer"]], actor="setup", now=NOW)
    await billing.assign("VNCRC48198", "ACME", start=date(2026, 10, 1), actor="setup", now=NOW)
    faults = FaultStore(store)
    settings = Settings().service
    for serial, site, address in (("CLEARED1", "branch", "10.9.0.8"), ("DOOR1", "branch", "10.9.0.9")):
        await store.store([reading(serial=serial, site=site, address=address, at=T0)], now=T0)
    for minutes, status in ((0, JAM), (40, HEALTHY)):
        at = T0 + timedelta(minutes=minutes)
        await faults.record(
            [Observed("CLEARED1", at, status)], alert_on=settings.alert_on, alert_after=timedelta(minutes=15), now=at
        )
    door_at = NOW - timedelta(minutes=5)
    await faults.record(
        [Observed("DOOR1", door_at, DOOR)], alert_on=settings.alert_on, alert_after=timedelta(minutes=15), now=door_at
    )


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    async with Store.open(store_url) as opened:
        await _seed(opened)
        yield opened


def _shown(rows: list[ServiceRow]) -> list[tuple[str, str]]:
    return [(r.fault.device, r.fault.code) for r in rows]


async def test_an_open_jam_shows_with_its_customer_and_address_and_a_cleared_one_does_not(store: Store) -> None:
    board = await service_board(store, Settings(), NOW, ServiceFilter())
    [alert] = board.alerts
    f = alert.fault
    assert (alert.section, f.device, f.code) == (ALERT, "VNCRC48198", "down")
    assert (f.customer, f.customer_name, f.site, f.address, f.model) == (
        "ACME",
        "Acme Büromaschinen GmbH",
        "acme-hq",
        "10.0.4.21",
        "LaserJet MFP M130nw",
    )
    assert f.started_at == T0
    assert f.alert_raised_at == T0 + timedelta(minutes=30)
    assert sorted(a.code for a in alert.also) == ["jam", "jammed"]  # the same visit: folded into the device's one alert
    assert "CLEARED1" not in {r.fault.device for r in [*board.alerts, *board.others]}  # ended at 09:40
    sections = {(r.fault.device, r.fault.code): r.section for r in board.others}
    assert sections == {
        ("OTHER1", "lowPaper"): INFORMATIONAL,
        ("OTHER1", "warning"): INFORMATIONAL,
        ("DOOR1", "warning"): INFORMATIONAL,
        ("DOOR1", "doorOpen"): PENDING,  # five minutes open: an alert at ten past if it stays
    }
    [door] = [r for r in board.others if r.fault.code == "doorOpen"]
    assert door.alert_due_at == NOW + timedelta(minutes=10)
    assert [r.fault.started_at for r in board.others] == sorted(r.fault.started_at for r in board.others)
    assert board.customers == [("ACME", "Acme Büromaschinen GmbH")]
    assert board.sites == ["acme-hq", "branch"]


async def test_the_filters_narrow_both_lists(store: Store) -> None:
    async def shown(**wanted: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        board = await service_board(store, Settings(), NOW, ServiceFilter(**wanted))
        return _shown(board.alerts), sorted(_shown(board.others))

    assert await shown(customer="ACME") == ([("VNCRC48198", "down")], [])
    assert await shown(site="branch") == ([], [("DOOR1", "doorOpen"), ("DOOR1", "warning")])
    assert await shown(fault="jam") == ([("VNCRC48198", "down")], [])  # folded into the alert, found by it
    assert await shown(fault="lowPaper") == ([], [("OTHER1", "lowPaper")])
    assert await shown(customer="ACME", fault="lowPaper") == ([], [])


async def test_the_page_and_its_csv_show_the_same_rows_in_words(store: Store, store_url: str, tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"url": store_url}, "state_dir": tmp_path})
    accounts = Accounts(store, ApiSettings(), SecretBox(tmp_path / "secret.key"), Clock(NOW))
    await accounts.add_user("tech", "The technician", "technician", PASSWORD, actor="setup")
    await accounts.add_user("view", "The viewer", "viewer", PASSWORD, actor="setup")
    app = create_app(ApiContext(settings, store, accounts, Clock(NOW)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://meterd.test") as client:
        for login in ("view", "tech"):
            page = await client.get("/login")
            [token] = CSRF.findall(page.text)
            await client.post("/login", data={"csrf": token, "login": login, "password": PASSWORD, "next": "/"})
            if login == "view":  # a viewer holds no service.read: no link, and the server refuses the page and CSV
                assert 'href="/service"' not in (await client.get("/")).text
                assert (await client.get("/service")).status_code == 403
                assert (await client.get("/service/faults.csv")).status_code == 403
        page = await client.get("/service", headers={"Accept-Language": "de"})
        assert page.status_code == 200
        assert 'href="/service" aria-current="page"' in page.text
        alerts = page.text.split('id="h-alerts"')[1].split('id="h-others"')[0]
        for shown in ("Acme Büromaschinen GmbH", "acme-hq", "10.0.4.21", "Gerät ausgefallen", "Papierstau"):
            assert shown in alerts
        assert 'href="/devices/VNCRC48198"' in alerts
        assert "2 h 0 min" in alerts  # open since 09:00, now 11:00
        assert "jammed" not in alerts  # the code in words, never raw
        assert (
            alerts.split("<tbody>")[1].count("Papierstau") == 1
        )  # the bit and the alert-table row: one jam, where the device says
        assert "Papierstau: Paper jam in tray 2 (mediaPath 2, trained)" in alerts
        assert "Papier knapp" in page.text.split('id="h-others"')[1]
        download = await client.get("/service/faults.csv", params={"site": "branch"})
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="service-2026-11-01.csv"'
    rows = list(csv.reader(io.StringIO(download.text)))
    board = await service_board(store, settings, NOW, ServiceFilter(site="branch"))
    assert rows[0] == [*SERVICE_HEADER, "fault_text"]
    assert [row[:-1] for row in rows[1:]] == service_rows(board, NOW)
    assert [(r[0], r[SERVICE_HEADER.index("fault")], r[-1]) for r in rows[1:]] == [
        ("informational", "warning", "Device reports a warning"),
        ("pending", "doorOpen", "Door open"),
    ]


def test_every_fault_a_device_can_report_has_words_in_every_language() -> None:
    conditions = {*st.ERROR_BITS, *st.DEVICE_STATES.values(), *st.CODES.values()} - st._EVENT_CODES - {"running"}
    assert conditions - FAULT_WORDS.keys() == set()
    for language in ("de", "fr", "tr", "zh_Hans"):
        with (PACKAGE / "locale" / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalogue = read_po(po)
        untranslated = {w for w in FAULT_WORDS.values() if not (catalogue.get(w) and catalogue.get(w).string)}
        assert untranslated == set(), language


async def test_the_apis_faults_name_each_devices_customer(api: Api) -> None:  # noqa: F811 - the fixture
    await _seed(api.store)
    technician = await api.token("technician")
    alerts = (await api.client.get("/api/v1/service/alerts", headers=technician)).json()["items"]
    assert [(a["device"], a["customer"], a["customer_name"]) for a in alerts] == [
        ("VNCRC48198", "ACME", "Acme Büromaschinen GmbH")
    ]
    listed = await api.client.get("/api/v1/service/faults", params={"format": "csv"}, headers=technician)
    owners = {(r["device"], r["customer"], r["customer_name"]) for r in csv.DictReader(io.StringIO(listed.text))}
    assert owners == {
        ("VNCRC48198", "ACME", "Acme Büromaschinen GmbH"),
        ("OTHER1", "", ""),  # no assignment, and its site belongs to no customer
        ("DOOR1", "", ""),
    }


def test_the_clis_faults_name_each_devices_customer(
    store_url: str, write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    async def prepare() -> None:
        async with Store.open(store_url) as store:
            await _seed(store)

    asyncio.run(prepare())
    config = write_config(f'[storage]\nurl = "{store_url}"\n')
    capsys.readouterr()
    assert main(["service", "alerts", "--config", str(config), "--format", "json", "--log-level", "error"]) == 0
    alerts = json.loads(capsys.readouterr().out)
    assert [(a["device"], a["customer"], a["customer_name"]) for a in alerts] == [
        ("VNCRC48198", "ACME", "Acme Büromaschinen GmbH")
    ]
    assert main(["service", "faults", "--config", str(config), "--format", "csv", "--log-level", "error"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["customer"] for r in rows if r["device"] == "VNCRC48198"} == {"ACME"}
