"""The customer portal on both stores: a portal user sees their customer and its branches and nothing else
(every portal page and API route walked with another customer's ids: 404), single-use invitation links,
readings sent from the portal go through the pipeline as ``source = portal``, change requests need their
proof, and a decision is applied, audited and mailed through the outbox in the customer's language."""

# ruff: noqa: RUF001 - Turkish names and words are spelt with the dotless i

from __future__ import annotations

import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from billing.contracts import parse_contract
from billing.customers import parse_customer
from billing.periods import Period
from daemon.api.app import PREFIX, ROUTERS, create_app
from daemon.api.security import ApiContext
from daemon.security.roles import CUSTOMER, allowed
from daemon.security.secretbox import SecretBox
from daemon.services import portal
from daemon.services.accounts import Accounts, AuthenticationError
from daemon.services.billing import bill_month, finalize_invoice
from daemon.services.mail.outbox import mails
from daemon.settings import ApiSettings, Settings
from daemon.storage.audit import find_audit
from daemon.storage.billing import BillingStore
from daemon.storage.portal import ChangeRequestDecidedError
from daemon.storage.repository import Store
from tests.integration.test_api import PASSWORD, Clock, _guard
from tests.integration.test_billing import BOOK, daily

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')
PORTAL_PASSWORD = "a long portal passphrase 42"
BRANCHES = """
[[customer]]
code = "ACME-N"
legal_name = "Acme Nord GmbH"
country = "DE"
currency = "EUR"
language = "de"
parent = "ACME"
address = { street = "Nordweg 2", city = "Hamburg", postal_code = "20095", country = "DE" }
contacts = [{ name = "Nora Nord", email = "nord@acme.example", billing = true }]

[[customer]]
code = "OTHER"
legal_name = "Öteki Ofis A.Ş."
country = "TR"
currency = "EUR"
language = "tr"
address = { street = "İstiklal Cad. 5", city = "İstanbul", country = "TR" }
contacts = [{ name = "Ayşe Yılmaz", email = "ayse@oteki.example", billing = true }]

[[contract]]
id = "OTHER-1"
customer = "OTHER"
  [[contract.versions]]
  valid_from = 2026-01-01
  currency = "EUR"
  base_fee = "30.00"
  tax_rate = "0.20"
    [[contract.versions.meters]]
    meter = "mono"
    tiers = [{ price = "0.01" }]
"""


@dataclass
class World:
    client: httpx.AsyncClient
    store: Store
    accounts: Accounts
    settings: Settings
    clock: Clock
    invoices: dict[str, int]  # customer -> its finalised October invoice


@pytest.fixture
async def world(store_url: str, tmp_path: Path) -> AsyncIterator[World]:
    clock = Clock()
    settings = Settings.model_validate(
        {
            "storage": {"url": store_url},
            "state_dir": str(tmp_path),
            "billing": {
                "issue_date_window_days": 3650,
                "seller": {"name": "Print Partner GmbH", "email": "billing@printpartner.example"},
            },
            "mail": {"dry_run_dir": str(tmp_path / "eml")},
            "portal": {"base_url": "https://meterd.test"},
        }
    )
    async with Store.open(store_url) as store:
        accounts = Accounts(store, ApiSettings(), SecretBox(tmp_path / "secret.key"), clock)
        await accounts.add_user("tech", "The technician", "technician", PASSWORD, actor="setup")
        book = tomllib.loads(BOOK + BRANCHES)
        billing = BillingStore(store)
        now = clock()
        await billing.save_customers([parse_customer(c) for c in book["customer"]], actor="setup", now=now)
        for contract in book["contract"]:
            await billing.save_contract(parse_contract(contract), actor="setup", now=now)
        first = date(2026, 9, 20)
        readings = [
            *daily("KY1", first, 50, mono=100, color=20),
            *daily("KY3", first, 50, mono=80, color=0, site="oteki"),
        ]
        # KY2 is not networked: one reading typed in by staff at installation, no address.
        readings += daily("KY2", first, 1, mono=0, color=0, site="acme-nord")
        readings = [
            r if r.device.key == "KY2" else replace(r, device=replace(r.device, address="10.0.0.9")) for r in readings
        ]
        await store.store(readings, now=now)
        # The branch took KY2 in November: October bills the head office and the other customer only.
        for device, customer, start in (
            ("KY1", "ACME", date(2026, 9, 1)),
            ("KY2", "ACME-N", date(2026, 11, 1)),
            ("KY3", "OTHER", date(2026, 9, 1)),
        ):
            await billing.assign(device, customer, start=start, actor="setup", now=now)
        await bill_month(store, settings, Period.parse_month("2026-10"), write=True, actor="setup", now=now)
        invoices = {}
        for record in await billing.invoices():
            final = await finalize_invoice(
                store, settings, record.id, actor="setup", now=now, issue_date=date(2026, 11, 1), override="test"
            )
            invoices[final.customer] = final.id
        app = create_app(ApiContext(settings, store, accounts, clock))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://meterd.test") as client:
            yield World(client, store, accounts, settings, clock, invoices)


