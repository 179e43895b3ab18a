"""The web console in-process on both stores: sessions (idle timeout, Secure over TLS), CSRF on the login form,
no redirect off-site, the language a browser asks for, and catalogues a translator left complete."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
from babel.messages.pofile import read_po

from daemon.api.app import create_app
from daemon.api.security import ApiContext
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts
from daemon.settings import ApiSettings, Settings
from daemon.storage.audit import find_audit
from daemon.storage.repository import Store
from daemon.web.i18n import LANGUAGES, negotiate
from tests.integration.test_api import PASSWORD, Clock

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


@pytest.fixture
async def web(store_url: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Clock, Store]]:
    clock = Clock()
    settings = Settings(storage={"url": store_url}, state_dir=tmp_path)  # type: ignore[arg-type]
    async with Store.open(store_url) as store:
        accounts = Accounts(store, ApiSettings(), SecretBox(tmp_path / "secret.key"), clock)
        await accounts.add_user("tech", "The technician", "technician", PASSWORD, actor="setup")
        app = create_app(ApiContext(settings, store, accounts, clock))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://meterd.test") as client:
            yield client, clock, store


async def _log_in(client: httpx.AsyncClient) -> httpx.Response:
    page = await client.get("/login")
    [token] = CSRF.findall(page.text)
    return await client.post("/login", data={"csrf": token, "login": "tech", "password": PASSWORD, "next": "/"})


async def test_a_session_ends_after_the_idle_time_and_its_token_is_revoked(
    web: tuple[httpx.AsyncClient, Clock, Store],
) -> None:
    client, clock, store = web
    logged_in = await _log_in(client)
    assert logged_in.status_code == 303
    assert "secure" in logged_in.headers["set-cookie"].lower()  # served over TLS: the cookie says Secure
    assert "httponly" in logged_in.headers["set-cookie"].lower()
    assert (await client.get("/")).status_code == 200
    clock.now += timedelta(minutes=29)
    assert (await client.get("/")).status_code == 200  # used 29 minutes later: still on, and the clock restarts
    clock.now += timedelta(minutes=31)
    expired = await client.get("/")
    assert expired.status_code == 303
    assert "30+minutes+without+use" in expired.headers["location"]
    revoked = [e for e in await find_audit(store, actor="tech") if e.action == "session.revoke"]
    assert revoked
    assert revoked[0].source.startswith("web ")


async def test_the_login_form_needs_its_token_and_never_sends_anyone_off_site(
    web: tuple[httpx.AsyncClient, Clock, Store],
) -> None:
    client, _, _ = web
    await client.get("/login")
    forged = await client.post("/login", data={"login": "tech", "password": PASSWORD})
    assert forged.status_code == 403
    page = await client.get("/login", params={"next": "//evil.example/x"})
    [token] = CSRF.findall(page.text)
    landed = await client.post(
        "/login", data={"csrf": token, "login": "tech", "password": PASSWORD, "next": "//evil.example/x"}
    )
    assert landed.headers["location"] == "/x"  # the path only: the other host is dropped


async def test_the_page_speaks_the_browsers_language(web: tuple[httpx.AsyncClient, Clock, Store]) -> None:
    client, _, _ = web
    await _log_in(client)
    assert "<h1>Heute</h1>" in (await client.get("/", headers={"Accept-Language": "de-CH,de;q=0.9"})).text
    assert "<h1>今日</h1>" in (await client.get("/", headers={"Accept-Language": "zh-CN"})).text
    assert '<html lang="tr">' in (await client.get("/", headers={"Accept-Language": "tr-TR,en;q=0.5"})).text


async def test_a_hidden_control_is_refused_and_a_form_without_its_token_too(
    web: tuple[httpx.AsyncClient, Clock, Store],
) -> None:
    client, _, store = web
    await _log_in(client)
    today = await client.get("/")
    assert "/billing" not in today.text  # a technician has no invoices.read: no link to the billing run
    token = CSRF.findall(today.text)[0]  # the header's forms (language, log out) carry the session's token
    forged = await client.post("/billing/run", data={"csrf": token, "period": "2026-10"})
    assert forged.status_code == 403
    assert "a technician may not do this (invoices.write)" in forged.text
    tokenless = await client.post("/anomalies/1/resolve", data={"action": "dismiss", "reason": "x"})
    assert tokenless.status_code == 403
    assert "security token" in tokenless.text
    assert not [e for e in await find_audit(store) if e.action.startswith(("invoice", "anomaly"))]


def test_language_negotiation() -> None:
    assert negotiate("fr-CA,fr;q=0.9,en;q=0.8") == "fr"
    assert negotiate("zh-TW,zh;q=0.9") == "zh_Hans"  # zh-TW is skipped, plain zh is Simplified
    assert negotiate("zh-Hant-TW") == "en"
    assert negotiate("ja,de;q=0.1") == "de"
    assert negotiate("de;q=0,fr;q=0.5") == "fr"
    assert negotiate("de", chosen="tr") == "tr"  # the user's own choice wins
    assert negotiate(None) == "en"


def test_every_language_translates_every_message_and_keeps_its_placeholders() -> None:
    locale = files("daemon.web") / "locale"
    with (locale / "messages.pot").open("rb") as pot:
        wanted = {m.id for m in read_po(pot) if m.id}
    assert len(wanted) > 90
    for language in LANGUAGES:
        with (locale / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=language)
        messages = {m.id: m.string for m in catalog if m.id}
        assert set(messages) == wanted, language
        for msgid, text in messages.items():
            # A plural message has one text per plural form of the language (Chinese one, French three).
            forms, source = (text, msgid[0]) if isinstance(text, tuple) else ((text,), msgid)
            assert len(forms) == catalog.num_plurals or not isinstance(text, tuple), (language, msgid)
            for form in forms:
                assert form, (language, msgid)
                assert re.findall(r"%\(\w+\)s", form) == re.findall(r"%\(\w+\)s", source), (language, msgid)


async def test_the_api_keeps_its_own_errors_beside_the_console(web: tuple[httpx.AsyncClient, Clock, Store]) -> None:
    client, _, _ = web
    unknown = await client.get("/api/v1/nothing-here")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    wrong_method = await client.delete("/api/v1/devices")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "method_not_allowed")
    assert (await client.get("/nothing-here")).status_code == 404
