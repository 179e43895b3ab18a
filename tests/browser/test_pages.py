"""Every console page in Chromium at 1366x768: no WCAG 2.1 A/AA violation (axe-core), a screenshot for the README,
the Swagger page from shipped files, and a page in German formatted the German way."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from daemon.storage.billing import BillingStore
from tests.browser.conftest import OCT, SCREENSHOTS, Console, check_page, log_in


def test_the_login_page_is_accessible(browser: WebDriver, console: Console) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console.url}/login")
    check_page(browser, "login")


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("today", "/"),
        ("devices", "/devices?silent_days=7"),
        ("anomalies", "/anomalies"),
        ("billing", "/billing?period=2026-11"),
        ("invoices", "/invoices"),
        ("invoice", "/invoices/{october}"),
        ("receivables", "/receivables"),
    ],
)
def test_each_page_is_accessible(browser: WebDriver, console: Console, name: str, path: str) -> None:
    [october] = console.call(BillingStore(console.store).invoices(period=OCT))
    if browser.get_cookie("meterd_session") is None:
        log_in(browser, console, "billing")
    browser.get(console.url + path.format(october=october.id))
    assert browser.find_element(By.TAG_NAME, "h1").text
    check_page(browser, name)


def test_pages_send_a_policy_with_no_inline_script(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "billing")
    page = httpx.get(f"{console.url}/", cookies={"meterd_session": browser.get_cookie("meterd_session")["value"]})  # type: ignore[index]
    assert page.status_code == 200
    assert "script-src 'self';" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    assert "<script src=" in page.text


def test_the_api_docs_load_from_the_daemon_alone(browser: WebDriver, console: Console) -> None:
    browser.get(f"{console.url}/api/v1/docs")
    title = WebDriverWait(browser, 20).until(lambda b: b.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "meterd" in title.text
    page = httpx.get(f"{console.url}/api/v1/docs").text
    assert "http" not in page.replace(console.url, "")  # no asset from another host
    browser.save_screenshot(str(SCREENSHOTS / "api-docs.png"))


def test_a_german_clerk_reads_german_with_german_numbers(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "billing")
    browser.find_element(By.CSS_SELECTOR, "#language option[value=de]").click()  # the picker sends itself
    WebDriverWait(browser, 20).until(lambda b: b.find_element(By.TAG_NAME, "h1").text == "Heute")
    browser.get(f"{console.url}/receivables")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Forderungen"
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "€" in body
    assert "," in body.split("€")[0][-6:]  # 184,21 €: a decimal comma
    check_page(browser, "receivables-de")
