"""The console in a real Chromium against a real daemon app: uvicorn on a free port, a SQLite store of a small fleet.

Each test module gets its own server (own port, own store), so the modules run in parallel under
``pytest -n auto --dist loadgroup`` (a module stays on one worker: tests/xdist_schedule.py). Debian's chromium and
chromium-driver are used as installed (``./dev test`` installs them); nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
import time
import tomllib
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyotp
import pytest
from axe_selenium_python import Axe
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from billing.anomalies import DetectorSettings
from billing.contracts import parse_contract
from billing.customers import parse_customer
from billing.periods import Period
from daemon.api.app import create_app, serving
from daemon.api.security import ApiContext
from daemon.kernel.clock import utc_now
from daemon.kernel.reading import Meter, MeterValue
from daemon.security.roles import ROLES
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts, Enrollment
from daemon.services.anomaly_detection import detect_new
from daemon.services.billing import bill_month, finalize_invoice
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import ApiSettings, Settings
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store
from tests.integration.test_billing import BOOK, daily

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
# Every run takes the screenshots; TEST_SCREENSHOTS=1 keeps them in docs/screenshots (the README's pictures),
# so an ordinary test run leaves the work tree clean.
SCREENSHOTS = (
    Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    if os.environ.get("TEST_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "meterd-screenshots"
)
# The month the scenarios bill: November 2026, with readings up to 3 December (the project's "now" is later).
NOV = Period.month(2026, 11)
OCT = Period.month(2026, 10)
SELLER = {"name": "Print Partner GmbH", "tax_id": "DE136695976", "iban": "DE89370400440532013000"}


@dataclass
class Console:
    """A served console and a way to run store calls on the server's own event loop."""

    url: str
    second_factors: dict[str, Enrollment]
    loop: asyncio.AbstractEventLoop
    store: Store
    stopping: threading.Event = field(default_factory=threading.Event)

    used_steps: dict[str, int] = field(default_factory=dict)

    def code(self, login: str) -> str:
        """A code the server has not seen yet: a step is accepted once (RFC 6238 5.2), so a second log-in within
        one 30-second step takes the next step's code (inside the one-step drift allowed), a third waits."""
        totp = pyotp.TOTP(self.second_factors[login].secret)
        while True:
            step = max(totp.timecode(datetime.now(UTC)), self.used_steps.get(login, -1) + 1)
            if step <= totp.timecode(datetime.now(UTC)) + 1:
                self.used_steps[login] = step
                return totp.generate_otp(step)
            time.sleep(1)

    def call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=60)


async def _seed(store: Store, settings: Settings, accounts: Accounts) -> dict[str, Enrollment]:
    """Four users (one per role), a customer with a contract, three Kyoceras: one billed, one glitching, one silent."""
    enrolled = {}
    for role in ROLES:
        enrollment = await accounts.add_user(role, f"The {role}", role, PASSWORD, actor="setup")
        if enrollment is not None:
            enrolled[role] = enrollment
    book = tomllib.loads(BOOK)
    billing = BillingStore(store)
    now = utc_now()
    await billing.save_customers([parse_customer(c) for c in book["customer"]], actor="setup", now=now)
    for contract in book["contract"]:
        await billing.save_contract(parse_contract(contract), actor="setup", now=now)
    billed = daily("KY1", date(2026, 9, 20), 75, mono=100, color=20)
    glitching = daily("KY3", date(2026, 9, 20), 75, mono=50, color=5, site="acme-branch")
    glitch = glitching[60]
    spike = type(glitch)(
        site=glitch.site,
        taken_at=glitch.taken_at + timedelta(hours=1),
        device=glitch.device,
        meters=(MeterValue(Meter.MONO, 9_000_000), MeterValue(Meter.COLOR, 2_000)),
        source="test",
        id="KY3-glitch",
    )
    silent = daily("KY2", date(2026, 9, 20), 20, mono=10, color=1)
    await Pipeline(store, Metrics()).emit([*billed, *glitching, spike, *silent])
    await billing.assign("KY1", "ACME", start=date(2026, 9, 1), end=None, actor="setup", now=now)
    await detect_new(AnomalyStore(store), DetectorSettings(), now=now, poll_interval_s=86_400)
    # October is billed and finalised at the end of October, so Receivables has an overdue invoice.
    result = await bill_month(store, settings, OCT, write=True, actor="setup", now=now)
    [saved] = result.saved
    assert saved.invoice_id is not None
    await finalize_invoice(store, settings, saved.invoice_id, actor="setup", now=now, issue_date=date(2026, 10, 31))
    return enrolled


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The daemon's app (API and console) served by uvicorn on a free port, in a thread with its own loop."""
    state = tmp_path_factory.mktemp("console")
    # The story's October invoice is issued on 31 Oct: the issue-date window counts from the real today.
    settings = Settings(
        storage={"url": f"sqlite:///{state / 'meterd.db'}"},
        state_dir=state,
        billing={"seller": SELLER, "issue_date_window_days": 3650},
    )  # type: ignore[arg-type]
    with served(settings) as running:
        yield running


