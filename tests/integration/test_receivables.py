"""Receivables end to end on both stores: a finalised invoice is paid in part, overpaying is refused, it turns
late, reminders are queued once per level, an instalment plan decides what is late, every change audited."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest

from daemon.storage.audit import find_audit
from daemon.storage.repository import Store
from tests.integration.test_billing import _ready, cli, daily
from tests.integration.test_billing import config as config  # noqa: PLC0414 - the fixture, by its name


async def _late(config: Path, capsys: pytest.CaptureFixture[str], as_of: str) -> list[dict[str, str]]:
    capsys.readouterr()
    assert (
        await asyncio.to_thread(cli, config, "receivables", "list", "--overdue", "--as-of", as_of, "--format", "json")
        == 0
    )
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


REMIND = ("receivables", "remind", "--as-of")


pytestmark = pytest.mark.usefixtures("wide_issue_date_window")


async def finalised_invoice(store_url: str, config: Path) -> None:
    """Invoice 1 for ACME's October: issued 1 Nov, 14 days' terms, so due 15 Nov; 184.21 EUR (test_billing's)."""
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 50, mono=100, color=20), "KY1")
    assert await asyncio.to_thread(cli, config, "bill", "run", "--period", "2026-10") == 0
    assert await asyncio.to_thread(cli, config, "invoices", "finalize", "1", "--issue-date", "2026-11-01") == 0


async def _remind_twice(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """84.21 open since 15 Nov: reminder 1, sent on 24 Nov, then reminder 2 (sent on 8 Dec)."""
    assert await asyncio.to_thread(cli, config, *REMIND, "2026-11-23") == 0  # 8 days late: level 1
    assert await asyncio.to_thread(cli, config, *REMIND, "2026-11-24") == 0  # the same level: not again
    # 22 days late, but reminder 1 never went out: level 2 would speak of a reminder the customer never had.
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, *REMIND, "2026-12-07") == 0
    assert "0 reminder(s) queued" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "1", "--on", "2026-11-24", "--by", "carla") == 0
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "1") == 1  # sent already
    assert "no queued reminder 1" in capsys.readouterr().err
    # Level 2 comes as long after the first was sent as the levels are apart (21 - 7 = 14 days): 8 Dec.
    assert await asyncio.to_thread(cli, config, *REMIND, "2026-12-07") == 0
    assert await asyncio.to_thread(cli, config, *REMIND, "2026-12-08") == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "receivables", "reminders", "--text") == 0
    listed = capsys.readouterr().out
    first, second = listed.split("--- reminder")[1:]
    assert "84.21 EUR of it is still open.\n" in first
    assert "remind" not in first.partition("\n\n")[2]  # no earlier reminder to speak of
    assert "reminder 2 for invoice" in second
    assert "We reminded you of it on 2026-11-24." in second
    assert "Dear Petra Kaufmann" in listed
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "2", "--on", "2026-12-08", "--by", "carla") == 0


async def test_payments_lateness_reminders_and_instalments(
    store_url: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await finalised_invoice(store_url, config)
    assert await _late(config, capsys, "2026-11-15") == []
    [late] = await _late(config, capsys, "2026-11-20")
    assert (late["open"], late["overdue"], late["overdue_since"], late["days_overdue"]) == (
        "184.21",
        "184.21",
        "2026-11-15",
        5,
    )

    # Aging: 35 days late on 20 Dec is the second bucket; the other buckets are listed, empty.
    capsys.readouterr()
    aging = ("receivables", "aging", "--as-of", "2026-12-20")
    assert await asyncio.to_thread(cli, config, *aging, "--format", "json") == 0
    buckets = json.loads(capsys.readouterr().out)
    assert [(b["label"], b["invoices"], b["overdue"]) for b in buckets] == [
        ("0\N{EN DASH}30", 0, {}),
        ("31\N{EN DASH}60", 1, {"EUR": "184.21"}),
        ("61\N{EN DASH}90", 0, {}),
        ("90+", 0, {}),
    ]
    assert await asyncio.to_thread(cli, config, *aging) == 0
    assert "184.21 EUR" in capsys.readouterr().out

    pay = ["receivables", "pay", "1", "--on", "2026-11-21", "--reference", "SEPA 7731", "--by", "carla"]
    assert await asyncio.to_thread(cli, config, *pay, "--amount", "100.00") == 0
    assert "84.21 EUR still open" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, config, *pay, "--amount", "100.00") == 1
    assert "100.00 is more than the 84.21 EUR still open" in capsys.readouterr().err

    await _remind_twice(config, capsys)

    # A plan for the 84.21 still open: 84.21 / 2 = 42.105 -> 42.11 on 10 Dec, the rest (42.10) on 9 Jan.
    # On 20 Dec only the first is late.
    plan = ["receivables", "instalments", "1", "--parts", "2", "--first", "2026-12-10", "--by", "carla"]
    assert await asyncio.to_thread(cli, config, *plan) == 0
    assert "2026-12-10  42.11 EUR\n  2027-01-09  42.10 EUR" in capsys.readouterr().out
    [planned] = await _late(config, capsys, "2026-12-20")
    assert (planned["overdue"], planned["overdue_since"], planned["days_overdue"]) == ("42.11", "2026-12-10", 10)
    # The last level, 14 days after the second: it names the plan, what of it is overdue and what is open in all.
    assert await asyncio.to_thread(cli, config, *REMIND, "2026-12-22") == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "receivables", "reminders", "--status", "queued", "--text") == 0
    third = capsys.readouterr().out
    for expected in (
        "final reminder 3 for invoice",
        "  2026-12-10  42.11 EUR  overdue\n",
        "  2027-01-09  42.10 EUR  not overdue yet\n",
        "42.11 EUR of it is overdue; 84.21 EUR is open in all.",
        "We reminded you of it on 2026-11-24, 2026-12-08.",
        "Please transfer the overdue amount",
    ):
        assert expected in third, expected

    # Paid in full: the queued reminder must not go out.
    assert await asyncio.to_thread(cli, config, *pay, "--amount", "84.21") == 0
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "receivables", "reminders", "--status", "queued") == 0
    assert "0 reminder(s)" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "3") == 1
    async with Store.open(store_url) as store:
        actions = [(e.actor, e.action) for e in await find_audit(store, target="invoice:1")]
    assert actions[:2] == [("carla", "reminder.cancel"), ("carla", "payment.record")]
    assert ("carla", "invoice.instalments") in actions
    assert actions.count(("system", "reminder.queue")) == 3


async def test_voiding_an_invoice_cancels_its_queued_reminders(
    store_url: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await finalised_invoice(store_url, config)
    assert await asyncio.to_thread(cli, config, "receivables", "remind", "--as-of", "2026-11-23") == 0
    assert (
        await asyncio.to_thread(cli, config, "invoices", "void", "1", "--reason", "wrong customer", "--by", "carla")
        == 0
    )
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "receivables", "reminders", "--status", "cancelled") == 0
    assert "1 reminder(s)" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "1") == 1
    async with Store.open(store_url) as store:
        [cancel] = [e for e in await find_audit(store, target="invoice:1") if e.action == "reminder.cancel"]
    assert (cancel.actor, cancel.detail) == ("carla", {"reminders": [1], "reason": "invoice voided: wrong customer"})
