"""The console's pages at fleet size: each page's HTML weight and median server time, beside a bare SQL query.

    .venv/bin/python bench/console_pages.py [--devices 2000] [--per-day 4] [--repeat 15] [--db /tmp/meterd-console.db]

Builds (once; reused while its size matches) a SQLite store of 2,000 devices held by 200
customers (10 each, one contract each), a year of readings (2026, ``--per-day`` a day, mono
and colour), 300 open anomalies (a jump each, 25 shown per queue page), October billed and
finalised (the receivables) and November's drafts. Then, in one process, a billing user
logged in through the console (in-process ASGI: server time, no network) requests each page
``--repeat`` times; printed per page: the HTML's size, the median and slowest time, and the
median of a bare SQL query of the data the page shows (sqlite3 on the same file, same run),
the floor a page cannot beat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing.anomalies import Finding, Kind
from billing.contracts import parse_contract
from billing.customers import parse_customer
from billing.periods import Period
from daemon.api.app import create_app
from daemon.api.security import ApiContext
from daemon.security.secretbox import SecretBox
from daemon.services.accounts import Accounts
from daemon.services.billing import bill_month, finalize_many
from daemon.settings import ApiSettings, Settings
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.billing import DRAFT, BillingStore
from daemon.storage.repository import Store
from daemon.storage.types import sqlite_time

YEAR_START = date(2026, 1, 1)
DAYS = 365
PER_CUSTOMER = 10
ANOMALIES = 300
NOW = datetime(2026, 12, 31, 12, tzinfo=UTC)  # the bench's "now": the end of its year
PASSWORD = "correct horse battery staple"
TARGET_KB = 200
TARGET_MS = 150
SELLER = {"name": "Print Partner GmbH", "tax_id": "DE136695976", "iban": "DE89370400440532013000"}


def _customer(n: int) -> dict[str, object]:
    return {
        "code": f"C{n:04d}",
        "legal_name": f"Customer {n} GmbH",
        "country": "DE",
        "currency": "EUR",
        "tax_id": "DE136695976",
        "address": {"street": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "contacts": [{"name": "AP", "email": f"ap{n}@example.com", "billing": True}],
    }


def _contract(n: int) -> dict[str, object]:
    terms = [
        {"meter": "mono", "included": 1000, "tiers": [{"up_to": 5000, "price": "0.012"}, {"price": "0.009"}]},
        {"meter": "color", "included": 100, "tiers": [{"price": "0.065"}]},
    ]
    version = {"valid_from": "2025-01-01", "currency": "EUR", "base_fee": "39.00", "tax_rate": "0.19", "meters": terms}
    return {"id": f"K{n:04d}", "customer": f"C{n:04d}", "versions": [version]}


def _settings(path: Path) -> Settings:
    return Settings.model_validate(
        {
            "storage": {"url": f"sqlite:///{path}"},
            "state_dir": str(path.parent),
            "billing": {"seller": SELLER, "issue_date_window_days": 3650},
        }
    )


async def build(path: Path, devices: int, per_day: int) -> None:
    """The store: schema, customers, anomalies and invoices by meterd; bulk readings by sqlite3 (not measured)."""
    path.unlink(missing_ok=True)
    settings = _settings(path)
    customers = devices // PER_CUSTOMER
    async with Store.open(settings.database_url) as store:
        billing = BillingStore(store)
        await billing.save_customers([parse_customer(_customer(n)) for n in range(customers)], actor="bench", now=NOW)
        for n in range(customers):
            await billing.save_contract(parse_contract(_contract(n)), actor="bench", now=NOW)
    rng = np.random.default_rng(21)
    db = sqlite3.connect(path)
    stamp = sqlite_time(NOW)
    db.executemany(
        "INSERT INTO devices (id, key, vendor, model, address, site, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?)",
        [
            (
                d + 1,
                f"SER{d:06d}",
                "Kyocera",
                "TASKalfa 2554ci",
                f"10.{d // 250}.{d % 250}.9",
                f"site-{d // 50}",
                "",
                "",
            )
            for d in range(devices)
        ],
    )
    db.executemany(
        "INSERT INTO device_assignments (device_id, customer_id, valid_from, valid_to, created_at) VALUES (?,?,?,?,?)",
        [(d + 1, d // PER_CUSTOMER + 1, "2025-12-01", None, stamp) for d in range(devices)],
    )
    moments = [
        datetime(2026, 1, 1, 3, tzinfo=UTC) + timedelta(days=i, hours=h * 24 // per_day)
        for i in range(DAYS)
        for h in range(per_day)
    ]
    times = [sqlite_time(m) for m in moments]
    for first in range(0, devices, 200):
        rows = []
        for d in range(first, min(first + 200, devices)):
            mono = np.cumsum(rng.poisson(rng.lognormal(np.log(150 / per_day), 0.7), len(moments)))
            color = np.cumsum(rng.poisson(rng.lognormal(np.log(30 / per_day), 0.7), len(moments)))
            mono += int(rng.integers(1000, 900_000))
            color += int(rng.integers(100, 90_000))
            for i, at in enumerate(times):
                rid = f"SER{d:06d}-{i}"
                rows.append((rid, d + 1, "mono", int(mono[i]), "impressions", 0, at, at, "snmp"))
                rows.append((rid, d + 1, "color", int(color[i]), "impressions", 0, at, at, "snmp"))
        db.executemany(
            "INSERT INTO readings (reading_id, device_id, meter, value, unit, derived, taken_at, received_at, source)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.commit()
    db.execute("UPDATE devices SET first_seen = ?, last_seen = ?", (times[0], times[-1]))
    db.execute("ANALYZE")
    db.commit()
    db.close()
    async with Store.open(settings.database_url) as store:
        findings = []
        for n in range(ANOMALIES):
            device, day = int(rng.integers(0, devices)), int(rng.integers(200, 360))
            at = moments[day * per_day]
            ident = f"SER{device:06d}-{day * per_day}"
            evidence = {"readings": [ident], "step": 9_000_000, "max_plausible_step": 720_000}
            findings.append(Finding(Kind.JUMP, f"SER{device:06d}", "mono", at, at, evidence | {"n": n}))
        await AnomalyStore(store).record(findings, now=NOW)
        october = await bill_month(store, settings, Period.month(2026, 10), write=True, actor="bench", now=NOW)
        ids = [s.invoice_id for s in october.saved if s.invoice_id is not None]
        await finalize_many(store, settings, ids, actor="bench", now=NOW, override="bench")
        await bill_month(store, settings, Period.month(2026, 11), write=True, actor="bench", now=NOW)
    path.with_suffix(".json").write_text(json.dumps({"devices": devices, "per_day": per_day}))


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    reference: str  # the bare SQL of the data the page shows
    parameters: tuple[object, ...] = ()


def pages(draft: int, device_id: int, device_key: str) -> list[Page]:
    since = sqlite_time(NOW - timedelta(days=90))
    return [
        Page(
            "Today", "/", "SELECT site, key, last_seen FROM devices; SELECT kind, count(*) FROM anomalies GROUP BY kind"
        ),
        Page("Devices", "/devices", "SELECT key, vendor, model, address, site, last_seen FROM devices"),
        Page(
            "Device (90 days)",
            f"/devices/{device_key}",
            "SELECT meter, taken_at, value, source, reading_id FROM readings WHERE device_id = ? AND taken_at >= ?",
            (device_id, since),
        ),
        Page(
            "Anomaly review (25 a page)",
            "/anomalies",
            "SELECT * FROM anomalies WHERE status != 'resolved' ORDER BY detected_at DESC LIMIT 25",
        ),
        Page(
            "Billing run (preview)",
            "/billing?period=2026-11",
            "SELECT device_id, meter, taken_at, value FROM readings WHERE taken_at BETWEEN ? AND ?",
            ("2026-10-29", "2026-12-04"),
        ),
        Page("Invoices", "/invoices", "SELECT * FROM invoices"),
        Page("Invoice", f"/invoices/{draft}", "SELECT * FROM invoice_lines WHERE invoice_id = ?", (draft,)),
        Page(
            "Receivables", "/receivables", "SELECT * FROM invoices WHERE status = 'finalized'; SELECT * FROM payments"
        ),
    ]


def _bare(db: sqlite3.Connection, page: Page, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        for sql in page.reference.split(";"):
            count = sql.count("?")
            db.execute(sql, page.parameters[:count]).fetchall()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


async def measure(path: Path, repeat: int) -> list[tuple[Page, int, float, float, float]]:
    settings = _settings(path)
    async with Store.open(settings.database_url) as store:
        accounts = Accounts(
            store, ApiSettings(totp_required_for=[]), SecretBox(path.parent / "bench-secret.key"), lambda: NOW
        )
        if not await store.states(prefix="bench.user"):
            await accounts.add_user("clerk", "Bench clerk", "billing", PASSWORD, actor="bench")
            await AnomalyStore(store).set_state("bench.user", "clerk")
        [draft, *_] = await BillingStore(store).invoices(period=Period.month(2026, 11), status=DRAFT)
        app = create_app(ApiContext(settings, store, accounts, lambda: NOW))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://meterd.bench") as client:
            login = await client.get("/login")
            token = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            done = await client.post("/login", data={"csrf": token, "login": "clerk", "password": PASSWORD})
            assert done.status_code == 303, done.text
            db = sqlite3.connect(path)
            device_id, device_key = db.execute("SELECT id, key FROM devices ORDER BY id LIMIT 1 OFFSET 7").fetchone()
            results = []
            for page in pages(draft.id, device_id, device_key):
                timings, size = [], 0
                for _ in range(repeat):
                    started = time.perf_counter()
                    response = await client.get(page.path)
                    timings.append(time.perf_counter() - started)
                    assert response.status_code == 200, (page.path, response.status_code, response.text[:300])
                    size = len(response.content)
                results.append((page, size, statistics.median(timings), max(timings), _bare(db, page, repeat)))
            db.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--per-day", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "meterd-console-bench.db")
    args = parser.parse_args()
    marker = args.db.with_suffix(".json")
    wanted = {"devices": args.devices, "per_day": args.per_day}
    if not args.db.exists() or not marker.exists() or json.loads(marker.read_text()) != wanted:
        started = time.perf_counter()
        asyncio.run(build(args.db, args.devices, args.per_day))
        print(f"built {args.db} in {time.perf_counter() - started:.0f} s")
    rows = sqlite3.connect(args.db).execute("SELECT count(*) FROM readings").fetchone()[0]
    print(f"{args.devices:,} devices, {rows:,} meter readings (a year, {args.per_day} a day), {args.repeat} per page")
    head = f"{'page':28} {'HTML kB':>8} {'median ms':>10} {'max ms':>8} {'bare SQL ms':>12}"
    print(f"{head}  targets <{TARGET_KB} kB, <{TARGET_MS} ms")
    for page, size, median, slowest, bare in asyncio.run(measure(args.db, args.repeat)):
        verdict = "met" if size < TARGET_KB * 1000 and median * 1000 < TARGET_MS else "NOT met"
        figures = f"{size / 1000:8.1f} {median * 1000:10.1f} {slowest * 1000:8.1f} {bare * 1000:12.2f}"
        print(f"{page.name:28} {figures}  {verdict}")


if __name__ == "__main__":
    main()
