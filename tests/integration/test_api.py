"""The HTTP API in-process on both stores: every route x every role against the one permissions table,
logins (passwords, TOTP, recovery codes, lock-out, expiry, revocation), and the audit trail of API changes."""

from __future__ import annotations

import asyncio
import re
import time
import tomllib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from fastapi.routing import APIRoute
from structlog.testing import capture_logs

from billing.anomalies import DetectorSettings
from daemon.api.app import PREFIX, ROUTERS, create_app
from daemon.api.security import ApiContext, Guard
from daemon.kernel.reading import Meter, MeterValue
from daemon.security.passwords import hash_secret, verify_secret
from daemon.security.roles import PERMISSIONS, ROLES, allowed
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts, AuthenticationError, Enrollment
from daemon.services.anomaly_detection import detect_new
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.settings import ApiSettings, Settings
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.audit import find_audit
from daemon.storage.repository import Store
from tests.integration.conftest import StoreTemplates
from tests.integration.test_billing import BOOK, daily, konica_daily

PASSWORD = "correct horse battery staple"
PUBLIC = {("POST", "/api/v1/auth/login")}
CONTACTS_HEADER = "customer,name,role,email,phone,billing\n"
NEW_DEVICE = "key,vendor,model,address,site\nKY2,Ricoh,,,acme-hq\n"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 30, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Api:
    client: httpx.AsyncClient
    accounts: Accounts
    clock: Clock
    store: Store
    second_factors: dict[str, Enrollment]
    key_file: Path

    def accounts_with(self, settings: ApiSettings) -> Accounts:
        """The same users, behind other login limits."""
        return Accounts(self.store, settings, SecretBox(self.key_file), self.clock)

    def code(self, login: str, *, steps: int = 0) -> str:
        return pyotp.TOTP(self.second_factors[login].secret).at(self.clock.now + timedelta(seconds=30 * steps))

    async def login(self, login: str, password: str = PASSWORD, code: str | None = None) -> httpx.Response:
        if code is None and login in self.second_factors:
            code = self.code(login)
        body = {"login": login, "password": password} | ({"code": code} if code else {})
        return await self.client.post("/api/v1/auth/login", json=body)

    async def token(self, login: str) -> dict[str, str]:
        response = await self.login(login)
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['token']}"}


async def _add_users(url: str, key_file: Path) -> dict[str, Enrollment]:
    """One user per role (login = role); returns the second factors of the roles that need one."""
    second_factors = {}
    async with Store.open(url) as store:
        accounts = Accounts(store, ApiSettings(), SecretBox(key_file), Clock())
        for role in ROLES:
            enrollment = await accounts.add_user(role, f"The {role}", role, PASSWORD, actor="setup")
            if enrollment is not None:
                second_factors[role] = enrollment
    return second_factors


@pytest.fixture
def api_users(store_url: str, tmp_path: Path, store_templates: StoreTemplates) -> dict[str, Enrollment]:
    """The four users in the test's store, seeded once per worker and copied: seeding takes 25 argon2id hashes
    (a password each, ten recovery codes per second factor), 10-18 s per test on two busy cores."""
    return store_templates.copy("api-users", _add_users, store_url, tmp_path / "secret.key")


@pytest.fixture
async def api(store_url: str, tmp_path: Path, api_users: dict[str, Enrollment]) -> AsyncIterator[Api]:
    clock = Clock()
    settings = Settings(storage={"url": store_url}, state_dir=tmp_path)  # type: ignore[arg-type]
    async with Store.open(store_url) as store:
        accounts = Accounts(store, ApiSettings(), SecretBox(tmp_path / "secret.key"), clock)
        app = create_app(ApiContext(settings, store, accounts, clock))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://meterd.test") as client:
            yield Api(client, accounts, clock, store, dict(api_users), tmp_path / "secret.key")


def _guard(route: APIRoute) -> Guard | None:
    pending = list(route.dependant.dependencies)
    guards = []
    while pending:
        dependency = pending.pop()
        if isinstance(dependency.call, Guard):
            guards.append(dependency.call)
        pending.extend(dependency.dependencies)
    assert len(guards) <= 1, f"{route.path} has {len(guards)} guards"
    return guards[0] if guards else None


def _routes(app: Any) -> list[tuple[str, str, Guard | None]]:
    routes = [
        (method, PREFIX + route.path, _guard(route))
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in sorted(route.methods)
    ]
    # Whatever the app serves is in that list: a route mounted some other way would escape the rules.
    published = {(m.upper(), path) for path, item in app.openapi()["paths"].items() for m in item}
    assert published == {(method, path) for method, path, _ in routes}
    return routes


