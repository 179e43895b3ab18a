"""The console's device page, manual meter entry, anomaly evidence and bulk dismiss, void from the invoice page,
finalising many drafts at once, and sessions whose idle time is configured and survives a restart — in-process
on both stores, each control refused to a role that may not use it (the forged POST), each change audited."""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from billing.anomalies import DetectorSettings
from billing.contracts import parse_contract
from billing.customers import parse_customer
from billing.periods import Period
from daemon.api.app import create_app
from daemon.api.security import ApiContext
from daemon.kernel.reading import Meter, MeterValue, Supply
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts
from daemon.services.anomaly_detection import detect_new
from daemon.services.billing import bill_month, finalize_many
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import ApiSettings, Settings
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.audit import find_audit
from daemon.storage.billing import DRAFT, FINALIZED, BillingStore
from daemon.storage.repository import Store
from tests.integration.conftest import StoreTemplates
from tests.integration.test_api import PASSWORD, Clock
from tests.integration.test_billing import BOOK, daily

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
USERS = {"tech": "technician", "clerk": "billing", "view": "viewer"}
NOV = Period.month(2026, 11)
OCT = Period.month(2026, 10)
# A second customer, so a month has two drafts to finalise at once.
SECOND = """
[[customer]]
code = "BETA"
legal_name = "Beta Druck AG"
country = "DE"
tax_id = "DE811907980"
currency = "EUR"
payment_terms_days = 14
address = { street = "Ring 2", city = "Köln", postal_code = "50667", country = "DE" }
contacts = [{ name = "Jan Beta", email = "ap@beta.example", billing = true }]

[[contract]]
id = "BETA-1"
customer = "BETA"
  [[contract.versions]]
  valid_from = 2026-01-01
  currency = "EUR"
  base_fee = "25.00"
  tax_rate = "0.19"
    [[contract.versions.meters]]
    meter = "mono"
    tiers = [{ price = "0.01" }]
"""


@dataclass
class Web:
    client: httpx.AsyncClient
    clock: Clock
    store: Store
    settings: Settings
    accounts: Accounts

    async def log_in(self, login: str) -> str:
        """Log ``login`` in (a fresh cookie jar); returns the session's CSRF token."""
        self.client.cookies.clear()
        page = await self.client.get("/login")
        [token] = CSRF.findall(page.text)
        done = await self.client.post("/login", data={"csrf": token, "login": login, "password": PASSWORD})
        assert done.status_code == 303, done.text
        return CSRF.findall((await self.client.get("/")).text)[0]


def _app(settings: Settings, store: Store, accounts: Accounts, clock: Clock) -> httpx.AsyncClient:
    app = create_app(ApiContext(settings, store, accounts, clock))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://meterd.test")


async def _add_users(url: str, key_file: Path) -> None:
    async with Store.open(url) as store:
        accounts = Accounts(store, ApiSettings(totp_required_for=[]), SecretBox(key_file), Clock())
        for login, role in USERS.items():
            await accounts.add_user(login, f"The {role}", role, PASSWORD, actor="setup")


@pytest.fixture
def web_users(store_url: str, tmp_path: Path, store_templates: StoreTemplates) -> None:
    """The three users in the test's store, seeded once per worker (an argon2id hash each) and copied."""
    store_templates.copy("web-users", _add_users, store_url, tmp_path / "secret.key")