@contextlib.contextmanager
def served(settings: Settings) -> Iterator[Console]:
    """The seeded store of ``settings`` served by the daemon's app until the block ends."""
    ready: list[Console] = []
    started = threading.Event()
    failed: list[BaseException] = []
    url = settings.database_url

    async def _serve(stopping: threading.Event) -> None:
        async with Store.open(url) as store:
            accounts = Accounts(store, ApiSettings(), SecretBox(settings.state_dir / "secret.key"), utc_now)
            enrolled = await _seed(store, settings, accounts)
            app = create_app(ApiContext(settings, store, accounts, utc_now))
            async with serving(app, "127.0.0.1", 0) as port:
                ready.append(Console(f"http://127.0.0.1:{port}", enrolled, asyncio.get_running_loop(), store, stopping))
                started.set()
                while not stopping.is_set():
                    await asyncio.sleep(0.05)

    stopping = threading.Event()

    def _run() -> None:
        try:
            asyncio.run(_serve(stopping))
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            failed.append(err)
            started.set()

    thread = threading.Thread(target=_run, name="console-server", daemon=True)
    thread.start()
    started.wait(timeout=120)
    if failed:
        raise failed[0]
    try:
        yield ready[0]
    finally:
        stopping.set()
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    if shutil.which(CHROMEDRIVER) is None or shutil.which(CHROMIUM) is None:
        pytest.fail("Debian's chromium and chromium-driver are not installed; `./dev test` installs them")
    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1366,768",
        f"--user-data-dir={profile}",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "intl.accept_languages": "en-US,en",
        },
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.downloads = downloads  # type: ignore[attr-defined]
    try:
        yield driver
    finally:
        driver.quit()


def log_in(browser: WebDriver, console: Console, login: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console.url}/login")
    browser.find_element(By.ID, "login").send_keys(login)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    if login in console.second_factors:
        browser.find_element(By.ID, "code").send_keys(console.code(login))
    submit(browser, browser.find_element(By.CSS_SELECTOR, "form.card button[type=submit]"))


def submit(browser: WebDriver, button: WebElement) -> None:
    """Click a form's button and wait for the page it leads to (the old one's elements go stale)."""
    button.click()
    WebDriverWait(browser, 20).until(expected_conditions.staleness_of(button))


# axe-core's own run, with its error handed back (Axe.run would wait out the script timeout on a rejected promise).
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}})
   .then((results) => done(results)).catch((error) => done({error: String(error)}));
"""
# The axe-core that axe-selenium-python 2.1.6 ships (3.1.1) tags no rule wcag21a; its WCAG 2.1 rules are wcag21aa.
WCAG_A_AA = ["wcag2a", "wcag2aa", "wcag21aa"]


def check_page(browser: WebDriver, name: str) -> None:
    """No WCAG A/AA violation by axe-core on the page shown; its screenshot (from the top) saved as ``name``.png."""
    axe = Axe(browser)
    axe.inject()
    found = browser.execute_async_script(RUN_AXE, WCAG_A_AA)
    assert "error" not in found, found
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")  # axe scrolls to what it checks; the picture starts at the top
    browser.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
    assert not found["violations"], axe.report(found["violations"])
