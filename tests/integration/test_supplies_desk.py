"""The supplies desk hears of new replenishment alerts: one mail (aiosmtpd) and one webhook POST (a local HTTP server)
per run that raises alerts, never the same alert twice, also after a restart; nothing when not configured."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from daemon.services.mail.outbox import deliver, mails
from daemon.services.supplies import refresh_supply_alerts
from daemon.settings import Settings
from daemon.storage.repository import Store
from tests.factories import T0
from tests.integration.test_mail import Relay, relay  # noqa: F401 - the loopback SMTP fixture
from tests.integration.test_supplies import _month, _store

NOW = T0 + timedelta(days=36, hours=7)  # the cartridge has about 4 days left: due


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/supplies", received
    server.shutdown()
    server.server_close()


async def _runs(store_url: str, settings: Settings) -> None:
    """The supplies job three times over two daemon lives: the alert is raised at the first."""
    async with Store.open(store_url) as store:
        await _store(store, _month(0, 37))
        await refresh_supply_alerts(store, settings, NOW)
        await refresh_supply_alerts(store, settings, NOW + timedelta(hours=1))
    async with Store.open(store_url) as store:  # a restart
        await refresh_supply_alerts(store, settings, NOW + timedelta(hours=2))


async def test_the_desk_gets_one_mail_per_alert_run_and_never_the_same_alert_again(
    store_url: str,
    relay: tuple[Relay, int],  # noqa: F811 - the fixture
) -> None:
    server, port = relay
    settings = Settings.model_validate(
        {
            "mail": {"host": "127.0.0.1", "port": port, "security": "none", "from_address": "meterd@dealer.example"},
            "supplies": {"desk_mail_to": ["toner@dealer.example"]},
        }
    )
    await _runs(store_url, settings)
    async with Store.open(store_url) as store:
        assert len(await mails(store)) == 1
        await deliver(store, settings, now=NOW + timedelta(hours=3))
    [mail] = server.received
    assert mail["To"] == "toner@dealer.example"
    assert mail["Subject"] == "meterd: 1 cartridge(s) to ship"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    [line] = [x for x in text.splitlines() if x.startswith("VNCRC48198")]
    device, _customer, site, address, cartridge, part, empty_on, _ = line.split(" | ")
    assert (device, site, address, cartridge, part) == (
        "VNCRC48198",
        "acme-hq",
        "10.0.4.21",
        "Black Cartridge HP CF217A",
        "CF217A",
    )
    assert empty_on.startswith("2026-12-1")  # the second cartridge runs out on day 40 (10 December)


async def test_the_desks_webhook_gets_one_post_per_alert_run(
    store_url: str, hook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = hook
    await _runs(store_url, Settings.model_validate({"supplies": {"desk_webhook_url": url}}))
    [post] = received
    assert post["event"] == "supplies_due"
    [cartridge] = post["cartridges"]
    assert (cartridge["device"], cartridge["site"], cartridge["part_number"]) == ("VNCRC48198", "acme-hq", "CF217A")
    assert cartridge["empty_on"].startswith("2026-12-1")


async def test_the_desk_hears_nothing_unless_configured(store_url: str, hook: tuple[str, list[dict[str, Any]]]) -> None:
    _, received = hook
    await _runs(store_url, Settings())
    async with Store.open(store_url) as store:
        assert await mails(store) == []
    assert received == []
