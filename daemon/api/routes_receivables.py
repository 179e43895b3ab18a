"""What customers owe: open and overdue invoices, payments, instalment plans, reminder notices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from billing.receivables import AgeBucket, Instalment, Standing, aging
from daemon.api.paging import Limit, Offset, Page, page
from daemon.api.security import Context, requires
from daemon.services.accounts import Principal
from daemon.services.billing import queue_reminders
from daemon.storage.receivables import ReceivablesStore, Reminder

router = APIRouter(tags=["receivables"])
Reader = Annotated[Principal, requires("invoices.read")]
Writer = Annotated[Principal, requires("invoices.write")]
Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/receivables", summary="finalised invoices with money open, and how much of it is late")
async def receivables(
    *,
    _who: Reader,
    context: Context,
    as_of: Annotated[date | None, Query(description="default: today (UTC)")] = None,
    overdue: bool = False,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[Standing]:
    found = await ReceivablesStore(context.store).standings(as_of=as_of or context.clock().date())
    return page([s for s in found if s.overdue > 0 or not overdue], offset, limit)


@router.get("/receivables/aging", summary="overdue money by days overdue (0-30, 31-60, 61-90, 90+), per currency")
async def receivables_aging(
    *, _who: Reader, context: Context, as_of: Annotated[date | None, Query(description="default: today (UTC)")] = None
) -> list[AgeBucket]:
    return aging(await ReceivablesStore(context.store).standings(as_of=as_of or context.clock().date()))


class PaymentIn(BaseModel):
    amount: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    received_on: date
    method: str = Field(default="bank_transfer", min_length=1, max_length=32)
    reference: str = Field(default="", max_length=256)


@router.post("/invoices/{invoice_id}/payments", status_code=201, summary="record money received")
async def pay(invoice_id: Id, body: PaymentIn, who: Writer, context: Context) -> Standing:
    return await ReceivablesStore(context.store).record_payment(
        invoice_id,
        body.amount,
        received_on=body.received_on,
        method=body.method,
        reference=body.reference,
        actor=who.login,
        now=context.clock(),
    )


class PlanIn(BaseModel):
    parts: int = Field(ge=2, le=60)
    first: date
    every_days: int = Field(default=30, ge=1, le=366)


@router.post("/invoices/{invoice_id}/instalments", summary="split what is open into instalments")
async def instalments(invoice_id: Id, body: PlanIn, who: Writer, context: Context) -> list[Instalment]:
    plan, _ = await ReceivablesStore(context.store).split_open(
        invoice_id, parts=body.parts, first=body.first, every_days=body.every_days, actor=who.login, now=context.clock()
    )
    return plan


@router.get("/reminders", summary="reminder notices, queued for sending or sent")
async def reminders(
    _who: Reader, context: Context, status: Annotated[str | None, Query(pattern="^(queued|sent|cancelled)$")] = None
) -> list[Reminder]:
    return await ReceivablesStore(context.store).reminders(status=status)


@router.post("/reminders/queue", summary="queue the reminders due today (the daemon does this daily too)")
async def queue(who: Writer, context: Context) -> list[int]:
    return await queue_reminders(context.store, context.settings, now=context.clock(), actor=who.login)


@router.post(
    "/reminders/{reminder_id}/sent", status_code=204, response_class=Response, summary="mark a reminder as sent"
)
async def sent(reminder_id: Id, who: Writer, context: Context) -> None:
    await ReceivablesStore(context.store).mark_sent(reminder_id, actor=who.login, now=context.clock())
