"""Logging in with a second factor, and what each role sees and may post (the server refuses what is hidden)."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.browser.conftest import PASSWORD, Console, log_in, submit


def test_a_billing_clerk_logs_in_with_password_and_totp_and_sees_today(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "billing")
    assert browser.current_url == f"{console.url}/"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Today"
    cookie = browser.get_cookie("meterd_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"


def test_a_wrong_code_is_refused_with_the_apis_message(browser: WebDriver, console: Console) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console.url}/login")
    browser.find_element(By.ID, "login").send_keys("admin")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "code").send_keys("000000")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))
    assert "wrong login, password or one-time code" in browser.find_element(By.CSS_SELECTOR, "[role=alert]").text
    assert browser.get_cookie("meterd_session") is None


def test_a_viewer_sees_no_finalise_button_and_a_forged_post_is_refused(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "viewer")
    browser.get(f"{console.url}/invoices")
    assert browser.find_elements(By.CSS_SELECTOR, "a[href^='/invoices/']"), "the viewer reads the invoices"
    assert not browser.find_elements(By.CSS_SELECTOR, "form.finalize")
    assert not browser.find_elements(By.XPATH, "//button[contains(., 'Finalise')]")
    csrf = browser.find_element(By.CSS_SELECTOR, "input[name=csrf]").get_attribute("value")
    session = browser.get_cookie("meterd_session")
    assert session is not None
    # The form the page did not show, posted anyway with the viewer's own session and a valid token.
    forged = httpx.post(
        f"{console.url}/invoices/1/finalize", data={"csrf": csrf}, cookies={"meterd_session": session["value"]}
    )
    assert forged.status_code == 403
    assert "viewer may not do this (invoices.write)" in forged.text


def test_a_post_without_its_csrf_token_is_refused(browser: WebDriver, console: Console) -> None:
    log_in(browser, console, "billing")
    session = browser.get_cookie("meterd_session")
    assert session is not None
    cookies = {"meterd_session": session["value"]}
    missing = httpx.post(f"{console.url}/billing/run", data={"period": "2026-11"}, cookies=cookies)
    assert missing.status_code == 403
    wrong = httpx.post(f"{console.url}/billing/run", data={"period": "2026-11", "csrf": "0" * 64}, cookies=cookies)
    assert wrong.status_code == 403
    assert "security token" in wrong.text
