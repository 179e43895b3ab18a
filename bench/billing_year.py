"""Billing at fleet size: a year of daily reads of 10,000 devices x 2 meters in SQLite.

    .venv/bin/pip install -e '.[bench]'      # DuckDB and its SQLite scanner, the reference
    .venv/bin/python bench/billing_year.py [--devices 10000] [--db /tmp/meterd-billing-bench.db]

Builds (once; reused while its size matches) a store of 1,000 customers with 10 devices
each, one contract per customer (base fee, included pages, graduated mono tiers, colour),
and a reading per device per day at 06:00 UTC for 2026 (mono and colour: 7.3 M rows).
Then, in one run:

1. meterd: monthly usage lines of every device x meter for the whole year, from the store
   (columnar load in a child process + the vectorised boundary-read pass of billing.reads);
2. DuckDB: the same monthly usage as one SQL query (closest read to each month boundary
   within ±3 days, earlier on a tie, then ``lead()`` over the boundaries), reading the
   same SQLite file through its scanner;
3. the two compared figure by figure;
4. one month's draft invoices for all customers, written to the store (``bill_month``);
5. the peak RSS of each part, each run in its own process (the reader child's apart).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sqlite3
import sys
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from billing.periods import Period, add_months
from billing.reads import ReadRules, period_usage
from daemon.services.billing import bill_month
from daemon.settings import Settings
from daemon.storage.billing import BillingStore
from daemon.storage.columnar import read_readings
from daemon.storage.repository import Store
from daemon.storage.types import sqlite_time

YEAR_START = date(2026, 1, 1)
DAYS = 365
DEVICES_PER_CUSTOMER = 10
NOW = datetime(2027, 1, 5, tzinfo=UTC)
READ_AT = time_of_day(6, tzinfo=UTC)  # one reading a day, at 06:00 UTC


def _customer(n: int) -> dict[str, object]:
    return {
        "code": f"C{n:05d}",
        "legal_name": f"Customer {n} GmbH",
        "country": "DE",
        "currency": "EUR",
        "tax_scheme": "other",
        "address": {"street": "Hauptstr. 1", "city": "Berlin", "country": "DE"},
        "contacts": [{"name": "AP", "email": f"ap{n}@example.com", "billing": True}],
    }


def _contract(n: int) -> dict[str, object]:
    return {
        "id": f"K{n:05d}",
        "customer": f"C{n:05d}",
        "versions": [
            {
                "valid_from": "2025-01-01",
                "currency": "EUR",
                "base_fee": "39.00",
                "tax_rate": "0.19",
                "meters": [
                    {
                        "meter": "mono",
                        "included": 1000,
                        "tiers": [{"up_to": 5000, "price": "0.012"}, {"price": "0.009"}],
                    },
                    {"meter": "color", "included": 100, "tiers": [{"price": "0.065"}]},
                ],
            }
        ],
    }


async def build(path: Path, devices: int) -> None:
    """The store: schema by meterd, bulk rows by sqlite3 (the setup is not what is measured)."""
    from billing.contracts import parse_contract  # noqa: PLC0415
    from billing.customers import parse_customer  # noqa: PLC0415

    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    customers = devices // DEVICES_PER_CUSTOMER
    async with Store.open(url) as store:
        billing = BillingStore(store)
        await billing.save_customers([parse_customer(_customer(n)) for n in range(customers)], actor="bench", now=NOW)
        for n in range(customers):
            await billing.save_contract(parse_contract(_contract(n)), actor="bench", now=NOW)
    rng = np.random.default_rng(7)
    db = sqlite3.connect(path)
    stamp = sqlite_time(NOW)
    db.executemany(
        "INSERT INTO devices (id, key, vendor, model, address, site, first_seen, last_seen) VALUES (?,?,?,?,?,?,?,?)",
        [(d + 1, f"SER{d:06d}", "Kyocera", "TASKalfa", None, "bench", stamp, stamp) for d in range(devices)],
    )
    db.executemany(
        "INSERT INTO device_assignments (device_id, customer_id, valid_from, valid_to, created_at) VALUES (?,?,?,?,?)",
        [(d + 1, d // DEVICES_PER_CUSTOMER + 1, "2025-12-01", None, stamp) for d in range(devices)],
    )
    days = [sqlite_time(datetime.combine(YEAR_START + timedelta(days=i), READ_AT)) for i in range(DAYS)]
    for first in range(0, devices, 500):
        rows = []
        for d in range(first, min(first + 500, devices)):
            mono = np.cumsum(rng.poisson(rng.lognormal(np.log(150), 0.7), DAYS)) + int(rng.integers(1000, 900_000))
            color = np.cumsum(rng.poisson(rng.lognormal(np.log(30), 0.7), DAYS)) + int(rng.integers(100, 90_000))
            for i, day in enumerate(days):
                rid = f"SER{d:06d}-{i}"
                rows.append((rid, d + 1, "mono", int(mono[i]), "impressions", 0, day, stamp, "bench"))
                rows.append((rid, d + 1, "color", int(color[i]), "impressions", 0, day, stamp, "bench"))
        db.executemany(
            "INSERT INTO readings (reading_id, device_id, meter, value, unit, derived, taken_at, received_at, source)"
            " VALUES (?,?,?,?,?,?,?,?,?)",
            rows,
        )
        db.commit()
    db.execute("ANALYZE")
    db.commit()
    db.close()
    path.with_suffix(".json").write_text(json.dumps({"devices": devices, "days": DAYS}))


def _year_requests(devices: int) -> pd.DataFrame:
    months = [Period(add_months(YEAR_START, m), add_months(YEAR_START, m + 1)) for m in range(12)]
    rows = [
        (d + 1, meter, pd.Timestamp(p.start, tz="UTC"), pd.Timestamp(p.end, tz="UTC"))
        for d in range(devices)
        for meter in ("mono", "color")
        for p in months
    ]
    return pd.DataFrame(rows, columns=["device", "meter", "start", "end"])


async def meterd_year(path: Path, devices: int) -> tuple[float, pd.DataFrame]:
    requests = _year_requests(devices)
    started = time.perf_counter()
    since = datetime(2025, 12, 28, tzinfo=UTC) - ReadRules().estimate_lookback
    table = await read_readings(
        Store(_engine(path)).engine.url, since, datetime(2027, 1, 5, tzinfo=UTC), ["color", "mono"]
    )
    reads = table.to_pandas()
    usage = period_usage(reads, requests)
    elapsed = time.perf_counter() - started
    out = requests.assign(usage=usage["usage"].to_numpy(), month=requests["start"].dt.strftime("%Y-%m"))
    return elapsed, out[["device", "meter", "month", "usage"]]


def _engine(path: Path):  # type: ignore[no-untyped-def]  # noqa: ANN202 - an AsyncEngine, created without I/O
    from daemon.storage.engine import create_engine, parse_url  # noqa: PLC0415

    return create_engine(parse_url(f"sqlite:///{path}"))


DUCKDB_QUERY = """
WITH r AS (
    SELECT device_id, meter, CAST(taken_at AS TIMESTAMP) AS t, value
    FROM sqlite_scan('{path}', 'readings') WHERE meter IN ('mono', 'color')
), b AS (
    SELECT unnest(generate_series(TIMESTAMP '2026-01-01', TIMESTAMP '2027-01-01', INTERVAL 1 MONTH)) AS boundary
), near AS (
    SELECT r.device_id, r.meter, b.boundary,
           arg_min(r.value, abs(epoch(r.t) - epoch(b.boundary)) * 2 + CASE WHEN r.t <= b.boundary THEN 0 ELSE 1 END)
               AS value
    FROM r JOIN b ON r.t BETWEEN b.boundary - INTERVAL 3 DAY AND b.boundary + INTERVAL 3 DAY
    GROUP BY ALL
)
SELECT device_id AS device, meter, strftime(boundary, '%Y-%m') AS month,
       lead(value) OVER (PARTITION BY device_id, meter ORDER BY boundary) - value AS usage
