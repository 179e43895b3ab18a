"""A customer is told when their billing data changes: by webhook (retried after a failure, given up after the
set attempts) and by e-mail through a real SMTP server; new cards and changes to nothing billing uses stay quiet."""

from __future__ import annotations

import json
import threading
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from billing.customers import parse_customer
from daemon.services.mail.outbox import deliver, mails
from daemon.services.notify import notices, notify_customers
from daemon.settings import Settings
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.test_billing import BOOK

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Hook:
    """A webhook receiver answering with the given statuses in turn (the last one from then on)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status = hook.statuses.pop(0) if len(hook.statuses) > 1 else hook.statuses[0]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notices"


@pytest.fixture
def hook(request: pytest.FixtureRequest) -> Iterator[Hook]:
    receiver = Hook(list(getattr(request, "param", [200])))  # a copy: each store gets the whole sequence
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def _change_terms(store: Store) -> None:
    data = tomllib.loads(BOOK)["customer"][0]
    billing = BillingStore(store)
    await billing.save_customers([parse_customer(data)], actor="carla", now=NOW)  # new: nobody to tell yet
    await billing.save_customers([parse_customer(data | {"notes": "likes coffee"})], actor="carla", now=NOW)
    await billing.save_customers(
        [parse_customer(data | {"notes": "likes coffee", "payment_terms_days": 30})], actor="carla", now=NOW
    )


@pytest.mark.parametrize("hook", [[500, 200]], indirect=True)
async def test_a_billing_change_is_notified_by_webhook_and_retried_after_a_failure(store_url: str, hook: Hook) -> None:
    settings = Settings.model_validate(
        {
            "notify": {"customer_changes": True, "webhook_url": hook.url},
            "billing": {"seller": {"name": "Print Partner GmbH"}},
        }
    )
    async with Store.open(store_url) as store:
        await _change_terms(store)
        assert await notify_customers(store, settings, now=NOW) == (1, 0)  # queued; the hook answered 500
        [waiting] = await notices(store, status="queued")
        assert (waiting.attempts, waiting.last_error) == (1, f"{hook.url} answered HTTP 500")
        assert await notify_customers(store, settings, now=NOW + timedelta(minutes=5)) == (0, 0)  # not due yet
        assert await notify_customers(store, settings, now=NOW + timedelta(minutes=11)) == (0, 1)  # 300 s x 2^1
        assert await notify_customers(store, settings, now=NOW + timedelta(hours=1)) == (0, 0)  # once
    assert len(hook.received) == 2
    sent = hook.received[-1]
    assert (sent["customer"], sent["to"]) == ("ACME", "ap@acme.example")
    assert "payment_terms_days: 14 -> 30" in sent["body"]
    assert "notes" not in sent["body"]  # a note is nobody's bookkeeping


@pytest.mark.parametrize("hook", [[503]], indirect=True)
async def test_a_notice_that_cannot_be_delivered_is_given_up_after_its_attempts(store_url: str, hook: Hook) -> None:
    settings = Settings.model_validate({"notify": {"customer_changes": True, "webhook_url": hook.url, "attempts": 2}})
    async with Store.open(store_url) as store:
        await _change_terms(store)
        await notify_customers(store, settings, now=NOW)
        await notify_customers(store, settings, now=NOW + timedelta(hours=1))
        [failed] = await notices(store, status="failed")
    assert failed.attempts == 2
    assert len(hook.received) == 2


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's names
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


async def test_a_billing_change_is_notified_by_email(store_url: str) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = Settings.model_validate(
            {
                "notify": {"customer_changes": True},
                "mail": {"host": "127.0.0.1", "port": port, "security": "none"},
                "billing": {"seller": {"name": "Print Partner GmbH", "email": "billing@printpartner.example"}},
            }
        )
        async with Store.open(store_url) as store:
            await _change_terms(store)
            # Queued in the mail outbox (not sent by the notify job); the mail job sends it, once.
            assert await notify_customers(store, settings, now=NOW) == (1, 0)
            [queued] = await mails(store, status="queued")
            assert queued.key.startswith("notice:")
            assert await deliver(store, settings, now=NOW) == 1
            assert await notify_customers(store, settings, now=NOW + timedelta(hours=1)) == (0, 0)
            assert await deliver(store, settings, now=NOW + timedelta(hours=1)) == 0
    finally:
        controller.stop()
    [mail] = inbox.messages
    assert (mail["To"], mail["From"]) == ("Petra Kaufmann <ap@acme.example>", "billing@printpartner.example")
    assert mail["Subject"] == "Print Partner GmbH: your details were changed"
    text = mail.get_payload()[0].get_payload(decode=True).decode()
    assert "payment_terms_days: 14 -> 30" in text


def test_notices_need_a_way_to_be_sent() -> None:
    with pytest.raises(ValueError, match=r"customer_changes: needs notify.webhook_url or a \[mail\] host"):
        Settings.model_validate({"notify": {"customer_changes": True}})
