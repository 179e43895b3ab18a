"""A clerk's month in the browser: resolve an anomaly, preview and run November, finalise, download the PDF."""

from __future__ import annotations

import io
import time
from datetime import UTC, datetime
from decimal import Decimal

from pypdf import PdfReader
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from daemon.storage.anomalies import AnomalyStore
from daemon.storage.audit import find_audit
from daemon.storage.billing import BillingStore
from daemon.storage.receivables import ReceivablesStore
from tests.browser.conftest import NOV, OCT, Console, check_page, log_in, submit


def test_a_technician_resolves_an_anomaly_with_a_reason(browser: WebDriver, console: Console) -> None:
    [jump] = [a for a in console.call(AnomalyStore(console.store).find(status="unresolved")) if a.kind == "jump"]
    log_in(browser, console, "technician")
    browser.get(f"{console.url}/anomalies")
    card = browser.find_element(By.ID, f"anomaly-{jump.id}")
    assert "The counter was reset" in browser.find_element(By.CSS_SELECTOR, ".meanings").text  # each action explained
    card.find_element(By.CSS_SELECTOR, "input[name=action][value=dismiss]").click()
    card.find_element(By.NAME, "reason").send_keys("a glitch of the engine board, the next reading is back in line")
    submit(browser, card.find_element(By.CSS_SELECTOR, "button[type=submit]"))
    assert not browser.find_elements(By.ID, f"anomaly-{jump.id}")
    decided = console.call(AnomalyStore(console.store).get(jump.id))
    assert (decided.status, decided.resolution, decided.resolved_by) == ("resolved", "dismissed", "technician")
    [entry] = console.call(find_audit(console.store, target=f"anomaly:{jump.id}"))
    assert entry.actor == "technician"
    assert entry.source == "web 127.0.0.1"


def test_november_is_previewed_run_finalised_and_its_pdf_says_the_total(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "billing")
    browser.get(f"{console.url}/billing?period=2026-11")
    preview = browser.find_element(By.ID, "h-preview").find_element(By.XPATH, "..").text
    assert "ACME" in preview
    # KY1: 100 mono and 20 colour pages a day. November (1 Nov 06:00 to 1 Dec 06:00): 3,000 mono, 1,000 included,
    # 2,000 x 0.012 = 24.00; 600 colour x 0.08 = 48.00; December's base fee in advance 40.00. Net 112.00,
    # 19 % tax 21.28, total 133.28.
    assert "€133.28" in preview
    submit(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Run drafts']"))
    [draft] = console.call(BillingStore(console.store).invoices(period=NOV, status="draft"))
    assert draft.total == Decimal("133.28")
    check_page(browser, "billing-drafts")  # the page with the finalise controls, checked like every page
    submit(browser, browser.find_element(By.CSS_SELECTOR, f"button[name=finalize][value='{draft.id}']"))
    assert browser.current_url == f"{console.url}/invoices/{draft.id}"
    final = console.call(BillingStore(console.store).invoice(draft.id))
    assert (final.status, final.finalized_by) == ("finalized", "billing")
    assert browser.find_element(By.TAG_NAME, "h1").text == final.number
    assert browser.find_element(By.ID, "invoice-total").text == "€133.28"
    browser.find_element(By.ID, "pdf").click()
    pdf = browser.downloads / f"{final.number}.pdf"  # type: ignore[attr-defined]
    for _ in range(100):
        if pdf.exists() and pdf.stat().st_size:
            break
        time.sleep(0.1)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert final.number in text
    assert "133.28" in text


def test_a_partial_payment_is_recorded_and_more_than_is_open_is_refused(browser: WebDriver, console: Console) -> None:
    [october] = console.call(BillingStore(console.store).invoices(period=OCT))
    log_in(browser, console, "billing")
    browser.get(f"{console.url}/receivables")
    amount = browser.find_element(By.ID, f"amount-{october.id}")
    amount.send_keys("100.00")
    browser.find_element(By.ID, f"reference-{october.id}").send_keys("bank 4711")
    submit(browser, amount.find_element(By.XPATH, "ancestor::form//button"))
    [standing] = console.call(
        ReceivablesStore(console.store).standings(as_of=datetime.now(UTC).date(), invoice_id=october.id)
    )
    assert (standing.paid, standing.open) == (Decimal("100.00"), Decimal("84.21"))  # 184.21 billed in October
    assert "€84.21" in browser.find_element(By.TAG_NAME, "main").text
    too_much = browser.find_element(By.ID, f"amount-{october.id}")
    too_much.send_keys("84.22")
    submit(browser, too_much.find_element(By.XPATH, "ancestor::form//button"))
    assert "84.21" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text  # the store's refusal, shown
    [unchanged] = console.call(
        ReceivablesStore(console.store).standings(as_of=datetime.now(UTC).date(), invoice_id=october.id)
    )
    assert unchanged.paid == Decimal("100.00")
