"""CSV files of customer cards, contacts, assignments and devices, both ways; the usage report billing staff open."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from billing.periods import Period
from daemon.api.security import Context, requires
from daemon.services.accounts import Principal
from daemon.services.billing import usage_report
from daemon.services.exchange import (
    ASSIGNMENTS,
    CONTACTS,
    CUSTOMERS,
    DEVICES,
    export_tables,
    import_tables,
    read_tables,
)
from daemon.storage.billing import ImportOutcome

router = APIRouter()
Reader = Annotated[Principal, requires("customers.read")]
Writer = Annotated[Principal, requires("customers.write")]
InvoiceReader = Annotated[Principal, requires("invoices.read")]
_CSV: dict[int | str, dict[str, Any]] = {200: {"content": {"text/csv": {"schema": {"type": "string"}}}}}
_MAX_FILE = 50 * 1024 * 1024


@router.get(
    "/exchange/{table}",
    tags=["customers"],
    summary="one of the four CSV files",
    response_class=Response,
    responses=_CSV,
)
async def export(
    table: Literal["customers", "contacts", "assignments", "devices"], _who: Reader, context: Context
) -> Response:
    files = await export_tables(context.store, context.settings)
    return Response(files[f"{table}.csv"], media_type="text/csv; charset=utf-8")


class ImportRequest(BaseModel):
    customers: str = Field(max_length=_MAX_FILE, description=f"{CUSTOMERS}, as text")
    contacts: str = Field(max_length=_MAX_FILE, description=CONTACTS)
    assignments: str | None = Field(default=None, max_length=_MAX_FILE, description=ASSIGNMENTS)
    devices: str | None = Field(default=None, max_length=_MAX_FILE, description=DEVICES)
    dry_run: bool = False


@router.post("/exchange/import", tags=["customers"], summary="check every row, then apply all or nothing")
async def import_files(body: ImportRequest, who: Writer, context: Context) -> ImportOutcome:
    texts = {CUSTOMERS: body.customers, CONTACTS: body.contacts, ASSIGNMENTS: body.assignments, DEVICES: body.devices}
    files = {name: text.encode("utf-8") for name, text in texts.items() if text is not None}
    tables = read_tables(files, context.settings)
    return await import_tables(
        context.store, context.settings, tables, actor=who.login, now=context.clock(), dry_run=body.dry_run
    )


@router.get(
    "/reports/usage",
    tags=["invoices"],
    summary="a customer's usage for a month: CSV, or HTML with a chart",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}}}
    },
)
async def usage(
    _who: InvoiceReader,
    context: Context,
    customer: Annotated[str, Query(min_length=1, max_length=64)],
    period: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", examples=["2026-10"])],
    format: Literal["csv", "html"] = "html",  # noqa: A002 - the query word people type
) -> Response:
    key = (customer, period, format)
    stamp, report = await context.expensive.kept(context.store, key)
    if report is None:
        context.expensive.spend(_who.login, context.clock())  # only what is made anew costs
        report = await usage_report(context.store, context.settings, customer, Period.parse_month(period), format)
        context.expensive.keep(key, stamp, report)
    return Response(report, media_type="text/csv; charset=utf-8" if format == "csv" else "text/html; charset=utf-8")