async def test_every_route_has_one_rule_and_every_role_gets_exactly_what_the_table_says(api: Api) -> None:
    app = api.client._transport.app  # type: ignore[attr-defined]
    routes = _routes(app)
    assert len(routes) >= 28
    for method, path, guard in routes:
        # A new route without a rule fails here, not in production.
        assert (method, path) in PUBLIC or (guard is not None and guard.permission in PERMISSIONS), (method, path)
    tokens = {role: await api.token(role) for role in ROLES}
    checked = 0
    for method, path, guard in routes:
        if guard is None or path in {"/api/v1/auth/logout", "/api/v1/auth/sessions/{session_id}"}:
            continue  # ending a session would end the one the next rows use; each has its own test below
        url = re.sub(r"\{[^}]+\}", "1", path)
        for role in ROLES:
            response = await api.client.request(method, url, headers=tokens[role], json={})
            expected_denied = not allowed(role, guard.permission)
            assert (response.status_code == 403) is expected_denied, (role, method, path, response.text)
            assert response.status_code not in {401, 500}, (role, method, path, response.text)
            if expected_denied:
                assert response.json()["error"]["code"] == "forbidden"
            checked += 1
    assert checked >= 27 * len(ROLES)
    assert (await api.client.get("/api/v1/devices")).status_code == 401  # no token at all


async def test_a_second_factor_is_required_where_the_role_needs_it_and_checked_in_its_time_window(api: Api) -> None:
    no_code = await api.login("admin", code="")
    assert no_code.status_code == 401
    assert no_code.json()["error"]["code"] == "second_factor_required"
    assert (await api.login("admin", code=api.code("admin", steps=-1))).status_code == 200  # 30 s of clock drift
    assert (await api.login("admin", code=api.code("admin", steps=-3))).status_code == 401  # 90 s ago: no
    # Technicians and viewers log in with a password only (api.totp_required_for: admin, billing).
    assert (await api.login("viewer")).status_code == 200


async def test_recovery_codes_work_once_each(api: Api) -> None:
    code = api.second_factors["billing"].recovery_codes[3]
    assert (await api.login("billing", code=code)).status_code == 200
    again = await api.login("billing", code=code)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "login_failed")
    entries = await find_audit(api.store, target="user:billing")
    assert [e.detail for e in entries if e.action == "user.recovery_code_used"] == [{"left": 9}]


async def test_failed_logins_lock_the_account_with_a_clear_message_until_it_expires_or_is_unlocked(api: Api) -> None:
    for _ in range(5):
        wrong = await api.login("viewer", password="not the password at all")
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "login_failed")
    locked = await api.login("viewer")  # even the right password, while locked
    assert locked.status_code == 429
    assert "locked until 2026-11-30 09:15 UTC" in locked.json()["error"]["message"]
    assert "meterd users unlock viewer" in locked.json()["error"]["message"]
    api.clock.now += timedelta(minutes=16)
    assert (await api.login("viewer")).status_code == 200
    for _ in range(5):
        await api.login("viewer", password="not the password at all")
    await api.accounts.unlock("viewer", actor="admin")
    assert (await api.login("viewer")).status_code == 200
    # An unknown login fails just as a wrong password does: no hint which logins exist.
    unknown = await api.login("nobody-here")
    assert (unknown.status_code, unknown.json()["error"]) == (401, wrong.json()["error"])


async def test_sessions_expire_and_are_revoked_by_logout_password_change_and_disabling(api: Api) -> None:
    headers = await api.token("technician")
    assert (await api.client.get("/api/v1/auth/me", headers=headers)).json() == {
        "login": "technician",
        "role": "technician",
        "kind": "session",
    }
    api.clock.now += timedelta(hours=8, seconds=1)  # api.session_hours
    expired = await api.client.get("/api/v1/auth/me", headers=headers)
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "token_invalid")
    headers = await api.token("technician")
    assert (await api.client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await api.client.get("/api/v1/auth/me", headers=headers)).status_code == 401
    headers = await api.token("technician")
    await api.accounts.set_password("technician", "another long passphrase here", actor="admin")
    assert (await api.client.get("/api/v1/auth/me", headers=headers)).status_code == 401
    headers = await api.token("viewer")
    await api.accounts.set_disabled("viewer", True, actor="admin")
    assert (await api.client.get("/api/v1/auth/me", headers=headers)).status_code == 401
    assert (await api.login("viewer")).status_code == 401


async def test_api_tokens_are_shown_once_never_stronger_than_their_issuer_and_revocable(api: Api) -> None:
    technician = await api.token("technician")
    # A viewer reads contracts and invoices, which a technician may not: so a technician cannot issue one.
    too_strong = await api.client.post(
        "/api/v1/tokens", headers=technician, json={"name": "x", "role": "viewer", "days": 30}
    )
    assert (too_strong.status_code, too_strong.json()["error"]["code"]) == (422, "invalid")
    headers = await api.token("billing")
    issued = await api.client.post(
        "/api/v1/tokens", headers=headers, json={"name": "erp-export", "role": "viewer", "days": 30}
    )
    assert issued.status_code == 201
    machine = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert (await api.client.get("/api/v1/auth/me", headers=machine)).json()["role"] == "viewer"
    # The token is its role, not its user: it reads invoices but may not review what billing may.
    assert (await api.client.get("/api/v1/invoices", headers=machine)).status_code == 200
    assert (await api.client.post("/api/v1/anomalies/1/ack", headers=machine, json={"reason": "x"})).status_code == 403
    listed = (await api.client.get("/api/v1/tokens", headers=headers)).json()
    assert [(t["name"], t["role"]) for t in listed] == [("erp-export", "viewer")]
    assert "token" not in listed[0]  # shown once, at issue
    token_id = issued.json()["id"]
    assert (await api.client.delete(f"/api/v1/tokens/{token_id}", headers=technician)).status_code == 422  # not hers
    assert (await api.client.delete(f"/api/v1/tokens/{token_id}", headers=headers)).status_code == 204
    assert (await api.client.get("/api/v1/auth/me", headers=machine)).status_code == 401


