"""Importing a 50,000-customer CSV: check every row, then write them all in one transaction.

    .venv/bin/python bench/csv_import.py [--rows 50000]

Generates customers.csv and contacts.csv (one billing contact each) in a temporary
directory and times meterd's import into a new SQLite store: reading and checking every row
(pydantic, tax-number and e-mail rules), the dry run (applied and rolled back), the real run.
The reference, in the same run: the same files through csv.DictReader and one executemany
into a plain SQLite table of the same columns, which checks nothing. Prints both and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import resource
import sqlite3
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from billing.exchange import CONTACT_COLUMNS, CUSTOMER_COLUMNS, customers_from, read_table
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store


def _files(rows: int) -> tuple[bytes, bytes]:
    cards, people = io.StringIO(newline=""), io.StringIO(newline="")
    card_writer = csv.DictWriter(cards, fieldnames=CUSTOMER_COLUMNS)
    people_writer = csv.DictWriter(people, fieldnames=CONTACT_COLUMNS)
    card_writer.writeheader()
    people_writer.writeheader()
    for n in range(rows):
        code = f"C{n:06d}"
        card_writer.writerow(
            dict.fromkeys(CUSTOMER_COLUMNS, "")
            | {
                "code": code,
                "legal_name": f"Kunde {n} Büromaschinen GmbH",
                "country": "DE",
                "street": f"Hauptstraße {n}",
                "city": "Berlin",
                "postal_code": "10115",
                "address_country": "DE",
                "currency": "EUR",
                "tax_scheme": "other",
                "payment_terms_days": "30",
                "sites": f"site-{n}",
            }
        )
        people_writer.writerow(
            {
                "customer": code,
                "name": f"Kontakt {n}",
                "role": "AP",
                "email": f"ap{n}@example.com",
                "phone": "",
                "billing": "yes",
            }
        )
    return cards.getvalue().encode("utf-8-sig"), people.getvalue().encode("utf-8-sig")


def _reference(cards: bytes, path: Path) -> float:
    started = time.perf_counter()
    rows = list(csv.DictReader(io.StringIO(cards.decode("utf-8-sig"), newline="")))
    with closing(sqlite3.connect(path)) as db:
        db.execute(f"CREATE TABLE customers ({', '.join(f'{c} TEXT' for c in CUSTOMER_COLUMNS)})")
        marks = ", ".join("?" for _ in CUSTOMER_COLUMNS)
        db.executemany(f"INSERT INTO customers VALUES ({marks})", [[r[c] for c in CUSTOMER_COLUMNS] for r in rows])
        db.commit()
    return time.perf_counter() - started


async def _meterd(cards: bytes, people: bytes, url: str) -> dict[str, float]:
    figures = {}
    started = time.perf_counter()
    parsed, problems = customers_from(
        read_table(cards, "customers.csv", CUSTOMER_COLUMNS), read_table(people, "contacts.csv", CONTACT_COLUMNS)
    )
    assert not problems, problems[:3]
    figures["read and check every row"] = time.perf_counter() - started
    async with Store.open(url) as store:
        billing = BillingStore(store)
        for label, dry in (("dry run (applied, rolled back)", True), ("import, one transaction", False)):
            started = time.perf_counter()
            outcome = await billing.import_records(parsed, [], [], actor="bench", now=datetime.now(UTC), dry_run=dry)
            figures[label] = time.perf_counter() - started
            assert len(outcome.added) == len(parsed)
    return figures


def main(rows: int) -> None:
    cards, people = _files(rows)
    with tempfile.TemporaryDirectory() as tmp:
        reference = _reference(cards, Path(tmp) / "plain.db")
        figures = asyncio.run(_meterd(cards, people, f"sqlite:///{Path(tmp) / 'meterd.db'}"))
    print(f"{rows:,} customers ({len(cards) / 1e6:.1f} MB) + {rows:,} contacts")
    for label, seconds in figures.items():
        print(f"  meterd {label:<34} {seconds:7.2f} s  {rows / seconds:9,.0f} rows/s")
    total = figures["read and check every row"] + figures["import, one transaction"]
    print(f"  reference: csv.DictReader + one executemany, nothing checked {reference:7.2f} s")
    print(f"  meterd check + import / reference = {total / reference:.1f}")
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    main(parser.parse_args().rows)