async def _portal_user(world: World, customer: str, email: str) -> None:
    link = await portal.invite(
        world.store, world.settings, world.accounts, customer, email, actor="tech", now=world.clock()
    )
    await world.accounts.use_link(link.rsplit("/", 1)[1], PORTAL_PASSWORD, second_factor=False)


async def _api_token(world: World, login: str) -> dict[str, str]:
    answer = await world.client.post(f"{PREFIX}/auth/login", json={"login": login, "password": PORTAL_PASSWORD})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


async def _portal_login(world: World, login: str) -> httpx.Response:
    page = await world.client.get("/portal/login")
    [token] = CSRF.findall(page.text)
    return await world.client.post(
        "/portal/login", data={"csrf": token, "login": login, "password": PORTAL_PASSWORD, "next": "/portal/"}
    )


async def _walk_portal_api(
    world: World, headers: dict[str, str], theirs: dict[str, str], mine: dict[str, str | None]
) -> None:
    """Every API route a customer may use, with the other customer's ids: 404, and with its own: not 404."""
    walked = 0
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            guard = _guard(route)
            if guard is None or guard.permission != "portal":
                continue
            params = re.findall(r"\{([^}]+)\}", route.path)
            if not params:
                continue
            for method in route.methods:
                url = PREFIX + route.path.format(**theirs)
                body = {"meter": "total", "value": 1, "taken_on": "2026-11-29"}
                answer = await world.client.request(method, url, headers=headers, json=body)
                assert answer.status_code == 404, (method, url, answer.text)
                assert answer.json()["error"]["code"] == "not_found"
                walked += 1
                if all(mine[p] for p in params):
                    own = await world.client.request(
                        method, PREFIX + route.path.format(**mine), headers=headers, json=body
                    )
                    assert own.status_code in {200, 201}, (method, route.path, own.text)
    assert walked >= 5  # readings (read, send), invoice, its document, a change request


async def test_a_portal_user_reaches_nothing_of_another_customer_on_any_portal_route(world: World) -> None:
    await _portal_user(world, "ACME", "ap@acme.example")
    await _portal_user(world, "OTHER", "ayse@oteki.example")
    other = await _api_token(world, "ayse@oteki.example")
    change = await world.client.post(
        f"{PREFIX}/portal/change-requests", headers=other, json={"changes": {"trade_name": "Öteki"}}
    )
    assert change.status_code == 201, change.text
    theirs = {
        "invoice_id": str(world.invoices["OTHER"]),
        "key": "KY3",
        "request_id": str(change.json()["id"]),
    }
    mine = {"invoice_id": str(world.invoices["ACME"]), "key": "KY2", "request_id": None}
    acme = await _api_token(world, "ap@acme.example")

    await _walk_portal_api(world, acme, theirs, mine)

    # A customer's token opens no staff route (403), whatever it names.
    for router in ROUTERS:
        for route in router.routes:
            guard = _guard(route) if isinstance(route, APIRoute) else None
            if guard is None or allowed(CUSTOMER, guard.permission):
                continue
            for method in route.methods:
                url = PREFIX + re.sub(r"\{[^}]+\}", "1", route.path)
                assert (await world.client.request(method, url, headers=acme, json={})).status_code == 403, url

    # The lists hold the head office's and its branch's things, never the other customer's.
    devices = (await world.client.get(f"{PREFIX}/portal/devices", headers=acme)).json()
    assert sorted(d["key"] for d in devices) == ["KY1", "KY2"]
    listed = (await world.client.get(f"{PREFIX}/portal/invoices", headers=acme)).json()
    assert {i["customer"] for i in listed} == {"ACME"}
    assert (await world.client.get(f"{PREFIX}/portal/change-requests", headers=acme)).json() == []

    # The same walk over the portal's pages, in the browser's way (cookie session, CSRF).
    assert (await _portal_login(world, "ap@acme.example")).status_code == 303
    home = await world.client.get("/portal/")
    assert home.status_code == 200
    assert "KY1" in home.text
    assert "KY2" in home.text
    assert "KY3" not in home.text
    [csrf] = CSRF.findall(home.text)[:1]
    pages = [
        ("GET", "/portal/devices/KY3", None),
        ("POST", "/portal/devices/KY3/readings", {"csrf": csrf, "value": "5", "taken_on": "2026-11-29"}),
        ("GET", f"/portal/invoices/{theirs['invoice_id']}/document?format=pdf", None),
        ("GET", f"/portal/invoices/{theirs['invoice_id']}/document?format=ubl", None),
        ("GET", "/portal/usage?period=2026-10&customer=OTHER", None),
    ]
    for method, url, form in pages:
        answer = await world.client.request(method, url, data=form)
        assert answer.status_code == 404, (method, url, answer.status_code)
    report = await world.client.get("/portal/usage?period=2026-10")
    assert report.status_code == 200
    assert "KY1" in report.text
    assert "style-src 'unsafe-inline'" in report.headers["content-security-policy"]  # else it shows unstyled
    own_pdf = await world.client.get(f"/portal/invoices/{mine['invoice_id']}/document?format=pdf")
    assert own_pdf.status_code == 200
    assert own_pdf.content.startswith(b"%PDF")