async def test_changes_through_the_api_are_audited_with_who_and_from_where(api: Api) -> None:
    book = tomllib.loads(BOOK)
    headers = await api.token("billing")
    customer = book["customer"][0]
    created = await api.client.put("/api/v1/customers/ACME", headers=headers, json=customer)
    assert created.status_code == 200, created.text
    contract = book["contract"][0] | {
        "versions": [v | {"valid_from": str(v["valid_from"])} for v in book["contract"][0]["versions"]]
    }
    assert (await api.client.put("/api/v1/contracts/ACME-1", headers=headers, json=contract)).status_code == 200
    eve = {"login": "eve", "name": "Eve", "role": "billing"}
    admin = await api.token("admin")
    weak = await api.client.post("/api/v1/users", headers=admin, json=eve | {"password": "password1234"})
    assert (weak.status_code, weak.json()["error"]["field"]) == (422, "password")
    added = await api.client.post("/api/v1/users", headers=admin, json=eve | {"password": PASSWORD})
    assert added.status_code == 201
    assert len(added.json()["recovery_codes"]) == 10  # billing gets a second factor at once
    assert added.json()["totp_uri"].startswith("otpauth://totp/meterd:eve?secret=")
    changed = await api.client.patch("/api/v1/users/eve", headers=admin, json={"role": "viewer"})
    assert changed.json()["role"] == "viewer"
    audit = (await api.client.get("/api/v1/audit", headers=admin, params={"limit": 50})).json()["items"]
    made = [(e["actor"], e["action"], e["target"], e["source"]) for e in audit if e["action"] != "user.login"]
    assert made[:4] == [
        ("admin", "user.role", "user:eve", "api 127.0.0.1"),
        ("admin", "user.add", "user:eve", "api 127.0.0.1"),
        ("billing", "contract.save", "contract:ACME-1", "api 127.0.0.1"),
        ("billing", "customer.save", "customer:ACME", "api 127.0.0.1"),
    ]
    role_change = next(e for e in audit if e["action"] == "user.role")
    assert role_change["detail"] == {"before": {"role": "billing"}, "after": {"role": "viewer"}}
    # The setup above went through Accounts directly: the CLI's default source.
    assert {e.source for e in await find_audit(api.store, actor="setup")} == {"cli"}
    # A change records what changed: the fields that differ, before and after.
    renamed = customer | {"trade_name": "Acme Print", "payment_terms_days": 30}
    assert (await api.client.put("/api/v1/customers/ACME", headers=headers, json=renamed)).status_code == 200
    history = await api.client.get("/api/v1/audit", headers=admin, params={"target": "customer:ACME"})
    [saved, created_entry] = history.json()["items"]
    assert saved["detail"] == {
        "before": {"payment_terms_days": 14, "trade_name": None},
        "after": {"payment_terms_days": 30, "trade_name": "Acme Print"},
    }
    assert created_entry["detail"]["before"] is None
    assert created_entry["detail"]["after"]["legal_name"] == customer["legal_name"]
    noted = await api.client.post("/api/v1/customers/ACME/comments", headers=headers, json={"text": "Call before 10"})
    assert noted.status_code == 201
    timeline = (await api.client.get("/api/v1/customers/ACME/comments", headers=headers)).json()
    assert [(c["author"], c["text"]) for c in timeline] == [("billing", "Call before 10")]
    assert (await api.client.get("/api/v1/customers/NOPE/comments", headers=headers)).status_code == 404
    # A viewer may read the customer but not see the audit log.
    viewer = await api.token("viewer")
    assert (await api.client.get("/api/v1/customers/ACME", headers=viewer)).json()["legal_name"] == customer[
        "legal_name"
    ]
    assert (await api.client.get("/api/v1/audit", headers=viewer)).status_code == 403