@pytest.fixture
async def web(store_url: str, tmp_path: Path, web_users: None) -> AsyncIterator[Web]:
    clock = Clock()
    settings = Settings(
        storage={"url": store_url},  # type: ignore[arg-type]
        state_dir=tmp_path,
        billing={"seller": {"name": "Print Partner GmbH", "tax_id": "DE136695976", "iban": "DE89370400440532013000"}},  # type: ignore[arg-type]
        console={"session_idle_minutes": 10},  # type: ignore[arg-type]
    )
    async with Store.open(store_url) as store:
        accounts = Accounts(store, ApiSettings(totp_required_for=[]), SecretBox(tmp_path / "secret.key"), clock)
        readings = daily("KY1", date(2026, 9, 20), 70, mono=100, color=20)
        last = readings[-1]
        toner = (Supply("Black toner", "toner", "black", 42), Supply("Cyan toner", "toner", "cyan", 7))
        readings[-1] = replace(last, supplies=toner)
        # A board swap on 1 November: the counter starts again near zero (a break the chart marks).
        readings = [
            r
            if r.taken_at < datetime(2026, 11, 1, tzinfo=UTC)
            else replace(
                r,
                meters=tuple(
                    replace(m, value=m.value - 14_000 if m.meter == Meter.MONO else m.value) for m in r.meters
                ),
            )
            for r in readings
        ]
        await Pipeline(store, Metrics(), clock).emit(readings)
        async with _app(settings, store, accounts, clock) as client:
            yield Web(client, clock, store, settings, accounts)


async def test_the_device_page_charts_each_meter_marks_the_break_and_lists_sources_and_supplies(web: Web) -> None:
    await web.log_in("view")
    page = await web.client.get("/devices/KY1", params={"days": 90})
    assert page.status_code == 200, page.text
    html = page.text
    assert html.count('<svg class="chart"') == 4  # counter and pages per day, for mono and colour
    assert "<script>" not in html  # drawn on the server: nothing for the CSP to allow
    mono = html[html.index('id="counter-1"') :]
    mono = mono[: mono.index("</svg>")]
    assert mono.count('class="marker"') == 1  # the fall on 1 Nov, not yet reviewed
    assert "counter went back" in mono
    assert 'class="marker"' not in html[html.index('id="counter-0"') : html.index('id="pages-0"')]  # colour is whole
    assert "Black toner" in html
    assert 'value="7"' in html  # the cyan toner's level
    assert html.count("<td>test</td>") == 50  # the latest 50 readings, each with where it came from
    assert "Enter a reading by hand" not in html  # a viewer may not: the form is not there


async def test_a_manual_reading_goes_through_the_checks_and_the_anomaly_detection_and_is_audited(web: Web) -> None:
    token = await web.log_in("tech")
    anomalies = AnomalyStore(web.store)
    await detect_new(anomalies, DetectorSettings(), now=web.clock(), poll_interval_s=86_400)
    before = {a.id for a in await anomalies.find(device="KY1")}
    web.clock.now += timedelta(minutes=5)  # received after the detector's last run, as in life
    form = {"csrf": token, "meter": "mono", "taken_at": "2026-11-29T12:00", "entered_by": "Petra (by phone)"}
    future = await web.client.post(
        "/devices/KY1/readings", data=form | {"value": "2000", "taken_at": "2026-12-24T10:00"}
    )
    assert future.status_code == 422
    assert "in the future" in future.text
    unknown = await web.client.post("/devices/KY1/readings", data=form | {"value": "2000", "meter": "print_total"})
    assert unknown.status_code == 422
    assert "reports color, mono" in unknown.text
    # Below the day before's 2,900 and not a restart from zero: a fall the detectors must catch.
    saved = await web.client.post("/devices/KY1/readings", data=form | {"value": "900"})
    assert saved.status_code == 303, saved.text
    [manual] = [r for r in await web.store.readings(device="KY1") if r.source == "manual"]
    assert (manual.taken_at, [(m.meter, m.value) for m in manual.meters]) == (
        datetime(2026, 11, 29, 12, tzinfo=UTC),
        [(Meter.MONO, 900)],
    )
    found = [a for a in await anomalies.find(device="KY1") if a.id not in before]
    assert found, "the manual reading was not searched for anomalies"
    assert manual.id in found[0].evidence.get("readings", []) or found[0].window_end == manual.taken_at
    [entry] = [e for e in await find_audit(web.store, target="device:KY1") if e.action == "reading.manual"]
    assert (entry.actor, entry.detail["entered_by"], entry.detail["value"]) == ("tech", "Petra (by phone)", 900)
    assert entry.source is not None
    assert entry.source.startswith("web ")
    again = await web.client.post("/devices/KY1/readings", data=form | {"value": "9100"})
    assert again.status_code == 422  # one reading per moment
    page = await web.client.get("/devices/KY1")
    assert "<td>manual</td>" in page.text


