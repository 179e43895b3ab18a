"""Customers, assignments, contracts, billing runs and invoices (with their PDF and UBL)."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from billing.contracts import Contract
from billing.customers import Customer
from billing.documents.pdf import to_pdf
from billing.documents.ubl import to_ubl
from billing.invoicing import BillingError, InvoiceLine
from billing.periods import Period
from daemon.api.paging import Limit, Offset, Page, page
from daemon.api.security import Context, requires
from daemon.services.accounts import Principal
from daemon.services.billing import bill_month, finalize_invoice, invoice_document, void_invoice
from daemon.storage.billing import BillingStore, Comment, CustomerNotFoundError, InvoiceRecord

router = APIRouter()
CustomerReader = Annotated[Principal, requires("customers.read")]
CustomerWriter = Annotated[Principal, requires("customers.write")]
ContractReader = Annotated[Principal, requires("contracts.read")]
ContractWriter = Annotated[Principal, requires("contracts.write")]
InvoiceReader = Annotated[Principal, requires("invoices.read")]
InvoiceWriter = Annotated[Principal, requires("invoices.write")]
Id = Annotated[int, Path(ge=1, le=2**62)]
Code = Annotated[str, Path(min_length=1, max_length=64)]
Month = Annotated[str, Field(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM", examples=["2026-10"])]


@router.get("/customers", tags=["customers"])
async def customers(
    _who: CustomerReader,
    context: Context,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Customer]:
    book = await BillingStore(context.store).book()
    return page([book.customers[code] for code in sorted(book.customers)], offset, limit)


@router.get("/customers/{code}", tags=["customers"])
async def customer(code: Code, _who: CustomerReader, context: Context) -> Customer:
    book = await BillingStore(context.store).book()
    if code not in book.customers:
        raise CustomerNotFoundError(f"no customer {code!r}")
    return book.customers[code]


@router.put("/customers/{code}", tags=["customers"], summary="create or replace a customer card")
async def save_customer(code: Code, body: Customer, who: CustomerWriter, context: Context) -> Customer:
    if body.code != code:
        raise BillingError(f"code: the card says {body.code!r} but the address says {code!r}")
    card = context.settings.customers.rules().check(body)
    await BillingStore(context.store).save_customers([card], actor=who.login, now=context.clock())
    return card


class CommentIn(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


@router.get("/customers/{code}/comments", tags=["customers"], summary="the customer's timeline, oldest first")
async def comments(code: Code, _who: CustomerReader, context: Context) -> list[Comment]:
    return await BillingStore(context.store).comments(code)


@router.post("/customers/{code}/comments", tags=["customers"], status_code=201, summary="add a note to the timeline")
async def comment(code: Code, body: CommentIn, who: CustomerWriter, context: Context) -> Comment:
    return await BillingStore(context.store).add_comment(code, body.text, author=who.login, now=context.clock())


class AssignmentRequest(BaseModel):
    device: str = Field(min_length=1, max_length=128)
    customer: str = Field(min_length=1, max_length=64)
    start: date
    end: date | None = Field(default=None, description="first day no longer held; open if unset")


class AssignmentOut(AssignmentRequest):
    warnings: list[str] = Field(
        default_factory=list,
        description="meters its contracts bill that the device has never reported, and what it does",
    )


@router.post("/assignments", tags=["customers"], status_code=201, summary="who holds a device, from which day")
async def assign(body: AssignmentRequest, who: CustomerWriter, context: Context) -> AssignmentOut:
    warnings = await BillingStore(context.store).assign(
        body.device, body.customer, start=body.start, end=body.end, actor=who.login, now=context.clock()
    )
    return AssignmentOut(**body.model_dump(), warnings=warnings)


@router.get("/contracts", tags=["contracts"])
async def contracts(
    _who: ContractReader,
    context: Context,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Contract]:
    return page((await BillingStore(context.store).book()).contracts, offset, limit)


@router.put("/contracts/{contract_id}", tags=["contracts"], summary="create or replace a contract with its versions")
async def save_contract(contract_id: Code, body: Contract, who: ContractWriter, context: Context) -> Contract:
    if body.id != contract_id:
        raise BillingError(f"id: the contract says {body.id!r} but the address says {contract_id!r}")
    context.settings.anomalies.tuned(body.detectors, where=f"contract {body.id}: detectors")
    await BillingStore(context.store).save_contract(body, actor=who.login, now=context.clock())
    return body


class BillingRequest(BaseModel):
    period: Month
    customers: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(default=None, max_length=1000)


class DraftOut(BaseModel):
    customer: str
    invoice_id: int | None = Field(description="unset in a preview, or where the month is finalised already")
    currency: str
    net: Decimal
    tax: Decimal
    total: Decimal
    lines: list[InvoiceLine]
    checks: list[str] = Field(description="what the person who finalises should look at")


class BillingOut(BaseModel):
    period: str
    drafts: list[DraftOut]
    already_finalised: list[str]


async def _bill(body: BillingRequest, who: Principal, context: Context, *, write: bool) -> BillingOut:
    result = await bill_month(
        context.store,
        context.settings,
        Period.parse_month(body.period),
        customers=body.customers,
        write=write,
        actor=who.login,
        now=context.clock(),
    )
    ids = {saved.draft.payer: saved.invoice_id for saved in result.saved}
    drafts = [
        DraftOut(
            customer=d.payer,
            invoice_id=ids.get(d.payer),
            currency=d.currency,
            net=d.totals.net,
            tax=d.totals.tax,
            total=d.totals.total,
            lines=d.lines,
            checks=d.checks,
        )
        for d in result.drafts
    ]
    return BillingOut(period=body.period, drafts=drafts, already_finalised=result.skipped)


@router.post("/billing/preview", tags=["invoices"], summary="a month's drafts, nothing written")
async def preview(body: BillingRequest, who: InvoiceReader, context: Context) -> BillingOut:
    return await _bill(body, who, context, write=False)


@router.post("/billing/run", tags=["invoices"], summary="write (or update) a month's drafts; idempotent")
async def run(body: BillingRequest, who: InvoiceWriter, context: Context) -> BillingOut:
    return await _bill(body, who, context, write=True)


@router.get("/invoices", tags=["invoices"])
async def invoices(
    *,
    _who: InvoiceReader,
    context: Context,
    period: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
    status: Literal["draft", "finalized", "voided"] | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[InvoiceRecord]:
    month = Period.parse_month(period) if period else None
    found = await BillingStore(context.store).invoices(period=month, status=status)
    return page(found, offset, limit)


@router.get("/invoices/{invoice_id}", tags=["invoices"], summary="an invoice with its lines and their provenance")
async def invoice(invoice_id: Id, _who: InvoiceReader, context: Context) -> InvoiceRecord:
    return await BillingStore(context.store).invoice(invoice_id)


class Finalising(BaseModel):
    override: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="finalise despite blocking items (held lines, missing reads, meters a device cannot supply): why "
        "(kept on the invoice and in the audit log)",
    )
    override_hold: str | None = Field(
        default=None, min_length=1, max_length=2000, description="the former name of override (still accepted)"
    )
    issue_date: date | None = None


class Voiding(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


@router.post("/invoices/{invoice_id}/finalize", tags=["invoices"], summary="the next gapless number, frozen")
async def finalize(invoice_id: Id, body: Finalising, who: InvoiceWriter, context: Context) -> InvoiceRecord:
    return await finalize_invoice(
        context.store,
        context.settings,
        invoice_id,
        actor=who.login,
        now=context.clock(),
        issue_date=body.issue_date,
        override=body.override or body.override_hold,
    )


@router.post("/invoices/{invoice_id}/void", tags=["invoices"], summary="void: returns the credit note")
async def void(invoice_id: Id, body: Voiding, who: InvoiceWriter, context: Context) -> InvoiceRecord:
    return await void_invoice(
        context.store, context.settings, invoice_id, reason=body.reason, actor=who.login, now=context.clock()
    )


@router.get(
    "/invoices/{invoice_id}/document",
    tags=["invoices"],
    summary="the invoice as PDF or UBL 2.1 XML (Peppol BIS Billing 3.0)",
    responses={
        200: {
            "content": {
                "application/pdf": {"schema": {"type": "string", "format": "binary"}},
                "application/xml": {"schema": {"type": "string"}},
            }
        }
    },
    response_class=Response,
)
async def document(
    invoice_id: Id,
    who: InvoiceReader,
    context: Context,
    format: Literal["pdf", "ubl"] = "pdf",  # noqa: A002 - the query word people type
) -> Response:
    doc = await invoice_document(context.store, context.settings, invoice_id)
    if format == "pdf":
        context.expensive.spend(who.login, context.clock())  # a PDF costs CPU: limited like the usage report
        return Response(await asyncio.to_thread(to_pdf, doc), media_type="application/pdf")
    return Response(to_ubl(doc), media_type="application/xml")
