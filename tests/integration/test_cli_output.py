"""What the CLI prints for a person: real characters, not JSON escapes; amounts in the currency's minor unit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.integration.test_billing import cli
from tests.integration.test_billing import config as config  # noqa: PLC0414 - the fixture, by its name
from tests.integration.test_receivables import finalised_invoice

pytestmark = pytest.mark.usefixtures("wide_issue_date_window")


async def test_umlauts_print_as_themselves_and_every_amount_with_its_cents(
    store_url: str, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await finalised_invoice(store_url, config)
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "customers", "show", "ACME") == 0
    shown = capsys.readouterr().out
    assert '"legal_name": "Acme Büromaschinen GmbH"' in shown
    assert "\\u00fc" not in shown
    assert await asyncio.to_thread(cli, config, "contracts", "show", "ACME-1") == 0
    contract = json.loads(capsys.readouterr().out)["versions"][0]
    assert (contract["base_fee"], contract["minimum_charge"]) == ("40.00", "0.00")

    listing = ["receivables", "list", "--as-of", "2026-11-10", "--format"]
    assert await asyncio.to_thread(cli, config, *listing, "csv") == 0
    [row] = capsys.readouterr().out.splitlines()[1:]
    assert row.split(",")[3:7] == ["184.21", "0.00", "184.21", "0.00"]  # total, paid, open, overdue
    assert await asyncio.to_thread(cli, config, *listing, "json") == 0
    [standing] = json.loads(capsys.readouterr().out)
    assert (standing["paid"], standing["overdue"]) == ("0.00", "0.00")