async def test_an_invitation_link_works_once_and_for_its_hours_and_the_mail_speaks_the_customers_language(
    world: World,
) -> None:
    link = await portal.invite(
        world.store, world.settings, world.accounts, "OTHER", "AYSE@oteki.example", actor="tech", now=world.clock()
    )
    token = link.rsplit("/", 1)[1]
    [mail] = [m for m in await mails(world.store) if m.key.startswith("portal-invite:")]
    message = message_from_bytes(mail.message, policy=policy.default)
    assert message["To"] == "Ayşe Yılmaz <ayse@oteki.example>"
    assert message["Subject"] == "Print Partner GmbH: portal hesabınız"
    assert message["Content-Language"] == "tr"
    assert link in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert token not in mail.key  # the key names the link by its hash only
    # Not somebody else's address: contacts only.
    with pytest.raises(portal.PortalError, match="not a contact of OTHER"):
        await portal.invite(
            world.store, world.settings, world.accounts, "OTHER", "x@y.example", actor="t", now=world.clock()
        )

    page = await world.client.get(f"/portal/password/{token}")
    assert page.status_code == 200
    [csrf] = CSRF.findall(page.text)
    weak = await world.client.post(
        f"/portal/password/{token}", data={"csrf": csrf, "password": "short", "confirm": "short"}
    )
    assert weak.status_code == 422  # the staff password policy
    done = await world.client.post(
        f"/portal/password/{token}",
        data={"csrf": csrf, "password": PORTAL_PASSWORD, "confirm": PORTAL_PASSWORD, "second_factor": "on"},
    )
    assert done.status_code == 200
    assert "otpauth://" in done.text  # the one-time code app was set up on the way
    again = await world.client.post(
        f"/portal/password/{token}", data={"csrf": csrf, "password": PORTAL_PASSWORD, "confirm": PORTAL_PASSWORD}
    )
    assert again.status_code == 410  # single use
    with pytest.raises(AuthenticationError, match="not valid any more"):
        await world.accounts.use_link(token, "another long passphrase 7", second_factor=False)

    # A reset link dies after portal.link_hours.
    await portal.reset_password(world.store, world.settings, world.accounts, "ayse@oteki.example", now=world.clock())
    resets = [m for m in await mails(world.store) if m.key.startswith("portal-reset:")]
    assert len(resets) == 1
    reset_link = re.search(
        r"https://meterd.test/portal/password/(\S+)",
        message_from_bytes(resets[0].message, policy=policy.default).get_body(("plain",)).get_content(),
    )  # type: ignore[union-attr]
    assert reset_link is not None
    world.clock.now += timedelta(hours=72, seconds=1)
    with pytest.raises(AuthenticationError, match="not valid any more"):
        await world.accounts.use_link(reset_link.group(1), "another long passphrase 7", second_factor=False)
    # Nobody learns from the reset form who has an account.
    await portal.reset_password(world.store, world.settings, world.accounts, "nobody@x.example", now=world.clock())
    assert len([m for m in await mails(world.store) if m.key.startswith("portal-reset:")]) == 1


async def test_each_door_takes_only_its_own_accounts_and_a_portal_session_ends_when_idle(world: World) -> None:
    await _portal_user(world, "ACME", "ap@acme.example")
    page = await world.client.get("/login")
    [csrf] = CSRF.findall(page.text)
    console = await world.client.post(
        "/login", data={"csrf": csrf, "login": "ap@acme.example", "password": PORTAL_PASSWORD, "next": "/"}
    )
    assert console.status_code == 401
    assert "customers log in to the portal" in console.text
    page = await world.client.get("/portal/login")
    [csrf] = CSRF.findall(page.text)
    staff = await world.client.post("/portal/login", data={"csrf": csrf, "login": "tech", "password": PASSWORD})
    assert staff.status_code == 401
    assert (await _portal_login(world, "ap@acme.example")).status_code == 303
    assert (await world.client.get("/")).status_code == 303  # the portal's cookie opens no console page
    world.clock.now += timedelta(minutes=29)
    assert (await world.client.get("/portal/invoices")).status_code == 200
    world.clock.now += timedelta(minutes=31)
    ended = await world.client.get("/portal/invoices")
    assert ended.status_code == 303
    assert ended.headers["location"].startswith("/portal/login?")
    assert "30+minutes+without+use" in ended.headers["location"]


