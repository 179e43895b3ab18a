"""Usage reports billing staff open (CSV, and an HTML page with a daily-usage chart) and the ERP export.

Both come from the invoice's own lines, so the report says exactly what was billed: the
reads of every device x meter, estimated or not, and the pages between them.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from billing.cells import write_rows
from billing.invoicing import USAGE, InvoiceLine, line_pairs
from billing.periods import Period

_TEMPLATES = Environment(loader=PackageLoader("billing.documents"), autoescape=select_autoescape(["html", "j2"]))


@dataclass(frozen=True, slots=True)
class UsageRow:
    customer: str
    equipment_id: str
    meter: str
    start_date: str
    start_read: int | None
    start_estimated: bool
    end_date: str
    end_read: int | None
    end_estimated: bool
    usage: int
    segments: int
    held_readings: int
    invoice: str
    segment: int = 1  # which segment of the device's period (a reset starts a new one)
    start_note: str = ""  # "first read" (installed in the period), "reset" (restarted from it), "meter not reported"


def usage_rows(lines: Iterable[InvoiceLine], invoice: str) -> list[UsageRow]:
    """One row per device x meter x held piece x segment of the usage lines (pooled lines split into devices).

    On every row end_read - start_read = usage (a reset starts a new row at the restart value).
    """
    rows = []
    for line in lines:
        if line.kind != USAGE or line.adjustment:
            continue
        for device, pair in line_pairs(line):
            start, end = pair["start"], pair["end"]
            rows.append(
                UsageRow(
                    customer=line.customer,
                    equipment_id=device,
                    meter=pair.get("meter") or line.meter or "",
                    start_date=str(start["at"] or "")[:10],
                    start_read=start["value"],
                    start_estimated=start["estimated"],
                    end_date=str(end["at"] or "")[:10],
                    end_read=end["value"],
                    end_estimated=end["estimated"],
                    usage=pair["pages"],
                    segments=pair["segments"],
                    held_readings=pair["held_readings"],
                    invoice=invoice,
                    segment=pair["segment"],
                    start_note=_start_note(pair),
                )
            )
    return sorted(rows, key=lambda row: (row.customer, row.equipment_id, row.meter, row.start_date, row.segment))


def _start_note(pair: dict[str, Any]) -> str:
    """What the start read is, where it is not an ordinary boundary read (an estimate has its own column)."""
    if pair.get("reports"):
        return "meter not reported"
    if pair["start"].get("restart"):
        return "reset"
    return "first read" if pair["start"].get("first_read") else ""


def usage_csv(rows: Sequence[UsageRow]) -> str:
    out = io.StringIO()
    write_rows(out, [f.name for f in fields(UsageRow)], (_csv_values(row) for row in rows))
    return out.getvalue()


def erp_csv(rows: Sequence[UsageRow]) -> str:
    """Period meter reads per device for an ERP import (e-automate style): one read pair per segment and line."""
    out = io.StringIO()
    # segment and start_note come last: an import that maps the first columns by position keeps working.
    write_rows(
        out,
        [
            "equipment_id",
            "customer",
            "meter",
            "start_date",
            "start_read",
            "end_date",
            "end_read",
            "usage",
            "estimated",
            "invoice",
            "segment",
            "start_note",
        ],
        (
            [
                row.equipment_id,
                row.customer,
                row.meter,
                row.start_date,
                _blank(row.start_read),
                row.end_date,
                _blank(row.end_read),
                row.usage,
                "Y" if row.start_estimated or row.end_estimated else "N",
                row.invoice,
                row.segment,
                row.start_note,
            ]
            for row in rows
        ),
    )
    return out.getvalue()


def _csv_values(row: UsageRow) -> list[object]:
    return [("Y" if value else "N") if isinstance(value, bool) else _blank(value) for value in astuple(row)]


def _blank(value: object) -> object:
    return "" if value is None else value


def daily_usage(reads: pd.DataFrame, period: Period) -> pd.DataFrame:
    """Pages per day per device x meter from ``device``, ``meter``, ``taken_at``, ``value`` rows.

    A day's usage is its last read minus the previous day's; a step back (reset, swap) counts 0.
    """
    if reads.empty:
        return pd.DataFrame(columns=["day", "device", "meter", "pages"])
    frame = reads.assign(day=reads["taken_at"].dt.tz_convert("UTC").dt.floor("D"))
    last = (
        frame.sort_values("taken_at").groupby(["device", "meter", "day"], observed=True)["value"].last().reset_index()
    )
    last["pages"] = last.groupby(["device", "meter"], observed=True)["value"].diff().clip(lower=0)
    start, end = pd.Timestamp(period.start, tz="UTC"), pd.Timestamp(period.end, tz="UTC")
    inside = last[(last["day"] >= start) & (last["day"] < end) & last["pages"].notna()]
    return inside[["day", "device", "meter", "pages"]].reset_index(drop=True)


def usage_chart(daily: pd.DataFrame, title: str) -> bytes:
    """A PNG line chart of pages per day, one line per device x meter."""
    # Imported here, and without pyplot (no screen, no global figure registry): matplotlib costs
    # ~60 MB resident, and a daemon that never draws a chart should not carry it.
    from matplotlib.figure import Figure  # noqa: PLC0415

    figure = Figure(figsize=(9, 3.6), dpi=100)
    axes = figure.subplots()
    for (device, meter), group in daily.groupby(["device", "meter"], sort=True, observed=True):
        axes.plot(group["day"], group["pages"], marker=".", linewidth=1, label=f"{device} {meter}")
    axes.set_title(title)
    axes.set_ylabel("pages per day")
    axes.grid(visible=True, alpha=0.3)
    if not daily.empty:
        axes.legend(fontsize=7, loc="upper left", ncol=2)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def usage_html(*, customer: str, period: Period, rows: Sequence[UsageRow], chart_png: bytes, seller: str) -> str:
    template = _TEMPLATES.get_template("usage_report.html.j2")
    return template.render(
        customer=customer,
        period=period.label,
        rows=rows,
        total=sum(row.usage for row in rows),
        chart=base64.b64encode(chart_png).decode("ascii"),
        seller=seller,
    )