async def test_a_viewer_cannot_enter_a_reading_even_with_a_forged_form(web: Web) -> None:
    token = await web.log_in("view")
    forged = await web.client.post(
        "/devices/KY1/readings",
        data={"csrf": token, "meter": "mono", "value": "1", "taken_at": "2026-11-29T12:00", "entered_by": "x"},
    )
    assert forged.status_code == 403
    assert not [r for r in await web.store.readings(device="KY1") if r.source == "manual"]


async def _glitches(web: Web, count: int) -> None:
    """``count`` one-reading spikes on KY3's mono meter, each its own episode of kind ``jump``."""
    readings = daily("KY3", date(2026, 10, 1), 50, mono=50, color=5, site="acme-branch")
    for n in range(count):
        glitch = readings[10 + 10 * n]
        readings.append(
            replace(
                glitch,
                taken_at=glitch.taken_at + timedelta(hours=1),
                meters=(MeterValue(Meter.MONO, 9_000_000 + n), MeterValue(Meter.COLOR, glitch.meters[1].value)),
                id=f"KY3-glitch-{n}",
            )
        )
    await Pipeline(web.store, Metrics(), web.clock).emit(readings)
    await detect_new(AnomalyStore(web.store), DetectorSettings(), now=web.clock(), poll_interval_s=86_400)


async def test_the_review_queue_shows_the_evidence_chart_and_dismisses_a_kind_on_a_device_at_once(web: Web) -> None:
    await _glitches(web, 3)
    anomalies = AnomalyStore(web.store)
    open_ky3 = await anomalies.find(status="unresolved", device="KY3")
    kinds = {a.kind for a in open_ky3}
    kind = max(kinds, key=lambda k: sum(a.kind == k for a in open_ky3))
    alike = [a for a in open_ky3 if a.kind == kind]
    assert len(alike) > 1, open_ky3
    token = await web.log_in("view")
    page = await web.client.get("/anomalies")
    assert f'id="evidence-{alike[0].id}"' in page.text
    assert 'class="suspect"' in page.text  # the held reading stands out
    assert "Dismiss all" not in page.text  # a viewer sees no decision
    forged = await web.client.post(
        "/anomalies/dismiss", data={"csrf": token, "device": "KY3", "kind": kind, "reason": "x"}
    )
    assert forged.status_code == 403
    token = await web.log_in("tech")
    page = await web.client.get("/anomalies")
    assert f"Dismiss all {len(alike)} {kind} on KY3" in page.text
    assert "A false alarm: nothing changes in the readings." in page.text  # each action in one sentence
    reasonless = await web.client.post("/anomalies/dismiss", data={"csrf": token, "device": "KY3", "kind": kind})
    assert reasonless.status_code == 422
    done = await web.client.post(
        "/anomalies/dismiss", data={"csrf": token, "device": "KY3", "kind": kind, "reason": "test prints"}
    )
    assert done.status_code == 303, done.text
    left = await anomalies.find(status="unresolved", device="KY3", kind=kind)
    assert not left
    dismissed = [e for e in await find_audit(web.store, actor="tech") if e.action == "anomaly.dismissed"]
    assert len(dismissed) == len(alike)
    assert all(e.source and e.source.startswith("web ") for e in dismissed)


async def _two_drafts(web: Web) -> list[int]:
    billing = BillingStore(web.store)
    book = tomllib.loads(BOOK + SECOND)
    await billing.save_customers([parse_customer(c) for c in book["customer"]], actor="setup", now=web.clock())
    for contract in book["contract"]:
        await billing.save_contract(parse_contract(contract), actor="setup", now=web.clock())
    await Pipeline(web.store, Metrics(), web.clock).emit(daily("BE1", date(2026, 9, 20), 70, mono=30, color=0))
    await billing.assign("KY1", "ACME", start=date(2026, 9, 1), end=None, actor="setup", now=web.clock())
    await billing.assign("BE1", "BETA", start=date(2026, 9, 1), end=None, actor="setup", now=web.clock())
    await bill_month(web.store, web.settings, OCT, write=True, actor="setup", now=web.clock())
    return [d.id for d in await billing.invoices(period=OCT, status=DRAFT)]


