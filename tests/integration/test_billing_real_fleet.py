"""Issue 17's end to end: real printers polled over SNMP, a month of their counters billed page for page.

The Konica (shared walks: librenms/konica_c250i) splits its counters by function only; the colour
Brother (tests/fixtures/snmp/brother_dcp_l3550cdw, the `brother` library's real answers, blob ending
0xff) packs them in its counter blob; a third device is reset mid-month and the reset confirmed. Each
is polled once through snmpsim; the month's later readings are that reading with its counters advanced
by known pages a day, so every invoice line can be checked against the pages printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from billing.anomalies import Finding, Kind
from collectors.snmp.collector import SnmpCollector
from daemon.kernel.reading import Meter, MeterValue, Reading
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store
from tests.integration.conftest import Simulator
from tests.integration.test_billing import NOW, OCT, _ready, cli, daily, write_billing_config

FIRST = date(2026, 9, 20)
DAYS = 45  # 20 Sep -> 3 Nov: both October boundaries have a read on the day
OCTOBER_DAYS = 31  # 1 Oct 06:00 -> 1 Nov 06:00

# Pages a day per meter the device reports; the derived sums advance by the sum of their parts.
KONICA_PER_DAY = {
    Meter.PRINT_MONO: 60,
    Meter.COPY_MONO: 30,
    Meter.MONO: 90,
    Meter.PRINT_COLOR: 20,
    Meter.COPY_COLOR: 5,
    Meter.COLOR: 25,
    Meter.TOTAL: 116,  # one report page a day that only `total` counts, as on the real device
}
BROTHER_PER_DAY = {Meter.MONO: 40, Meter.COLOR: 12, Meter.TOTAL: 52}


@pytest.fixture
def config(store_url: str, tmp_path: Path) -> Path:
    return write_billing_config(store_url, tmp_path)


async def _poll(snmpsim: Simulator, community: str, serial: str) -> Reading:
    async with SnmpCollector(site="acme-hq") as collector:
        reading = (await collector.poll(snmpsim.target(community, version="2c"))).reading
    # Two recordings share anonymised serials; a fleet's devices do not.
    return dataclasses.replace(reading, device=dataclasses.replace(reading.device, key=serial))


def _month_of(first: Reading, per_day: dict[Meter, int]) -> list[Reading]:
    """``first`` on each day at 06:00 UTC from FIRST, every meter advanced by its pages a day."""
    unknown = {m.meter for m in first.meters} - set(per_day)
    assert not unknown - {Meter.SCAN_TOTAL, Meter.DUPLEX, Meter.COPY_TOTAL, Meter.PRINT_TOTAL, Meter.FAX_TOTAL}, unknown
    out = []
    for n in range(DAYS):
        at = datetime(FIRST.year, FIRST.month, FIRST.day, 6, tzinfo=UTC) + timedelta(days=n)
        meters = tuple(dataclasses.replace(m, value=m.value + per_day.get(m.meter, 0) * n) for m in first.meters)
        out.append(dataclasses.replace(first, taken_at=at, meters=meters, id=f"{first.device.key}-{at:%Y%m%d}"))
    return out


async def test_a_konica_a_colour_brother_and_a_reset_device_are_billed_every_page_they_printed(
    snmpsim: Simulator, store_url: str, config: Path
) -> None:
    konica = await _poll(snmpsim, "konica_c250i", "KM-C250I")
    brother = await _poll(snmpsim, "brother_dcp_l3550cdw", "BR-L3550")
    # What the bill rests on comes from the devices, not from this test: derived sums on the Konica,
    # the blob's words on the Brother.
    konica_meters = {m.meter: m for m in konica.meters}
    assert konica_meters[Meter.MONO] == MeterValue(Meter.MONO, 22_876 + 3_672, derived=True)
    assert konica_meters[Meter.COLOR] == MeterValue(Meter.COLOR, 6_711 + 544, derived=True)
    assert {m.meter: m.value for m in brother.meters}[Meter.COLOR] == 902

    # 100 mono pages a day; on 11 Oct the counter restarts and reads 35 (a new board), confirmed below.
    before = daily("RS1", FIRST, 21, mono=100, color=20)
    after = daily("RS1", date(2026, 10, 11), 30, mono=100, color=20, start=35, color_start=1000 + 20 * 21)
    readings = [*_month_of(konica, KONICA_PER_DAY), *_month_of(brother, BROTHER_PER_DAY), *before, *after]
    await _ready(store_url, config, readings, "KM-C250I", "BR-L3550", "RS1")
    async with Store.open(store_url) as store:
        await AnomalyStore(store).record(
            [
                Finding(
                    Kind.RESET,
                    "RS1",
                    "mono",
                    before[-1].taken_at,
                    after[0].taken_at,
                    {"readings": [before[-1].id, after[0].id]},
                )
            ],
            now=NOW,
        )
        [reset] = await AnomalyStore(store).find(kind="reset")
    confirm = ["anomalies", "resolve", str(reset.id), "--action", "reset", "--reason", "new board", "--by", "carol"]
    assert await asyncio.to_thread(cli, config, *confirm) == 0

    assert await asyncio.to_thread(cli, config, "bill", "run", "--period", "2026-10") == 0
    async with Store.open(store_url) as store:
        [draft] = await BillingStore(store).invoices(period=OCT)
        invoice = await BillingStore(store).invoice(draft.id)
    pages = {(line.device, line.meter): line.provenance["pages"] for line in invoice.lines if line.kind == "usage"}
    assert pages == {
        ("KM-C250I", "mono"): 90 * OCTOBER_DAYS,
        ("KM-C250I", "color"): 25 * OCTOBER_DAYS,
        ("BR-L3550", "mono"): 40 * OCTOBER_DAYS,
        ("BR-L3550", "color"): 12 * OCTOBER_DAYS,
        # 1 Oct 11,100 -> 10 Oct 12,000, then 0 -> 35 -> 2,135 on 1 Nov: the pages after the reset count too.
        ("RS1", "mono"): 900 + 2_135,
        ("RS1", "color"): 20 * OCTOBER_DAYS,  # the colour counter did not restart
    }
    # Nothing blocks: every billed meter has its reads, the reset is confirmed.
    assert await asyncio.to_thread(cli, config, "invoices", "finalize", str(draft.id), "--by", "alice") == 0
