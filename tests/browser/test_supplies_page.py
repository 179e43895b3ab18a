"""The Supplies page in Chromium: a technician's replenishment list, filter, CSV link, German plurals, axe A/AA."""

from __future__ import annotations

from datetime import timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from daemon.kernel.clock import utc_now
from daemon.storage.billing import BillingStore
from tests.browser.conftest import Console, check_page, log_in, submit
from tests.integration.test_supplies import _month
from tests.integration.test_supplies_console import _slow_branch_device


@pytest.fixture(scope="module")
def with_supplies(console: Console) -> Console:
    """An HP on ACME's contract with its third cartridge 4 days from empty, and a branch printer 44 days from it."""
    start = utc_now() - timedelta(days=56, hours=7)
    hp = _month(0, 57, at=start)
    hp = [r for r in hp if r.taken_at_utc <= utc_now()]
    for first in range(0, len(hp), 200):
        console.call(console.store.store(hp[first : first + 200], now=utc_now()))
    console.call(console.store.store(_slow_branch_device(start), now=utc_now()))
    today = utc_now()
    console.call(BillingStore(console.store).assign("VNCRC48198", "ACME", start=start.date(), actor="setup", now=today))
    return console


def _rows(browser: WebDriver) -> list[str]:
    return [
        row.find_element(By.TAG_NAME, "td").text.split("\n")[0]
        for row in browser.find_elements(By.CSS_SELECTOR, "tbody tr")
    ]


def test_a_technician_ships_from_the_supplies_page(browser: WebDriver, with_supplies: Console) -> None:
    console = with_supplies
    log_in(browser, console, "technician")
    browser.find_element(By.LINK_TEXT, "Supplies").click()
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "Supplies")
    assert _rows(browser) == ["VNCRC48198"]
    row = browser.find_element(By.CSS_SELECTOR, "tbody tr").text
    assert "Acme Büromaschinen GmbH" in row
    assert "CF217A" in row
    assert "±" in row
    check_page(browser, "supplies")
    field = browser.find_element(By.ID, "within_days")
    field.send_keys("60")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))
    assert browser.current_url.endswith("/supplies?customer=&site=&within_days=60")
    assert _rows(browser) == ["BRANCH0001", "VNCRC48198"]
    link = browser.find_element(By.LINK_TEXT, "Download CSV").get_attribute("href")
    assert link == f"{console.url}/supplies/replenishment.csv?within_days=60"


def test_the_supplies_page_in_german_counts_in_german(browser: WebDriver, with_supplies: Console) -> None:
    console = with_supplies
    log_in(browser, console, "technician")
    browser.find_element(By.CSS_SELECTOR, "#language option[value=de]").click()  # the picker sends itself
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "Heute")
    browser.get(f"{console.url}/supplies?within_days=60")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Verbrauchsmaterial"
    assert browser.find_element(By.ID, "h-ship").text == "2 Kartuschen zu liefern"
    check_page(browser, "supplies-de")