async def test_a_reading_from_the_portal_is_stored_as_source_portal_only_for_a_device_that_is_not_networked(
    world: World,
) -> None:
    await _portal_user(world, "ACME", "ap@acme.example")
    headers = await _api_token(world, "ap@acme.example")
    body = {"meter": "total", "value": 12_345, "taken_on": "2026-11-29"}
    networked = await world.client.post(f"{PREFIX}/portal/devices/KY1/readings", headers=headers, json=body)
    assert networked.status_code == 422
    assert "sends its counters by itself" in networked.json()["error"]["message"]
    sent = await world.client.post(f"{PREFIX}/portal/devices/KY2/readings", headers=headers, json=body)
    assert sent.status_code == 201
    [stored] = [r for r in await world.store.readings(device="KY2") if r.id == sent.json()["id"]]
    assert stored.source == "portal"
    assert stored.taken_at == datetime(2026, 11, 29, 12, tzinfo=UTC)
    # A photo: at most portal.photo_max_bytes, and a picture.
    scope = await portal.scope_of(world.store, (await world.accounts.authenticate(headers["Authorization"][7:])))
    with pytest.raises(portal.PortalError, match="JPEG or PNG"):
        await portal.submit_reading(
            world.store,
            world.settings,
            scope,
            "KY2",
            meter="total",
            value=12_400,
            taken_on=date(2026, 11, 30),
            photo=b"MZ not a picture",
            now=world.clock(),
        )
    with pytest.raises(portal.PortalError, match="at most 5 MB"):
        await portal.submit_reading(
            world.store,
            world.settings,
            scope,
            "KY2",
            meter="total",
            value=12_400,
            taken_on=date(2026, 11, 30),
            photo=b"\xff\xd8\xff" + bytes(5 * 1024 * 1024),
            now=world.clock(),
        )


async def test_a_change_request_needs_its_proof_and_approving_it_applies_audits_and_mails_once(world: World) -> None:
    await _portal_user(world, "ACME", "ap@acme.example")
    scope = portal.Scope("ap@acme.example", "ACME", frozenset({"ACME", "ACME-N"}))
    with pytest.raises(portal.PortalError, match="tax_id: attach a document"):
        await portal.request_change(
            world.store, world.settings, scope, {"tax_id": "DE129273398"}, proof=None, now=world.clock()
        )
    card = (await portal.card(world.store, scope)).model_dump(mode="json")
    address = {**card["address"], "street": "Neue Straße 9"}
    request_id = await portal.request_change(
        world.store,
        world.settings,
        scope,
        {"address": address, "tax_id": "DE129273398"},
        proof=("register.pdf", "application/pdf", b"%PDF-1.4 proof"),
        now=world.clock(),
    )
    decided = await portal.decide_change(
        world.store, world.settings, request_id, approve=True, reason="", actor="tech", now=world.clock()
    )
    assert decided.status == "approved"
    applied = (await BillingStore(world.store).book()).customers["ACME"]
    assert (applied.address.street, applied.tax_id) == ("Neue Straße 9", "DE129273398")
    actions = [e.action for e in await find_audit(world.store, actor="tech")]
    assert "customer.save" in actions
    assert "change_request.approved" in actions
    [mail] = [m for m in await mails(world.store) if m.key == f"change-request:{request_id}"]
    text = message_from_bytes(mail.message, policy=policy.default).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    text = text.replace("\r\n", "\n")
    assert text.startswith("Dear Petra Kaufmann,")  # the contact's name, not their login
    assert "  Address: Hauptstraße 1, 10115, Berlin, DE -> Neue Straße 9, 10115, Berlin, DE" in text
    assert "  Tax number: DE136695976 -> DE129273398" in text
    with pytest.raises(ChangeRequestDecidedError):
        await portal.decide_change(
            world.store, world.settings, request_id, approve=False, reason="late", actor="tech", now=world.clock()
        )
    # The notify job, when on, does not confirm the same change a second time.
    from daemon.services.notify import queue_changes  # noqa: PLC0415

    notifying = world.settings.model_copy(
        update={"notify": world.settings.notify.model_copy(update={"customer_changes": True})}
    )
    assert await queue_changes(world.store, notifying, now=world.clock()) == 0
