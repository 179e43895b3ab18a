"""In Chromium: a device's page with its charts and a reading entered by hand, the evidence chart in the review
queue, finalising ticked drafts and voiding an invoice from its page — each page checked by axe (A/AA)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from daemon.storage.anomalies import AnomalyStore
from daemon.storage.audit import find_audit
from daemon.storage.billing import BillingStore
from tests.browser.conftest import NOV, OCT, Console, check_page, log_in, submit


def test_a_technician_reads_a_devices_history_and_enters_a_reading_by_hand(
    browser: WebDriver, console: Console
) -> None:
    log_in(browser, console, "technician")
    browser.get(f"{console.url}/devices")
    submit(browser, browser.find_element(By.LINK_TEXT, "KY1"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Device KY1"
    # The story's readings are autumn 2026: a year's view keeps them in sight whenever the test runs.
    submit(browser, browser.find_element(By.LINK_TEXT, "365 days"))
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 4  # counter and pages per day, mono and colour
    assert all(chart.size["width"] > 300 for chart in charts)  # drawn, not collapsed, at 1366x768
    check_page(browser, "device")
    [last] = console.call(console.store.readings(device="KY1", since=None))[-1:]
    mono = next(m.value for m in last.meters if m.meter == "mono")
    browser.find_element(By.CSS_SELECTOR, "#meter option[value=mono]").click()
    browser.find_element(By.ID, "value").send_keys(str(mono + 250))
    taken = browser.find_element(By.ID, "taken_at")
    an_hour_ago = f"{datetime.now(UTC) - timedelta(hours=1):%Y-%m-%dT%H:%M}"
    browser.execute_script("arguments[0].value = arguments[1]", taken, an_hour_ago)
    entered_by = browser.find_element(By.ID, "entered_by")
    entered_by.clear()
    entered_by.send_keys("Petra Kaufmann (phone)")
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Save reading']"))
    first_row = browser.find_element(By.CSS_SELECTOR, "#h-readings + table tbody tr").text
    assert "manual" in first_row
    assert f"{mono + 250:,}" in first_row
    [entry] = [e for e in console.call(find_audit(console.store, target="device:KY1")) if e.action == "reading.manual"]
    assert (entry.actor, entry.source, entry.detail["entered_by"]) == (
        "technician",
        "web 127.0.0.1",
        "Petra Kaufmann (phone)",
    )


def test_the_review_queue_shows_the_series_around_the_suspect_point(browser: WebDriver, console: Console) -> None:
    [jump] = [a for a in console.call(AnomalyStore(console.store).find(status="unresolved")) if a.kind == "jump"]
    log_in(browser, console, "viewer")
    browser.get(f"{console.url}/anomalies")
    chart = browser.find_element(By.ID, f"evidence-{jump.id}")
    assert chart.find_elements(By.CSS_SELECTOR, "circle.suspect")  # the held reading is marked
    assert not browser.find_elements(By.CSS_SELECTOR, "form.decide")  # a viewer decides nothing
    check_page(browser, "anomalies-evidence")


def test_a_clerk_finalises_ticked_drafts_and_voids_one_with_a_credit_note(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "billing")
    browser.get(f"{console.url}/billing?period=2026-11")
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Run drafts']"))
    [draft] = console.call(BillingStore(console.store).invoices(period=NOV, status="draft"))
    browser.find_element(By.ID, f"tick-{draft.id}").click()
    check_page(browser, "billing-bulk")
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Finalise the ticked drafts']"))
    final = console.call(BillingStore(console.store).invoice(draft.id))
    assert final.status == "finalized"
    assert f"Finalised: {final.number}" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    check_page(browser, "billing-finalised")
    [october] = console.call(BillingStore(console.store).invoices(period=OCT))
    browser.get(f"{console.url}/invoices/{october.id}")
    check_page(browser, "invoice-void")
    browser.find_element(By.ID, "void-reason").send_keys("billed to the wrong branch")
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Void and issue a credit note']"))
    voided = console.call(BillingStore(console.store).invoice(october.id))
    assert (voided.status, voided.void_reason) == ("voided", "billed to the wrong branch")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("CN")  # the credit note's page


def test_a_clerk_names_a_device_and_says_where_it_stands_for_the_customers_invoice(
    browser: WebDriver, console: Console
) -> None:
    log_in(browser, console, "billing")
    browser.get(f"{console.url}/devices/KY1")
    for field, value in (("label-name", "Empfang"), ("label-location", "Haus A, EG"), ("label-cost-centre", "4711")):
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)
    submit(browser, browser.find_element(By.XPATH, "//section[@aria-labelledby='h-labels']//button"))
    facts = browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert "Empfang" in facts
    assert "Haus A, EG" in facts
    assert "4711" in facts
    check_page(browser, "device-labels")
    device = console.call(console.store.device("KY1"))
    assert (device.name, device.location, device.cost_centre) == ("Empfang", "Haus A, EG", "4711")