async def test_many_drafts_are_finalised_at_once_and_a_forged_post_is_refused(web: Web) -> None:
    drafts = await _two_drafts(web)
    assert len(drafts) == 2
    token = await web.log_in("view")
    page = await web.client.get("/billing", params={"period": "2026-10"})
    assert 'form="bulk-finalize"' not in page.text
    forged = await web.client.post("/billing/finalize", data={"csrf": token, "period": "2026-10", "invoice": drafts})
    assert forged.status_code == 403
    token = await web.log_in("clerk")
    page = await web.client.get("/billing", params={"period": "2026-10"})
    assert page.text.count('form="bulk-finalize"') == 2
    assert "Override reason (only where a check blocks)" in page.text
    assert "only where a line is held" not in page.text
    done = await web.client.post("/billing/finalize", data={"csrf": token, "period": "2026-10", "invoice": drafts})
    assert done.status_code == 200, done.text
    assert done.text.count("Finalised: ") == 2
    billing = BillingStore(web.store)
    assert [(await billing.invoice(i)).status for i in drafts] == [FINALIZED, FINALIZED]
    finalised = [e for e in await find_audit(web.store, actor="clerk") if e.action.startswith("invoice.final")]
    assert len(finalised) == 2


async def test_an_invoice_is_voided_from_its_page_with_a_reason_and_a_credit_note(web: Web) -> None:
    [first, _] = await _two_drafts(web)
    token = await web.log_in("clerk")
    await web.client.post("/billing/finalize", data={"csrf": token, "period": "2026-10", "invoice": [first]})
    page = await web.client.get(f"/invoices/{first}")
    assert f'action="/invoices/{first}/void"' in page.text
    reasonless = await web.client.post(f"/invoices/{first}/void", data={"csrf": token})
    assert reasonless.status_code == 422
    token = await web.log_in("view")
    assert 'action="/invoices/' not in (await web.client.get(f"/invoices/{first}")).text.split("void")[0][-80:]
    forged = await web.client.post(f"/invoices/{first}/void", data={"csrf": token, "reason": "x"})
    assert forged.status_code == 403
    token = await web.log_in("clerk")
    voided = await web.client.post(f"/invoices/{first}/void", data={"csrf": token, "reason": "wrong customer"})
    assert voided.status_code == 303, voided.text
    credit = await BillingStore(web.store).invoice(int(voided.headers["location"].rsplit("/", 1)[1]))
    assert credit.kind == "credit_note"
    original = await BillingStore(web.store).invoice(first)
    assert (original.status, original.void_reason, credit.total) == ("voided", "wrong customer", -original.total)
    again = await web.client.post(f"/invoices/{first}/void", data={"csrf": token, "reason": "twice"})
    assert again.status_code == 409


async def test_the_idle_time_is_configured_and_a_restart_neither_ends_nor_extends_a_session(web: Web) -> None:
    await web.log_in("tech")
    cookies = dict(web.client.cookies)
    web.clock.now += timedelta(minutes=9)
    assert (await web.client.get("/")).status_code == 200  # within console.session_idle_minutes = 10
    # The daemon restarts: a new app on the same store, the browser keeps its cookie.
    async with _app(web.settings, web.store, web.accounts, web.clock) as restarted:
        restarted.cookies.update(cookies)
        web.clock.now += timedelta(minutes=9)
        assert (await restarted.get("/")).status_code == 200  # not logged out early by the restart
        web.clock.now += timedelta(minutes=11)
        ended = await restarted.get("/")
        assert ended.status_code == 303  # nor given time it did not earn
        assert "10+minutes+without+use" in ended.headers["location"]
        assert (await restarted.get("/")).status_code == 303  # its token is revoked


