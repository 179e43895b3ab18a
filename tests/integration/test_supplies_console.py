"""The console's Supplies page and its CSV on both stores: the replenishment list, its filters, short yields."""

from __future__ import annotations

import csv
import io
import re
import tomllib
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from billing.customers import parse_customer
from daemon.api.app import create_app
from daemon.api.security import ApiContext
from daemon.kernel.reading import Reading
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts
from daemon.services.supplies import REPLENISHMENT_HEADER, ReplenishmentFilter, replenishment_list, replenishment_rows
from daemon.settings import ApiSettings, Settings
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store
from tests.factories import T0, reading
from tests.integration.test_api import PASSWORD, Api, Clock, api, api_users  # noqa: F401 - the API fixture
from tests.integration.test_billing import BOOK
from tests.integration.test_supplies import _month, _store

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
NOW = T0 + timedelta(days=56, hours=7)  # the first device's third cartridge has about 4 days left


def _slow_branch_device(at: datetime = T0) -> list[Reading]:
    """A device at another site, a point a day: about 44 days left, due within 60 days but not within 30."""
    return [
        reading(
            serial="BRANCH0001",
            site="branch",
            address="10.9.0.7",
            reading_id=f"b{day}",
            at=at,
            minutes=24 * 60 * day,
            total=5_000 + 40 * day,
            toner=100 - day,
        )
        for day in range(57)
    ]


@pytest.fixture
async def web(store_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings, Store]]:
    # The second cartridge (days 20 to 40) gave 2,000 pages (20 days x 100): far below a nominal 8,000.
    settings = Settings.model_validate(
        {"storage": {"url": store_url}, "state_dir": tmp_path, "supplies": {"yields": {"CF217A": 8000}}}
    )
    async with Store.open(store_url) as store:
        await _store(store, _month(0, 57))
        await store.store(_slow_branch_device(), now=NOW)
        billing = BillingStore(store)
        await billing.save_customers(
            [parse_customer(c) for c in tomllib.loads(BOOK)["customer"]], actor="setup", now=NOW
        )
        await billing.assign("VNCRC48198", "ACME", start=date(2026, 10, 1), actor="setup", now=NOW)
        accounts = Accounts(store, ApiSettings(), SecretBox(tmp_path / "secret.key"), Clock(NOW))
        await accounts.add_user("tech", "The technician", "technician", PASSWORD, actor="setup")
        app = create_app(ApiContext(settings, store, accounts, Clock(NOW)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://meterd.test") as client:
            page = await client.get("/login")
            [token] = CSRF.findall(page.text)
            await client.post("/login", data={"csrf": token, "login": "tech", "password": PASSWORD, "next": "/"})
            yield client, settings, store


def _devices_in(page: str) -> list[str]:
    return re.findall(r"<tr>\s*<td>(VNCRC48198|BRANCH0001)", page)


async def test_the_supplies_page_lists_what_to_ship_with_its_customer_part_and_short_yield(
    web: tuple[httpx.AsyncClient, Settings, Store],
) -> None:
    client, _, _ = web
    page = await client.get("/supplies")
    assert page.status_code == 200
    assert _devices_in(page.text) == ["VNCRC48198"]  # the branch's cartridge is not due yet
    row = page.text.split("<tr>")[2]
    for shown in ("Acme Büromaschinen GmbH", "acme-hq", "10.0.4.21", "Black Cartridge HP CF217A", "CF217A", "Days"):
        assert shown in row or shown in page.text
    assert "2,000 / 8,000" in row
    assert "far below nominal" in row
    assert "± " in row
    assert "<script>" not in page.text  # no inline script (the CSP would refuse it)


async def test_the_filters_narrow_and_widen_the_list(web: tuple[httpx.AsyncClient, Settings, Store]) -> None:
    client, _, _ = web
    assert _devices_in((await client.get("/supplies", params={"within_days": "60"})).text) == [
        "BRANCH0001",  # no customer: sorted first
        "VNCRC48198",
    ]
    assert _devices_in((await client.get("/supplies", params={"within_days": "30"})).text) == ["VNCRC48198"]
    assert _devices_in((await client.get("/supplies", params={"within_days": "60", "customer": "ACME"})).text) == [
        "VNCRC48198"
    ]
    assert _devices_in((await client.get("/supplies", params={"within_days": "60", "site": "branch"})).text) == [
        "BRANCH0001"
    ]


async def test_the_csv_is_the_services_list_with_the_pages_filters(
    web: tuple[httpx.AsyncClient, Settings, Store],
) -> None:
    client, settings, store = web
    download = await client.get("/supplies/replenishment.csv", params={"within_days": "60", "site": "branch"})
    assert download.status_code == 200
    assert download.headers["content-disposition"] == 'attachment; filename="replenishment-2026-12-27.csv"'
    rows = list(csv.reader(io.StringIO(download.text)))
    wanted = ReplenishmentFilter(site="branch", within_days=60)
    assert rows == [REPLENISHMENT_HEADER, *replenishment_rows(await replenishment_list(store, settings, NOW, wanted))]
    assert [(r[0], r[3], r[4]) for r in rows[1:]] == [("BRANCH0001", "branch", "10.9.0.7")]


async def test_the_page_needs_a_session(store_url: str, tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"url": store_url}, "state_dir": tmp_path})
    async with Store.open(store_url) as store:
        accounts = Accounts(store, ApiSettings(), SecretBox(tmp_path / "secret.key"), Clock(NOW))
        app = create_app(ApiContext(settings, store, accounts, Clock(NOW)))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://meterd.test") as client:
            for path in ("/supplies", "/supplies/replenishment.csv"):
                assert (await client.get(path)).headers["location"].startswith("/login")


async def test_the_api_takes_the_same_filters(api: Api) -> None:  # noqa: F811 - the fixture
    api.clock.now = NOW
    await _store(api.store, _month(0, 57))
    await api.store.store(_slow_branch_device(), now=NOW)
    headers = await api.token("technician")
    path = "/api/v1/supplies/replenishment"
    due = (await api.client.get(path, headers=headers)).json()
    soon = (await api.client.get(path, params={"within_days": 60}, headers=headers)).json()
    branch = await api.client.get(path, params={"within_days": 60, "site": "branch", "format": "csv"}, headers=headers)
    assert [r["device"] for r in due] == ["VNCRC48198"]
    assert [r["device"] for r in soon] == ["VNCRC48198", "BRANCH0001"]  # no customers here: by site
    assert [r[0] for r in list(csv.reader(io.StringIO(branch.text)))[1:]] == ["BRANCH0001"]
