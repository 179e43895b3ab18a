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
    assert await asyncio.to_thread(cli, config, "receivables", "list", "--overdue", "--as-of", as_of,
                                   "--format", "json") == 0  # fmt: skip
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


async def test_payments_lateness_reminders_and_instalments(
    store_url: str, config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The story is dated November 2026; the issue-date window is measured from the real today.
    monkeypatch.setenv("METERD_BILLING__ISSUE_DATE_WINDOW_DAYS", "3650")
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 50, mono=100, color=20), "KY1")
    assert await asyncio.to_thread(cli, config, "bill", "run", "--period", "2026-10") == 0
    # Issued 1 Nov, 14 days' terms: due 15 Nov; 184.21 EUR (the worked example of test_billing).
    assert await asyncio.to_thread(cli, config, "invoices", "finalize", "1", "--issue-date", "2026-11-01") == 0
    assert await _late(config, capsys, "2026-11-15") == []
    [late] = await _late(config, capsys, "2026-11-20")
    assert (late["open"], late["overdue"], late["overdue_since"], late["days_overdue"]) == (
        "184.21", "184.21", "2026-11-15", 5)  # fmt: skip

    pay = ["receivables", "pay", "1", "--on", "2026-11-21", "--reference", "SEPA 7731", "--by", "carla"]
    assert await asyncio.to_thread(cli, config, *pay, "--amount", "100.00") == 0
    assert "84.21 EUR still open" in capsys.readouterr().out
    assert await asyncio.to_thread(cli, config, *pay, "--amount", "100.00") == 1
    assert "100.00 is more than the 84.21 EUR still open" in capsys.readouterr().err

    remind = ["receivables", "remind", "--as-of"]
    assert await asyncio.to_thread(cli, config, *remind, "2026-11-23") == 0  # 8 days late: level 1
    assert await asyncio.to_thread(cli, config, *remind, "2026-11-24") == 0  # the same level: not again
    assert await asyncio.to_thread(cli, config, *remind, "2026-12-07") == 0  # 22 days late: level 2
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "receivables", "reminders", "--status", "queued", "--text") == 0
    listed = capsys.readouterr().out
    assert listed.count("--- reminder") == 2
    assert "84.21 EUR of it is still open after our earlier reminder" in listed
    assert "Dear Petra Kaufmann" in listed
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "1", "--by", "carla") == 0
    assert await asyncio.to_thread(cli, config, "receivables", "sent", "1") == 1  # sent already
    assert "no queued reminder 1" in capsys.readouterr().err

    # A plan for the 84.21 still open: 84.21 / 2 = 42.105 -> 42.11 on 10 Dec, the rest (42.10) on 9 Jan.
    # On 20 Dec only the first is late.
    plan = ["receivables", "instalments", "1", "--parts", "2", "--first", "2026-12-10", "--by", "carla"]
    assert await asyncio.to_thread(cli, config, *plan) == 0
    assert "2026-12-10  42.11 EUR\n  2027-01-09  42.10 EUR" in capsys.readouterr().out
    [planned] = await _late(config, capsys, "2026-12-20")
    assert (planned["overdue"], planned["overdue_since"], planned["days_overdue"]) == ("42.11", "2026-12-10", 10)
    async with Store.open(store_url) as store:
        actions = [(e.actor, e.action) for e in await find_audit(store, target="invoice:1")]
    assert actions[:2] == [("carla", "invoice.instalments"), ("system", "reminder.queue")]
    assert ("carla", "payment.record") in actions
