"""The Service page in Chromium: a technician sees which printer needs a technician now, axe A/AA, in German too;
a viewer (no service.read) sees no link and the server refuses the page."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from collectors.snmp import status as st
from daemon.kernel.clock import utc_now
from daemon.settings import Settings
from daemon.storage.billing import BillingStore
from daemon.storage.faults import FaultStore, Observed
from tests.browser.conftest import Console, check_page, log_in
from tests.factories import reading

JAM = st.DeviceStatus(
    device="down",
    printer="other",
    errors=("jammed",),
    alerts=(st.PrinterAlert("critical", "trained", "mediaPath", 2, None, "jam", "Paper jam in tray 2"),),
)
PAPER_OUT = st.DeviceStatus(device="warning", printer="idle", errors=("noPaper",))


@pytest.fixture(scope="module")
def with_faults(console: Console) -> Console:
    """ACME's HP jammed since 47 minutes ago (its alert raised), a branch printer out of paper since this morning."""
    now = utc_now()
    jammed_at, paper_at = now - timedelta(minutes=47), now - timedelta(hours=3, minutes=10)
    hp = reading(at=jammed_at)
    branch = reading(serial="BRANCH0002", site="acme-branch", address="10.9.0.7", at=paper_at)
    console.call(console.store.store([hp, branch], now=now))
    console.call(BillingStore(console.store).assign("VNCRC48198", "ACME", start=now.date(), actor="setup", now=now))
    faults = FaultStore(console.store)
    alert_on, after = Settings().service.alert_on, timedelta(minutes=15)
    for device, at, status in (("BRANCH0002", paper_at, PAPER_OUT), ("VNCRC48198", jammed_at, JAM)):
        console.call(faults.record([Observed(device, at, status)], alert_on=alert_on, alert_after=after, now=at))
    console.call(faults.record([Observed("VNCRC48198", now, JAM)], alert_on=alert_on, alert_after=after, now=now))
    return console


def _rows(browser: WebDriver, section: str) -> list[str]:
    return [row.text for row in browser.find_elements(By.CSS_SELECTOR, f"section[aria-labelledby={section}] tbody tr")]


def test_a_technician_sees_the_jammed_printer_its_customer_and_where(browser: WebDriver, with_faults: Console) -> None:
    console = with_faults
    log_in(browser, console, "technician")
    browser.find_element(By.LINK_TEXT, "Service").click()
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "Service")
    assert browser.find_element(By.ID, "h-alerts").text == "1 printer needs a technician"
    [alert] = _rows(browser, "h-alerts")
    for shown in (
        "VNCRC48198",
        "Acme Büromaschinen GmbH",
        "acme-hq",
        "10.0.4.21",
        "Device down",
        "also: Paper jam: Paper jam in tray 2",
    ):
        assert shown in alert
    assert "47 min" in alert or "48 min" in alert
    others = _rows(browser, "h-others")
    assert [row.split("\n")[0] for row in others] == ["BRANCH0002", "BRANCH0002"]  # its status, and paper out
    [paper] = [row for row in others if "Out of paper" in row]
    assert "3 h 1" in paper  # 3 h 10 min when seeded, a minute more on a slow run
    check_page(browser, "service")
    browser.find_element(By.LINK_TEXT, "VNCRC48198").click()
    WebDriverWait(browser, 20).until(lambda b: b.current_url == f"{console.url}/devices/VNCRC48198")


def test_the_service_page_in_german(browser: WebDriver, with_faults: Console) -> None:
    console = with_faults
    log_in(browser, console, "technician")
    browser.find_element(By.CSS_SELECTOR, "#language option[value=de]").click()  # the picker sends itself
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "Heute")
    browser.find_element(By.LINK_TEXT, "Service").click()
    WebDriverWait(browser, 20).until(
        lambda b: b.find_element(By.ID, "h-alerts").text == "1 Drucker braucht einen Techniker"
    )
    [alert] = _rows(browser, "h-alerts")
    assert "Gerät ausgefallen" in alert
    assert "Papierstau" in alert
    assert any("Kein Papier" in row for row in _rows(browser, "h-others"))
    check_page(browser, "service-de")


def test_a_viewer_has_no_service_link_and_the_server_refuses_the_page(browser: WebDriver, with_faults: Console) -> None:
    console = with_faults
    log_in(browser, console, "viewer")
    assert browser.find_elements(By.LINK_TEXT, "Supplies")
    assert not browser.find_elements(By.LINK_TEXT, "Service")
    session = browser.get_cookie("meterd_session")
    assert session is not None
    for path in ("/service", "/service/faults.csv"):
        refused = httpx.get(f"{console.url}{path}", cookies={"meterd_session": session["value"]})
        assert refused.status_code == 403
        assert "viewer may not do this (service.read)" in refused.text