FROM near
QUALIFY usage IS NOT NULL
"""


def duckdb_year(path: Path) -> tuple[float, pd.DataFrame]:
    import duckdb  # noqa: PLC0415 - the bench extra
    import duckdb_extension_sqlite_scanner  # noqa: PLC0415 - the extension, from PyPI

    extension = next(Path(duckdb_extension_sqlite_scanner.__file__).parent.glob("extensions/*/*.duckdb_extension"))
    connection = duckdb.connect()
    connection.execute(f"LOAD '{extension}'")
    started = time.perf_counter()
    frame = connection.execute(DUCKDB_QUERY.format(path=path)).df()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, frame


async def month_drafts(path: Path, month: Period) -> tuple[float, int, int]:
    settings = Settings.model_validate({"storage": {"url": f"sqlite:///{path}"}})
    async with Store.open(settings.database_url) as store:
        started = time.perf_counter()
        result = await bill_month(store, settings, month, write=True, actor="bench", now=NOW)
        elapsed = time.perf_counter() - started
    return elapsed, len(result.saved), sum(len(d.lines) for d in result.drafts)


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


async def run_part(part: str, path: Path, devices: int, out: Path) -> None:
    """One measured part in this process; prints one JSON line with its figures."""
    figures: dict[str, object] = {}
    if part == "meterd":
        seconds, usage = await meterd_year(path, devices)
        usage.to_parquet(out)
        figures = {"seconds": seconds, "lines": len(usage)}
    elif part == "duckdb":
        seconds, usage = duckdb_year(path)
        usage.to_parquet(out)
        figures = {"seconds": seconds, "lines": len(usage)}
    else:
        seconds, invoices, lines = await month_drafts(path, Period.month(2026, 11))
        figures = {"seconds": seconds, "invoices": invoices, "lines": lines}
    figures |= {"rss_mb": _rss_mb(resource.RUSAGE_SELF), "child_rss_mb": _rss_mb(resource.RUSAGE_CHILDREN)}
    print(json.dumps(figures))


def _part(part: str, path: Path, devices: int, out: Path) -> dict[str, float]:
    """Each part in its own process, so each peak RSS is its own (DuckDB's memory is not meterd's)."""
    import subprocess  # noqa: PLC0415 - the driver only

    command = [
        sys.executable,
        __file__,
        "--part",
        part,
        "--db",
        str(path),
        "--devices",
        str(devices),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/meterd-billing-bench.db"))
    parser.add_argument("--part", choices=["meterd", "duckdb", "month"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        await run_part(args.part, args.db, args.devices, args.out)
        return
    meta = args.db.with_suffix(".json")
    if not args.db.exists() or not meta.exists() or json.loads(meta.read_text())["devices"] != args.devices:
        print(f"building {args.db} ({args.devices:,} devices x 2 meters x {DAYS} days) …", flush=True)
        started = time.perf_counter()
        await build(args.db, args.devices)
        print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
    rows = sqlite3.connect(args.db).execute("SELECT count(*) FROM readings").fetchone()[0]
    print(f"store: {rows:,} reading rows, {args.devices:,} devices, {args.devices // DEVICES_PER_CUSTOMER:,} customers")

    ours_file, theirs_file = args.db.with_suffix(".meterd.parquet"), args.db.with_suffix(".duckdb.parquet")
    ours = _part("meterd", args.db, args.devices, ours_file)
    theirs = _part("duckdb", args.db, args.devices, theirs_file)
    merged = pd.read_parquet(ours_file).merge(
        pd.read_parquet(theirs_file), on=["device", "meter", "month"], how="outer", suffixes=("_meterd", "_duckdb")
    )
    different = int((merged["usage_meterd"] != merged["usage_duckdb"]).sum())
    print(
        f"year of monthly usage, meterd (load + compute)  {ours['seconds']:7.2f} s   {ours['lines']:,.0f} lines   "
        f"peak RSS {ours['rss_mb']:,.0f} MB (+ reader child {ours['child_rss_mb']:,.0f} MB)"
    )
    print(
        f"year of monthly usage, DuckDB (one SQL query)   {theirs['seconds']:7.2f} s   {theirs['lines']:,.0f} lines   "
        f"peak RSS {theirs['rss_mb']:,.0f} MB"
    )
    print(f"meterd / DuckDB = {ours['seconds'] / theirs['seconds']:.2f}   figures that differ: {different}")
    month = _part("month", args.db, args.devices, args.db.with_suffix(".unused"))
    print(
        f"draft invoices 2026-11, computed and written  {month['seconds']:7.2f} s   {month['invoices']:,.0f} invoices, "
        f"{month['lines']:,.0f} lines   peak RSS {month['rss_mb']:,.0f} MB "
        f"(+ reader child {month['child_rss_mb']:,.0f} MB)"
    )


if __name__ == "__main__":
    asyncio.run(main())