async def test_a_draft_a_check_blocks_is_refused_alone_and_finalised_with_an_override_reason(web: Web) -> None:
    october = await _two_drafts(web)
    await finalize_many(web.store, web.settings, october, actor="setup", now=web.clock(), override=None)
    # KY1's counter fell on 1 November (an open reset that holds its readings): ACME's November draft is blocked.
    await detect_new(AnomalyStore(web.store), DetectorSettings(), now=web.clock(), poll_interval_s=86_400)
    await bill_month(web.store, web.settings, NOV, write=True, actor="setup", now=web.clock())
    billing = BillingStore(web.store)
    drafts = {d.customer: d.id for d in await billing.invoices(period=NOV, status=DRAFT)}
    token = await web.log_in("clerk")
    form = {"csrf": token, "period": "2026-11", "invoice": [drafts["ACME"], drafts["BETA"]]}
    first = await web.client.post("/billing/finalize", data=form)
    assert first.status_code == 200, first.text
    assert f"Not finalised: draft {drafts['ACME']}" in first.text
    assert "blocking item(s)" in first.text  # the store's own reason, beside the draft it kept back
    assert [(await billing.invoice(drafts[c])).status for c in ("ACME", "BETA")] == [DRAFT, FINALIZED]
    second = await web.client.post(
        "/billing/finalize", data=form | {"invoice": [drafts["ACME"]], "override": "reset confirmed by phone"}
    )
    assert "Finalised: " in second.text
    acme = await billing.invoice(drafts["ACME"])
    assert (acme.status, acme.hold_override) == (FINALIZED, "reset confirmed by phone")


def _pdf_text(pdf: bytes) -> str:
    out = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    return " ".join(out.replace("\u00a0", " ").split())


async def test_a_devices_name_location_and_cost_centre_are_edited_on_its_page_and_frozen_on_the_invoice(
    web: Web,
) -> None:
    labels = {"name": "Empfang", "location": "Haus B, 2. OG", "cost_centre": "4711"}
    token = await web.log_in("tech")  # a technician reads devices but does not keep the customer's records
    assert 'action="/devices/KY1/labels"' not in (await web.client.get("/devices/KY1")).text
    forged = await web.client.post("/devices/KY1/labels", data={"csrf": token} | labels)
    assert forged.status_code == 403
    assert (await web.store.device("KY1")).name is None
    token = await web.log_in("clerk")
    assert 'action="/devices/KY1/labels"' in (await web.client.get("/devices/KY1")).text
    tokenless = await web.client.post("/devices/KY1/labels", data=labels)
    assert tokenless.status_code == 403
    too_long = await web.client.post("/devices/KY1/labels", data={"csrf": token} | labels | {"cost_centre": "K" * 65})
    assert too_long.status_code == 422
    assert "cost_centre: at most 64 characters" in too_long.text
    saved = await web.client.post("/devices/KY1/labels", data={"csrf": token} | labels)
    assert saved.status_code == 303, saved.text
    page = (await web.client.get("/devices/KY1")).text
    assert "<dd>Haus B, 2. OG</dd>" in page
    assert 'value="4711"' in page
    [entry] = [e for e in await find_audit(web.store, target="device:KY1") if e.action == "device.save"]
    assert (entry.actor, entry.detail["after"]) == ("clerk", labels)
    [first, _] = await _two_drafts(web)
    await web.client.post("/billing/finalize", data={"csrf": token, "period": "2026-10", "invoice": [first]})
    pdf = await web.client.get(f"/invoices/{first}/document", params={"format": "pdf"})
    text = _pdf_text(pdf.content)
    assert "Empfang · Haus B, 2. OG · cost centre 4711" in text, text
    assert "pages × €0.012" in text, text  # noqa: RUF001 - the unit price on the mono line, as printed
    # Renamed later: the finalised invoice keeps the name it was issued with.
    blank = {"csrf": token, "name": "Lager", "location": "", "cost_centre": ""}
    assert (await web.client.post("/devices/KY1/labels", data=blank)).status_code == 303
    device = await web.store.device("KY1")
    assert (device.name, device.location, device.cost_centre) == ("Lager", None, None)
    again = _pdf_text((await web.client.get(f"/invoices/{first}/document", params={"format": "pdf"})).content)
    assert "Empfang · Haus B, 2. OG · cost centre 4711" in again
    assert "Lager" not in again