async def test_errors_have_one_shape_naming_the_field(api: Api) -> None:
    headers = await api.token("billing")
    bad_period = await api.client.post("/api/v1/billing/preview", headers=headers, json={"period": "October"})
    assert bad_period.status_code == 422
    assert bad_period.json()["error"]["field"] == "period"
    missing = await api.client.get("/api/v1/invoices/99", headers=headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found")
    naive = await api.client.get("/api/v1/readings", headers=headers, params={"since": "2026-11-01T00:00:00"})
    assert (naive.status_code, naive.json()["error"]["field"]) == (422, "since")
    nowhere = await api.client.get("/api/v1/nothing-here", headers=headers)
    assert (nowhere.status_code, set(nowhere.json()["error"])) == (404, {"code", "message", "field"})


async def test_every_kind_of_change_through_the_api_leaves_its_audit_row(api: Api) -> None:
    """Each change a person can make through the API, and the audit entry it must leave: who, what, detail."""
    book = tomllib.loads(BOOK)
    readings = daily("KY1", date(2026, 9, 20), 50, mono=100, color=20)
    glitch = replace(
        readings[40],
        id="glitch",
        taken_at=readings[40].taken_at + timedelta(hours=1),
        meters=(MeterValue(Meter.MONO, 9_000_000), MeterValue(Meter.COLOR, 2_000)),
    )
    await Pipeline(api.store, Metrics()).emit([*readings, glitch])
    [jump, *_] = [
        a
        for a in await detect_new(
            AnomalyStore(api.store), DetectorSettings(), now=api.clock.now, poll_interval_s=86_400
        )
        if a.kind == "jump"
    ]
    billing, admin = await api.token("billing"), await api.token("admin")
    contract = book["contract"][0] | {
        "versions": [v | {"valid_from": str(v["valid_from"])} for v in book["contract"][0]["versions"]]
    }
    csv_cards = (await api.client.get("/api/v1/exchange/customers", headers=billing)).text  # empty, with its header
    steps: list[tuple[str, str, dict[str, Any] | None, dict[str, str], str, str]] = [
        ("PUT", "/api/v1/customers/ACME", book["customer"][0], billing, "customer.save", "customer:ACME"),
        ("PUT", "/api/v1/contracts/ACME-1", contract, billing, "contract.save", "contract:ACME-1"),
        (
            "POST",
            "/api/v1/assignments",
            {"device": "KY1", "customer": "ACME", "start": "2026-09-01"},
            billing,
            "device.assign",
            "device:KY1",
        ),
        (
            "POST",
            "/api/v1/customers/ACME/comments",
            {"text": "Call first"},
            billing,
            "customer.comment",
            "customer:ACME",
        ),
        (
            "POST",
            f"/api/v1/anomalies/{jump.id}/ack",
            {"reason": "looking"},
            billing,
            "anomaly.acknowledged",
            f"anomaly:{jump.id}",
        ),
        (
            "POST",
            f"/api/v1/anomalies/{jump.id}/resolve",
            {"action": "dismiss", "reason": "glitch"},
            billing,
            "anomaly.dismissed",
            f"anomaly:{jump.id}",
        ),
        ("POST", "/api/v1/billing/run", {"period": "2026-10"}, billing, "bill.run", "period:2026-10"),
        (
            "POST",
            "/api/v1/invoices/1/finalize",
            {"issue_date": "2026-11-01", "override_hold": "read on site"},
            billing,
            "invoice.finalize",
            "invoice:1",
        ),
        (
            "POST",
            "/api/v1/invoices/1/payments",
            {"amount": "50.00", "received_on": "2026-11-10"},
            billing,
            "payment.record",
            "invoice:1",
        ),
        (
            "POST",
            "/api/v1/invoices/1/instalments",
            {"parts": 2, "first": "2026-12-01"},
            billing,
            "invoice.instalments",
            "invoice:1",
        ),
        ("POST", "/api/v1/invoices/1/void", {"reason": "wrong contract"}, billing, "invoice.void", "invoice:1"),
        (
            "POST",
            "/api/v1/users",
            {"login": "dora", "name": "Dora", "role": "viewer", "password": PASSWORD},
            admin,
            "user.add",
            "user:dora",
        ),
        ("PATCH", "/api/v1/users/dora", {"role": "technician"}, admin, "user.role", "user:dora"),
        ("PATCH", "/api/v1/users/dora", {"disabled": True}, admin, "user.disable", "user:dora"),
        ("POST", "/api/v1/users/dora/unlock", None, admin, "user.unlock", "user:dora"),
        ("POST", "/api/v1/tokens", {"name": "erp", "role": "viewer", "days": 7}, admin, "token.issue", "user:admin"),
        (
            "POST",
            "/api/v1/exchange/import",
            {"customers": csv_cards, "contacts": CONTACTS_HEADER, "devices": NEW_DEVICE},
            billing,
            "device.save",
            "device:KY2",
        ),
    ]
    for method, url, body, headers, action, target in steps:
        response = await api.client.request(method, url, headers=headers, json=body)
        assert response.status_code < 300, (url, response.text)
        [entry] = await find_audit(api.store, target=target, limit=1)
        who = (await api.client.get("/api/v1/auth/me", headers=headers)).json()["login"]
        assert (entry.actor, entry.action, entry.source) == (who, action, "api 127.0.0.1"), url
    # The October invoice was voided above: a new draft takes its place, and the report reads it.
    assert (
        await api.client.post("/api/v1/billing/run", headers=billing, json={"period": "2026-10"})
    ).status_code == 200
    report = await api.client.get(
        "/api/v1/reports/usage", headers=billing, params={"customer": "ACME", "period": "2026-10", "format": "csv"}
    )
    assert report.headers["content-type"].startswith("text/csv"), report.text
    assert "ACME,KY1,mono,2026-10-01" in report.text
    page = await api.client.get(
        "/api/v1/reports/usage", headers=billing, params={"customer": "ACME", "period": "2026-10"}
    )
    assert "data:image/png;base64," in page.text
    assert "KY2,Ricoh" in (await api.client.get("/api/v1/exchange/devices", headers=billing)).text
    details = {e.action: e.detail for e in await find_audit(api.store, limit=200)}
    assert details["user.role"] == {"before": {"role": "viewer"}, "after": {"role": "technician"}}
    assert details["payment.record"]["amount"] == "50.00"
    assert details["anomaly.dismissed"]["reason"] == "glitch"
    assert details["device.save"] == {
        "before": None,
        "after": {"vendor": "Ricoh", "model": None, "address": None, "site": "acme-hq"},
    }
    assert details["customer.comment"] == {"text": "Call first"}


async def test_the_api_warns_about_meters_a_device_never_reported_and_finalising_needs_an_override(api: Api) -> None:
    # Issue 17 items 2 and 8 over HTTP: a bizhub C250i (split counters) under a contract billing mono and colour.
    book = tomllib.loads(BOOK)
    await Pipeline(api.store, Metrics()).emit(konica_daily("KM1", date(2026, 9, 20), 50))
    billing = await api.token("billing")
    contract = book["contract"][0] | {
        "versions": [v | {"valid_from": str(v["valid_from"])} for v in book["contract"][0]["versions"]]
    }
    assert (await api.client.put("/api/v1/customers/ACME", headers=billing, json=book["customer"][0])).is_success
    assert (await api.client.put("/api/v1/contracts/ACME-1", headers=billing, json=contract)).is_success
    assigned = await api.client.post(
        "/api/v1/assignments", headers=billing, json={"device": "KM1", "customer": "ACME", "start": "2026-09-01"}
    )
    assert assigned.status_code == 201
    warnings = assigned.json()["warnings"]
    assert [w.split(" bills meter ")[1].split(",")[0] for w in warnings] == ["color", "mono"]
    assert all("it reports copy_color, copy_mono, print_color, print_mono, total" in w for w in warnings)
    run = await api.client.post("/api/v1/billing/run", headers=billing, json={"period": "2026-10"})
    invoice_id = run.json()["drafts"][0]["invoice_id"]
    refused = await api.client.post(f"/api/v1/invoices/{invoice_id}/finalize", headers=billing, json={})
    assert refused.status_code >= 400
    assert "2 blocking item(s): meter not reported" in refused.text
    done = await api.client.post(
        f"/api/v1/invoices/{invoice_id}/finalize",
        headers=billing,
        json={"override": "counters checked on the device's display"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["hold_override"] == "counters checked on the device's display"
    [entry] = await find_audit(api.store, target=f"invoice:{invoice_id}", limit=1)
    assert entry.detail["override"] == "counters checked on the device's display"


async def test_a_one_time_code_is_accepted_once_not_even_again_within_its_step(api: Api) -> None:
    code = api.code("admin")
    assert (await api.login("admin", code=code)).status_code == 200
    with capture_logs() as logs:
        again = await api.login("admin", code=code)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "login_failed")
    assert [(e["event"], e["login"]) for e in logs if e["log_level"] == "warning"] == [("totp_replay_refused", "admin")]
    api.clock.now += timedelta(seconds=30)  # its step has passed; it is still inside the drift window
    assert (await api.login("admin", code=code)).status_code == 401
    assert (await api.login("admin", code=api.code("admin", steps=-2))).status_code == 401  # older still: refused
    assert (await api.login("admin", code=api.code("admin"))).status_code == 200  # the next step's code works


async def test_parallel_wrong_guesses_lock_the_account_after_five(api: Api) -> None:
    guesses = await asyncio.gather(*(api.login("viewer", password=f"wrong guess {n}") for n in range(20)))
    answers = Counter(answer.json()["error"]["code"] for answer in guesses)
    assert answers == {"login_failed": 5, "locked": 15}  # api.max_failed_logins
    assert (await api.accounts.user("viewer")).locked_until is not None
    assert (await api.login("viewer")).status_code == 429


async def test_parallel_failures_are_each_counted_in_the_store(api: Api) -> None:
    """Judged at once (more turns than the default), the failures still all count: one UPDATE each."""
    accounts = api.accounts_with(ApiSettings(login_attempts_at_once=10, max_failed_logins=100))
    results = await asyncio.gather(
        *(accounts.login("viewer", f"wrong guess {n}") for n in range(10)), return_exceptions=True
    )
    assert {type(result) for result in results} == {AuthenticationError}
    assert (await api.accounts.user("viewer")).failed_logins == 10


async def test_guessing_across_accounts_is_limited_per_address_and_overall(api: Api) -> None:
    accounts = api.accounts_with(ApiSettings(max_failed_logins_per_address=3, max_failed_logins_total=5))
    for login in ("viewer", "technician", "nobody-here"):  # one guess per account: no account locks
        with pytest.raises(AuthenticationError, match="wrong login"):
            await accounts.login(login, "spring2026!", address="198.51.100.7")
    with pytest.raises(AuthenticationError, match="from your address: try again after 2026-11-30 09:15:00"):
        await accounts.login("viewer", PASSWORD, address="198.51.100.7")  # even the right password, from there
    await accounts.login("viewer", PASSWORD, address="203.0.113.9")  # elsewhere: fine
    for login in ("technician", "nobody-here"):
        with pytest.raises(AuthenticationError, match="wrong login"):
            await accounts.login(login, "spring2026!", address="203.0.113.9")
    # Everyone together is at the limit now: logins are slowed down, not refused (the right password gets in).
    await accounts.login("viewer", PASSWORD, address="192.0.2.1")
    with pytest.raises(AuthenticationError, match="wrong login"):
        await accounts.login("technician", "spring2026!", address="192.0.2.1")  # and wrong ones are still judged
    api.clock.now += timedelta(minutes=15)
    await accounts.login("viewer", PASSWORD, address="198.51.100.7")


async def test_during_a_spray_on_all_accounts_a_correct_login_gets_in_and_the_spray_is_slowed(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The overall limit refused every login while full: a spray locked every user out, the right password too.

    Now the spray is judged one at a time, at most ``per_second``, addresses with fewer failures first.
    """
    per_second = 10.0
    accounts = api.accounts_with(
        ApiSettings(
            max_failed_logins_per_address=5, max_failed_logins_total=5, logins_per_second_under_spray=per_second
        )
    )
    spray = [(f"user{n}", f"198.51.100.{n % 10}") for n in range(20)]  # one guess per (unknown) account
    for login, address in spray[:10]:  # the limit is reached; each spraying address has failed once
        with pytest.raises(AuthenticationError, match="wrong login"):
            await accounts.login(login, "spring2026!", address=address)
    judging = 0
    most_at_once = 0

    def counted_verify(hashed: str, secret: str) -> bool:
        nonlocal judging, most_at_once
        judging += 1  # runs in the hashing pool: += on an int under the GIL is enough for a maximum
        most_at_once = max(most_at_once, judging)
        try:
            return verify_secret(hashed, secret)
        finally:
            judging -= 1

    monkeypatch.setattr("daemon.services.accounts.verify_secret", counted_verify)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sprayed = [
        asyncio.create_task(accounts.login(login, "summer2026!", address=address)) for login, address in spray[10:]
    ]
    await asyncio.sleep(0)  # the spray queues first
    issued, who = await accounts.login("viewer", PASSWORD, address="192.0.2.1")
    spray_left = sum(not task.done() for task in sprayed)
    answers = await asyncio.gather(*sprayed, return_exceptions=True)
    finished = loop.time()
    assert who.login == "viewer"
    assert issued.token
    assert spray_left > 0  # a clean address goes ahead of the spray's queue
    assert {a.code for a in answers if isinstance(a, AuthenticationError)} == {"login_failed"}  # judged, not refused
    assert most_at_once == 1  # one judgement at a time ...
    assert finished - started >= (len(sprayed) - 1) / per_second  # ... and no more than per_second of them


async def test_a_locked_account_and_an_unknown_login_answer_alike(api: Api) -> None:
    for login in ("viewer", "nobody-here"):
        for _ in range(5):
            await api.login(login, password="not the password at all")
    real, unknown = await api.login("viewer"), await api.login("nobody-here")
    assert real.status_code == unknown.status_code == 429
    assert real.json()["error"]["message"].replace("viewer", "LOGIN") == unknown.json()["error"]["message"].replace(
        "nobody-here", "LOGIN"
    )


async def test_password_hashing_does_not_stall_the_event_loop(api: Api) -> None:
    started = time.perf_counter()
    verify_secret(hash_secret("one hash, to see how long one takes here"), "x")
    one_hash = (time.perf_counter() - started) / 2
    gaps: list[float] = []

    async def heartbeat() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            gaps.append(time.perf_counter() - before)

    logins = 12
    beating = asyncio.create_task(heartbeat())
    await asyncio.gather(*(api.login(f"nobody-{n}", password="a wrong password") for n in range(logins)))
    beating.cancel()
    # Hashed on the loop, twelve logins would hold it for (at least) twelve hashes in all; in the pool it keeps
    # ticking. What is left is the shared machine's scheduling noise, seen up to about half of that.
    held = sum(max(0.0, gap - 0.005) for gap in gaps)
    assert held < logins * one_hash * 0.75, (held, one_hash)


async def test_a_token_never_outlives_the_token_that_issued_it(api: Api) -> None:
    person = await api.token("billing")
    day = await api.client.post("/api/v1/tokens", headers=person, json={"name": "one-day", "role": "viewer", "days": 1})
    machine = {"Authorization": f"Bearer {day.json()['token']}"}
    renewed = await api.client.post(
        "/api/v1/tokens", headers=machine, json={"name": "renewed", "role": "viewer", "days": 365}
    )
    assert (renewed.status_code, renewed.json()["error"]["code"]) == (422, "invalid")
    assert "cannot outlive the token that issues it (yours ends 2026-12-01 09:00 UTC)" in renewed.text
    # A person's 8-hour session still gives a machine its 30 days: that is what API tokens are for.
    longer = await api.client.post("/api/v1/tokens", headers=person, json={"name": "erp", "role": "viewer", "days": 30})
    assert longer.status_code == 201


async def _october_billed(api: Api) -> dict[str, str]:
    """ACME with KY1 and its contract, October billed as a draft (invoice 1); billing's session."""
    book = tomllib.loads(BOOK)
    await Pipeline(api.store, Metrics()).emit(daily("KY1", date(2026, 9, 20), 50, mono=100, color=20))
    billing = await api.token("billing")
    contract = book["contract"][0] | {
        "versions": [v | {"valid_from": str(v["valid_from"])} for v in book["contract"][0]["versions"]]
    }
    for method, url, body in [
        ("PUT", "/api/v1/customers/ACME", book["customer"][0]),
        ("PUT", "/api/v1/contracts/ACME-1", contract),
        ("POST", "/api/v1/assignments", {"device": "KY1", "customer": "ACME", "start": "2026-09-01"}),
        ("POST", "/api/v1/billing/run", {"period": "2026-10"}),
    ]:
        assert (await api.client.request(method, url, headers=billing, json=body)).status_code < 300, url
    return billing


async def test_issue_dates_disabling_and_queued_reminders_are_checked_and_audited(api: Api) -> None:
    billing, admin = await _october_billed(api), await api.token("admin")

    async def finalize(invoice: int, issued: str) -> httpx.Response:
        return await api.client.post(
            f"/api/v1/invoices/{invoice}/finalize",
            headers=billing,
            json={"issue_date": issued, "override_hold": "read on site"},
        )

    epoch = await finalize(1, "1970-01-01")
    assert (epoch.status_code, epoch.json()["error"]["code"]) == (422, "refused")
    assert "more than 31 days from today (2026-11-30)" in epoch.text
    assert (await finalize(1, "2026-11-01")).status_code == 200
    # Voided and billed again: the new draft may not take the next number with an earlier date.
    assert (await api.client.post("/api/v1/invoices/1/void", headers=billing, json={"reason": "x"})).status_code == 200
    assert (
        await api.client.post("/api/v1/billing/run", headers=billing, json={"period": "2026-10"})
    ).status_code == 200
    backdated = await finalize(3, "2026-10-31")
    assert (backdated.status_code, backdated.json()["error"]["code"]) == (422, "refused")
    assert "before 2026-11-01, the latest issue date in series INV" in backdated.text
    assert (await finalize(3, "2026-11-02")).json()["number"] == "INV-000002"  # due 11-16: 14 days late today

    # 14 days late today, 65 on 20 Jan: the aging buckets group the receivables' own overdue figure.
    [standing] = (await api.client.get("/api/v1/receivables", headers=billing)).json()["items"]
    for as_of, bucket in [("", 0), ("?as_of=2027-01-20", 2)]:
        aged = (await api.client.get(f"/api/v1/receivables/aging{as_of}", headers=billing)).json()
        assert [b["invoices"] for b in aged] == [int(n == bucket) for n in range(4)]
        assert aged[bucket]["overdue"] == {"EUR": standing["overdue"]}
    assert [b["label"] for b in aged] == ["0\N{EN DASH}30", "31\N{EN DASH}60", "61\N{EN DASH}90", "90+"]
    assert (await api.client.post("/api/v1/reminders/queue", headers=billing)).json()
    [queued] = await find_audit(api.store, target="invoice:3", limit=1)
    assert (queued.action, queued.actor) == ("reminder.queue", "billing")  # who asked, not "system"
    assert (await api.client.patch("/api/v1/users/viewer", headers=admin, json={"disabled": True})).status_code == 200
    [disabled] = await find_audit(api.store, target="user:viewer", limit=1)
    assert (disabled.action, disabled.detail) == (
        "user.disable",
        {"before": {"disabled": False}, "after": {"disabled": True}},
    )


async def test_people_list_and_end_their_own_sessions_and_responses_carry_security_headers(api: Api) -> None:
    laptop, phone = await api.token("technician"), await api.token("technician")
    viewer = await api.token("viewer")
    listed = (await api.client.get("/api/v1/auth/sessions", headers=phone)).json()
    assert [(s["current"], s["expires_at"]) for s in listed] == [
        (True, "2026-11-30T17:00:00Z"),
        (False, "2026-11-30T17:00:00Z"),
    ]
    laptop_id = listed[1]["id"]
    someone_elses = await api.client.delete(f"/api/v1/auth/sessions/{laptop_id}", headers=viewer)
    assert (someone_elses.status_code, someone_elses.json()["error"]["code"]) == (422, "invalid")
    assert (await api.client.delete(f"/api/v1/auth/sessions/{laptop_id}", headers=phone)).status_code == 204
    assert (await api.client.get("/api/v1/auth/me", headers=laptop)).status_code == 401
    assert laptop_id not in [s["id"] for s in (await api.client.get("/api/v1/auth/sessions", headers=phone)).json()]
    [entry] = await find_audit(api.store, target=f"session:{laptop_id}", limit=1)
    assert (entry.actor, entry.action) == ("technician", "session.revoke")

    for response in (
        await api.client.get("/api/v1/devices", headers=phone),
        await api.login("nobody-here"),
        await api.client.get("/api/v1/readings", headers=phone, params={"format": "csv"}),
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["cache-control"] == "no-store"
    csv_file = await api.client.get("/api/v1/readings", headers=phone, params={"format": "csv"})
    assert csv_file.headers["content-disposition"] == 'attachment; filename="readings.csv"'
    docs = await api.client.get("/api/v1/docs")
    assert "script-src 'self'" in docs.headers["content-security-policy"]  # Swagger UI from the shipped files
    assert "cdn" not in docs.headers["content-security-policy"]
    assert "cache-control" not in docs.headers
    login_page = await api.client.get("/login")  # the console keeps its own policy: its forms may be sent
    assert "form-action 'self'" in login_page.headers["content-security-policy"]
    assert login_page.headers["x-content-type-options"] == "nosniff"


async def test_the_usage_report_is_kept_until_its_data_changes_and_limited_per_user(api: Api) -> None:
    billing = await _october_billed(api)

    async def report(period: str = "2026-10") -> httpx.Response:
        return await api.client.get(
            "/api/v1/reports/usage", headers=billing, params={"customer": "ACME", "period": period}
        )

    first = await report()
    assert first.status_code == 200
    for month in range(1, 10):  # nine more made anew (each refused: no invoice) use up api.expensive_per_minute
        assert (await report(f"2026-{month:02d}")).json()["error"]["code"] == "refused"
    limited = await report("2026-08")
    assert (limited.status_code, limited.json()["error"]["code"]) == (429, "rate_limited")
    assert "try again after 09:01:00 UTC" in limited.text
    again = await report()  # kept: served without making it again, so not limited
    assert (again.status_code, again.text) == (200, first.text)
    noted = await api.client.post("/api/v1/customers/ACME/comments", headers=billing, json={"text": "called"})
    assert noted.status_code == 201
    assert (await report()).status_code == 429  # something changed: it would be made anew, and that is limited
    api.clock.now += timedelta(minutes=1)
    assert (await report()).status_code == 200


async def test_invoice_pdfs_are_limited_per_user_like_the_usage_report(api: Api) -> None:
    billing = await _october_billed(api)
    pdfs = [await api.client.get("/api/v1/invoices/1/document", headers=billing) for _ in range(11)]
    assert [p.status_code for p in pdfs] == [200] * 10 + [429]  # api.expensive_per_minute
    ubl = await api.client.get("/api/v1/invoices/1/document", headers=billing, params={"format": "ubl"})
    assert ubl.status_code == 200  # XML is cheap: not limited
    api.clock.now += timedelta(minutes=1)
    assert (await api.client.get("/api/v1/invoices/1/document", headers=billing)).status_code == 200


async def test_service_faults_and_alerts_are_listed_for_dispatch_as_json_and_csv(api: Api) -> None:
    from tests.integration.test_device_faults import _seed_a_jam  # noqa: PLC0415 - the story's own seed

    await _seed_a_jam(api.store)
    technician = await api.token("technician")
    faults = (await api.client.get("/api/v1/service/faults", headers=technician)).json()
    assert sorted((f["device"], f["code"]) for f in faults["items"]) == [
        ("OTHER1", "lowPaper"),
        ("OTHER1", "warning"),
        ("VNCRC48198", "down"),
        ("VNCRC48198", "jam"),
        ("VNCRC48198", "jammed"),
    ]
    alerts = (await api.client.get("/api/v1/service/alerts", headers=technician)).json()["items"]
    assert [(a["device"], a["code"], a["site"]) for a in alerts] == [("VNCRC48198", "down", "acme-hq")]
    one = await api.client.get(
        "/api/v1/service/faults", params={"device": "OTHER1", "format": "csv"}, headers=technician
    )
    assert one.headers["content-type"].startswith("text/csv")
    lines = one.text.splitlines()
    assert lines[0].startswith(
        "id,device,customer,customer_name,site,address,model,kind,fault,severity,detail,started_at"
    )
    assert sorted(line.split(",")[8] for line in lines[1:]) == ["lowPaper", "warning"]
    assert (await api.client.get("/api/v1/service/alerts", headers=await api.token("viewer"))).status_code == 403
