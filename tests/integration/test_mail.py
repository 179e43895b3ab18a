"""Outbound mail through a real SMTP server on loopback (aiosmtpd): a finalised invoice reaches the billing contact
in their language with its PDF and UBL XML; a relay that answers 4xx then 2xx gets one retry and one mail; a
reminder goes out by itself and is marked sent; dry-run mode only writes .eml files."""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from peppol import check_rules, validate_xsd
from pypdf import PdfReader

from daemon.runtime.jobs import office_jobs
from daemon.services.mail.outbox import _claim, deliver, mails, stats
from daemon.services.metrics import Metrics
from daemon.settings import Settings, load
from daemon.storage.receivables import ReceivablesStore
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.test_billing import BOOK, _ready, cli, daily, write_billing_config

pytestmark = pytest.mark.usefixtures("wide_issue_date_window")


class Relay:
    """An SMTP server answering DATA with the given replies in turn (the last one from then on)."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.received: list[EmailMessage] = []
        self.tries = 0

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's names
        self.tries += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer.startswith("250"):
            self.received.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return answer


@pytest.fixture
def relay(request: pytest.FixtureRequest) -> Iterator[tuple[Relay, int]]:
    handler = Relay(list(getattr(request, "param", ["250 2.0.0 Ok: queued as 4QX7"])))
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def german_config(store_url: str, tmp_path: Path, mail: str) -> Path:
    config = write_billing_config(store_url, tmp_path)
    config.write_text(config.read_text(encoding="utf-8") + f"[mail]\n{mail}\n", encoding="utf-8")
    book = BOOK.replace(
        'currency = "EUR"\npayment_terms_days', 'currency = "EUR"\nlanguage = "de"\npayment_terms_days', 1
    )
    (tmp_path / "book.toml").write_text(book, encoding="utf-8")
    return config


async def finalise_october(store_url: str, config: Path) -> datetime:
    """ACME's October invoice, finalised through the CLI (which queues its mail at the wall clock's now)."""
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 50, mono=100, color=20), "KY1")
    assert await asyncio.to_thread(cli, config, "bill", "run", "--period", "2026-10") == 0
    assert await asyncio.to_thread(cli, config, "invoices", "finalize", "1", "--issue-date", "2026-11-01") == 0
    return datetime.now(UTC)


async def invoice_finalised(store_url: str, tmp_path: Path, port: int) -> tuple[Settings, datetime]:
    """ACME (German) with its October invoice finalised, mailed through the loopback relay on ``port``."""
    config = german_config(store_url, tmp_path, f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"')
    now = await finalise_october(store_url, config)
    return load(config, environ={}), now


async def test_a_finalised_invoice_reaches_the_billing_contact_in_german_with_pdf_and_xml(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    settings, now = await invoice_finalised(store_url, tmp_path, port)  # the CLI's finalize queued it: not sent yet
    metrics = Metrics()
    async with Store.open(store_url) as store:
        [queued] = await mails(store, status="queued")
        assert server.received == []
        assert await deliver(store, settings, now=now, metrics=metrics) == 1
        assert await deliver(store, settings, now=now + timedelta(days=1)) == 0  # sent once
        [sent] = await mails(store, status="sent")
    assert sent.relay_answer == "250 2.0.0 Ok: queued as 4QX7"
    assert metrics.mail_sent._value.get() == 1
    assert metrics.mail_queued._value.get() == 0

    [mail] = server.received
    assert mail["To"] == "Petra Kaufmann <ap@acme.example>"
    assert mail["From"] == "billing@example.com"
    assert mail["Subject"] == "Print Partner GmbH: Rechnung INV-000001"
    assert mail["Message-ID"] == queued.message_id
    assert mail["Content-Language"] == "de"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Guten Tag Petra Kaufmann," in text
    assert "184,21 EUR" in text
    assert "15.11.2026" in text  # due 14 days after 1 Nov, in German
    assert "IBAN DE89370400440532013000" in text  # the letterhead
    assert "<p>Guten Tag Petra Kaufmann,</p>" in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    pdf, xml = (part for part in mail.iter_attachments())
    assert (pdf.get_filename(), xml.get_filename()) == ("INV-000001.pdf", "INV-000001.xml")
    pdf_bytes, xml_bytes = pdf.get_content(), xml.get_content()
    pages = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf_bytes)).pages)
    assert "Rechnung INV-000001" in pages
    pdf_text = subprocess.run(["pdftotext", "-", "-"], input=pdf_bytes, capture_output=True, check=True).stdout
    for expected in (
        "Rechnung INV-000001",
        "Schwarzweiß-Seiten KY1 2026-10: 3.100 Seiten",
        "Grundgebühr KY1 2026-11",
        "Gesamt EUR",
        "184,21",
        "USt. 19 % auf 154,80",
    ):
        assert expected in pdf_text.decode(), expected
    valid, errors = validate_xsd(xml_bytes)
    assert valid, errors
    assert [str(f) for f in check_rules(xml_bytes) if f.severity == "fatal"] == []


@pytest.mark.parametrize("relay", [["451 4.3.0 try again later", "250 2.0.0 Ok: queued as 9ZZ1"]], indirect=True)
async def test_a_relay_that_answers_4xx_then_2xx_gets_one_retry_and_one_mail(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    settings, now = await invoice_finalised(store_url, tmp_path, port)
    async with Store.open(store_url) as store:
        assert await deliver(store, settings, now=now) == 0
        [waiting] = await mails(store, status="queued")
        assert (waiting.attempts, waiting.last_error) == (1, "127.0.0.1 answered 451 4.3.0 try again later")
        assert await deliver(store, settings, now=now + timedelta(seconds=60)) == 0  # not due: 60 s x 2^1
        assert await deliver(store, settings, now=now + timedelta(seconds=120)) == 1
        assert await deliver(store, settings, now=now + timedelta(hours=1)) == 0
        [sent] = await mails(store, status="sent")
    assert (sent.attempts, sent.relay_answer) == (2, "250 2.0.0 Ok: queued as 9ZZ1")
    assert server.tries == 2
    assert len(server.received) == 1


@pytest.mark.parametrize("relay", [["554 5.7.1 relay access denied"]], indirect=True)
async def test_a_permanent_refusal_fails_at_once_and_is_counted(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    settings, now = await invoice_finalised(store_url, tmp_path, port)
    metrics = Metrics()
    async with Store.open(store_url) as store:
        assert await deliver(store, settings, now=now, metrics=metrics) == 0
        [failed] = await mails(store, status="failed")
        assert (await stats(store)).failed == 1
    assert failed.last_error == "127.0.0.1 answered 554 5.7.1 relay access denied"
    assert metrics.mail_failed._value.get() == 1
    assert server.tries == 1


async def reminder_queued(store_url: str, tmp_path: Path, port: int) -> tuple[Path, datetime]:
    """ACME's invoice 8 days late on 23 Nov: reminder 1 queued by the CLI, and its mail (invoices not mailed)."""
    config = german_config(
        store_url, tmp_path, f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\ninvoices = false'
    )
    await finalise_october(store_url, config)
    assert await asyncio.to_thread(cli, config, "receivables", "remind", "--as-of", "2026-11-23") == 0
    return config, datetime.now(UTC)  # the CLI queued the reminder's mail at its own now


