"""The portal in Chromium, end to end against a real SMTP server (aiosmtpd on loopback): staff invite a contact,
the contact sets a password from the mailed link, logs in, downloads an invoice, sends a meter reading, asks for
an address change; staff approve it and the confirmation mail arrives. Every portal page passes axe-core A/AA."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select

from daemon.kernel.clock import utc_now
from daemon.services.mail.outbox import deliver
from daemon.settings import Settings
from tests.browser.conftest import SELLER, Console, check_page, log_in, served, submit
from tests.conftest import free_port

PORTAL_PASSWORD = "a long portal passphrase 42"
LINK = re.compile(r"https://portal\.test(/portal/password/\S+)")


class Inbox:
    def __init__(self) -> None:
        self.received: list[EmailMessage] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's names
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 2.0.0 Ok: queued"

    def subject(self, text: str) -> EmailMessage:
        found = [m for m in self.received if text in str(m["Subject"])]
        assert len(found) == 1, [str(m["Subject"]) for m in self.received]
        return found[0]


@pytest.fixture(scope="module")
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def portal_console(tmp_path_factory: pytest.TempPathFactory, inbox: tuple[Inbox, int]) -> Iterator[Console]:
    state = tmp_path_factory.mktemp("portal")
    settings = Settings.model_validate(
        {
            "storage": {"url": f"sqlite:///{state / 'meterd.db'}"},
            "state_dir": str(state),
            "billing": {"seller": {**SELLER, "email": "billing@printpartner.example"}, "issue_date_window_days": 3650},
            "mail": {"host": "127.0.0.1", "port": inbox[1], "security": "none"},
            "portal": {"base_url": "https://portal.test"},
        }
    )
    with served(settings) as running:
        running.settings = settings  # type: ignore[attr-defined]
        yield running


def _send_mail(console: Console) -> None:
    """What the daemon's mail job does on its interval."""
    console.call(deliver(console.store, console.settings, now=utc_now()))  # type: ignore[attr-defined]


def _text(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


def test_invite_set_password_download_send_a_reading_ask_for_a_change_and_get_the_confirmation(
    browser: WebDriver, portal_console: Console, inbox: tuple[Inbox, int]
) -> None:
    console, (mailbox, _) = portal_console, inbox
    # Staff invite ACME's billing contact from the console.
    log_in(browser, console, "billing")
    browser.get(f"{console.url}/customer-portal")
    check_page(browser, "portal-staff-queue")
    Select(browser.find_element(By.ID, "customer")).select_by_value("ACME")
    browser.find_element(By.ID, "email").send_keys("ap@acme.example")
    submit(browser, browser.find_element(By.XPATH, "//button[contains(., 'Invite')]"))
    assert "ap@acme.example" in browser.find_element(By.CSS_SELECTOR, "p.notice").text
    _send_mail(console)
    invitation = mailbox.subject("your portal account")
    assert invitation["To"] == "Petra Kaufmann <ap@acme.example>"
    link = LINK.search(_text(invitation))
    assert link is not None

    _set_password_and_log_in(browser, console, link.group(1))
    _download_an_invoice_and_send_a_reading(browser, console)

    # An address change, asked for.
    browser.get(f"{console.url}/portal/company")
    check_page(browser, "portal-company")
    street = browser.find_element(By.ID, "address_street")
    street.clear()
    street.send_keys("Neue Straße 9")
    submit(browser, browser.find_element(By.XPATH, "//button[contains(., 'Send request')]"))
    assert "your request is with us" in browser.find_element(By.CSS_SELECTOR, "p.notice").text

    # Staff see it side by side and approve.
    log_in(browser, console, "billing")
    browser.get(f"{console.url}/customer-portal")
    browser.find_element(By.CSS_SELECTOR, "table a[href^='/change-requests/']").click()
    check_page(browser, "portal-staff-change-request")
    assert "Neue Straße 9" in browser.find_element(By.TAG_NAME, "ins").text
    submit(browser, browser.find_element(By.XPATH, "//button[@value='approve']"))
    _send_mail(console)
    confirmation = mailbox.subject("your details were changed")
    assert confirmation["To"] == "Petra Kaufmann <ap@acme.example>"
    assert "Neue Straße 9" in _text(confirmation)


def _set_password_and_log_in(browser: WebDriver, console: Console, path: str) -> None:
    # The contact follows the link (the dealer's address is portal.test; the server here is on loopback).
    browser.delete_all_cookies()
    browser.get(console.url + path)
    check_page(browser, "portal-password")
    browser.find_element(By.ID, "password").send_keys(PORTAL_PASSWORD)
    browser.find_element(By.ID, "confirm").send_keys(PORTAL_PASSWORD)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    check_page(browser, "portal-password-set")

    browser.get(f"{console.url}/portal/login")
    check_page(browser, "portal-login")
    browser.find_element(By.ID, "login").send_keys("ap@acme.example")
    browser.find_element(By.ID, "password").send_keys(PORTAL_PASSWORD)
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))
    assert browser.current_url == f"{console.url}/portal/"
    check_page(browser, "portal-home")
    assert "KY1" in browser.page_source


def _download_an_invoice_and_send_a_reading(browser: WebDriver, console: Console) -> None:
    # An invoice, downloaded.
    browser.get(f"{console.url}/portal/invoices")
    check_page(browser, "portal-invoices")
    browser.find_element(By.LINK_TEXT, "PDF").click()
    downloads: Path = browser.downloads  # type: ignore[attr-defined]
    deadline = time.monotonic() + 20
    while not list(downloads.glob("*.pdf")) and time.monotonic() < deadline:
        time.sleep(0.2)
    [pdf] = list(downloads.glob("*.pdf"))
    assert pdf.read_bytes().startswith(b"%PDF")

    # A reading, sent with the form (KY1 has no network address in this fleet: it is read by hand).
    browser.get(f"{console.url}/portal/devices/KY1")
    check_page(browser, "portal-device")
    Select(browser.find_element(By.ID, "meter")).select_by_value("mono")
    browser.find_element(By.ID, "value").send_keys("25000")
    submit(browser, browser.find_element(By.XPATH, "//button[contains(., 'Send reading')]"))
    assert "the reading is stored" in browser.find_element(By.CSS_SELECTOR, "p.notice").text
    sent = [r for r in console.call(console.store.readings(device="KY1")) if r.source == "portal"]
    assert [m.value for r in sent for m in r.meters] == [25000]

    for name, path in (("portal-balance", "/portal/balance"), ("portal-usage", "/portal/usage")):
        browser.get(console.url + path)
        check_page(browser, name)