async def test_a_reminder_goes_out_by_itself_and_is_marked_sent(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    config, now = await reminder_queued(store_url, tmp_path, port)
    async with Store.open(store_url) as store:
        assert await deliver(store, load(config, environ={}), now=now) == 1
        [reminder] = await ReceivablesStore(store).reminders()
    assert (reminder.status, reminder.sent_at) == ("sent", now)
    [mail] = server.received
    assert mail["Subject"] == "Print Partner GmbH: Zahlungserinnerung zu Rechnung INV-000001"
    assert reminder.text.strip() in mail.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]


async def test_a_reminder_paid_before_it_was_mailed_is_not_sent(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    config, now = await reminder_queued(store_url, tmp_path, port)
    pay = ["receivables", "pay", "1", "--on", "2026-11-24", "--amount", "184.21", "--by", "carla"]
    assert await asyncio.to_thread(cli, config, *pay) == 0
    async with Store.open(store_url) as store:
        assert await deliver(store, load(config, environ={}), now=now) == 0
        [cancelled] = await mails(store, status="cancelled")
    assert cancelled.kind == "reminder"
    assert server.received == []


async def test_dry_run_writes_eml_files_and_sends_nothing(store_url: str, tmp_path: Path) -> None:
    outbox = tmp_path / "eml"
    config = german_config(store_url, tmp_path, f'dry_run_dir = "{outbox}"')
    now = await finalise_october(store_url, config)
    async with Store.open(store_url) as store:
        assert "mail" in [job.name for job in office_jobs(load(config, environ={}), store)]  # the daemon runs it
        assert await deliver(store, load(config, environ={}), now=now) == 1
        [sent] = await mails(store, status="sent")
    [eml] = outbox.glob("*.eml")
    assert sent.relay_answer == f"dry run: written to {eml}"
    assert message_from_bytes(eml.read_bytes())["Subject"] == "Print Partner GmbH: Rechnung INV-000001"


async def test_a_claimed_mail_left_by_a_stopped_daemon_is_not_sent_again(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    settings, now = await invoice_finalised(store_url, tmp_path, port)
    async with Store.open(store_url) as store:
        [queued] = await mails(store)
        # The first half of a send, as a daemon stopped mid-way leaves it.
        assert await _claim(store, queued.id, now) is not None
        assert await _claim(store, queued.id, now) is None  # a second run cannot take it
        assert await deliver(store, settings, now=now + timedelta(hours=1)) == 0
        [failed] = await mails(store, status="failed")
    assert "interrupted while sending" in (failed.last_error or "")
    assert server.received == []


def test_old_notify_smtp_keys_still_work_with_a_warning() -> None:
    with pytest.warns(
        FutureWarning,
        match=r"deprecated settings, still read: notify.smtp_host -> mail.host, notify.smtp_port -> mail.port",
    ):
        settings = Settings.model_validate(
            {"notify": {"smtp_host": "relay.example", "smtp_port": 25, "smtp_starttls": False, "smtp_user": "meterd"}}
        )
    assert (settings.mail.host, settings.mail.port, settings.mail.security, settings.mail.user) == (
        "relay.example",
        25,
        "none",
        "meterd",
    )


async def test_the_reminder_is_written_in_the_customers_language(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    _server, port = relay
    await reminder_queued(store_url, tmp_path, port)
    async with Store.open(store_url) as store:
        [reminder] = await ReceivablesStore(store).reminders()
    for expected in (
        "ACME: Zahlungserinnerung 1 zu Rechnung INV-000001 vom 01.11.2026",
        "Guten Tag Petra Kaufmann,",
        "über 184,21 EUR war am 15.11.2026 fällig.",
        "Davon sind noch 184,21 EUR offen.",
        "auf DE89370400440532013000 mit dem Verwendungszweck INV-000001",
    ):
        assert expected in reminder.text, (expected, reminder.text)


async def test_a_voided_invoice_is_followed_by_its_credit_note_or_never_sent(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    settings, now = await invoice_finalised(store_url, tmp_path, port)
    config = tmp_path / "meterd.toml"
    async with Store.open(store_url) as store:
        assert await deliver(store, settings, now=now) == 1  # the invoice went out
    assert (
        await asyncio.to_thread(cli, config, "invoices", "void", "1", "--reason", "wrong device", "--by", "carla") == 0
    )
    async with Store.open(store_url) as store:
        assert await deliver(store, settings, now=datetime.now(UTC)) == 1
    assert [mail["Subject"] for mail in server.received] == [
        "Print Partner GmbH: Rechnung INV-000001",
        "Print Partner GmbH: Gutschrift CN-000001",
    ]
    [_, credit_pdf] = [next(mail.iter_attachments()) for mail in server.received]
    assert credit_pdf.get_filename() == "CN-000001.pdf"


async def test_an_invoice_voided_before_its_mail_went_out_is_never_sent(
    store_url: str, tmp_path: Path, relay: tuple[Relay, int]
) -> None:
    server, port = relay
    settings, _ = await invoice_finalised(store_url, tmp_path, port)
    config = tmp_path / "meterd.toml"
    assert (
        await asyncio.to_thread(cli, config, "invoices", "void", "1", "--reason", "wrong device", "--by", "carla") == 0
    )
    async with Store.open(store_url) as store:
        assert await deliver(store, settings, now=datetime.now(UTC)) == 0
        [cancelled] = await mails(store, status="cancelled")
    assert (cancelled.key, cancelled.last_error) == ("invoice:1", "invoice voided: wrong device")
    assert server.received == []
