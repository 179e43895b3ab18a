"""The customer portal over the API: a portal user's own data (``portal``), invitations and the queue (staff).

A portal user's devices, readings, invoices, balance and change requests need ``portal``; invitations
and the change-request queue need ``portal.manage``.

Every customer route reads through daemon.services.portal's Scope: another customer's id is a 404.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import Response
from pydantic import BaseModel, Field

from billing.receivables import Instalment, Standing
from daemon.api.security import Context, requires
from daemon.services import portal
from daemon.services.accounts import Principal
from daemon.storage.billing import InvoiceRecord
from daemon.storage.portal import ChangeRequest

router = APIRouter(tags=["portal"])
Customer = Annotated[Principal, requires("portal")]
Staff = Annotated[Principal, requires("portal.manage")]
Id = Annotated[int, Path(ge=1, le=2**62)]
DeviceKey = Annotated[str, Path(min_length=1, max_length=128)]


class ReadingOut(BaseModel):
    id: str
    taken_at: datetime
    source: str
    meters: dict[str, int]


class ReadingIn(BaseModel):
    meter: str = Field(default="total", max_length=32)
    value: int = Field(ge=0, le=10**12)
    taken_on: date


class BalanceOut(BaseModel):
    standings: list[Standing]
    plans: dict[int, list[Instalment]]


class ChangeIn(BaseModel):
    changes: dict[str, Any] = Field(description=f"new values of: {', '.join(portal.EDITABLE)}")


class InvitationIn(BaseModel):
    email: str = Field(min_length=3, max_length=64)


class InvitationOut(BaseModel):
    login: str
    link: str


class DecisionIn(BaseModel):
    approve: bool
    reason: str = Field(default="", max_length=2000)


@router.get("/portal/devices", summary="the devices your company holds")
async def devices(who: Customer, context: Context) -> list[portal.PortalDevice]:
    scope = await portal.scope_of(context.store, who)
    return await portal.devices(context.store, scope, today=context.clock().date())


@router.get("/portal/devices/{key}/readings", summary="a device's meter history, newest first")
async def readings(key: DeviceKey, who: Customer, context: Context) -> list[ReadingOut]:
    scope = await portal.scope_of(context.store, who)
    found = await portal.meter_history(context.store, scope, key, now=context.clock())
    return [
        ReadingOut(id=r.id, taken_at=r.taken_at, source=r.source, meters={m.meter: m.value for m in r.meters})
        for r in found
    ]


@router.post("/portal/devices/{key}/readings", status_code=201, summary="send a counter reading (not networked)")
async def submit(key: DeviceKey, body: ReadingIn, who: Customer, context: Context) -> dict[str, str]:
    scope = await portal.scope_of(context.store, who)
    reading_id = await portal.submit_reading(
        context.store,
        context.settings,
        scope,
        key,
        meter=body.meter,
        value=body.value,
        taken_on=body.taken_on,
        photo=None,
        now=context.clock(),
    )
    return {"id": reading_id}


@router.get("/portal/invoices", summary="your invoices and credit notes")
async def invoices(who: Customer, context: Context) -> list[InvoiceRecord]:
    return await portal.invoices(context.store, await portal.scope_of(context.store, who))


@router.get("/portal/invoices/{invoice_id}", summary="one of your invoices, with its lines")
async def invoice(invoice_id: Id, who: Customer, context: Context) -> InvoiceRecord:
    return await portal.invoice(context.store, await portal.scope_of(context.store, who), invoice_id)


@router.get(
    "/portal/invoices/{invoice_id}/document",
    summary="one of your invoices as PDF or UBL XML",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}, "application/xml": {}}}},
)
async def document(
    invoice_id: Id,
    who: Customer,
    context: Context,
    format: Literal["pdf", "ubl"] = "pdf",  # noqa: A002 - the query word people type
) -> Response:
    scope = await portal.scope_of(context.store, who)
    if format == "pdf":
        context.expensive.spend(who.login, context.clock())
    found = await portal.document(context.store, context.settings, scope, invoice_id, format)
    return Response(found.body, media_type=found.media_type)


@router.get("/portal/balance", summary="what is open, and the instalment plans")
async def balance(who: Customer, context: Context) -> BalanceOut:
    found = await portal.balance(context.store, await portal.scope_of(context.store, who), today=context.clock().date())
    return BalanceOut(standings=found.standings, plans=found.plans)


@router.get("/portal/change-requests", summary="your change requests")
async def my_requests(who: Customer, context: Context) -> list[ChangeRequest]:
    return await portal.change_requests(context.store, await portal.scope_of(context.store, who))


@router.get("/portal/change-requests/{request_id}", summary="one of your change requests")
async def my_request(request_id: Id, who: Customer, context: Context) -> ChangeRequest:
    scope = await portal.scope_of(context.store, who)
    return await portal.request_of(context.store, request_id, scope)


@router.post("/portal/change-requests", status_code=201, summary="ask for a change to your company's data")
async def request_change(body: ChangeIn, who: Customer, context: Context) -> ChangeRequest:
    scope = await portal.scope_of(context.store, who)
    request_id = await portal.request_change(
        context.store, context.settings, scope, body.changes, proof=None, now=context.clock()
    )
    return await portal.request_of(context.store, request_id, scope)


@router.post("/customers/{code}/invitations", status_code=201, summary="invite a customer's contact to the portal")
async def invite(
    code: Annotated[str, Path(min_length=1, max_length=64)], body: InvitationIn, who: Staff, context: Context
) -> InvitationOut:
    link = await portal.invite(
        context.store, context.settings, context.accounts, code, body.email, actor=who.login, now=context.clock()
    )
    return InvitationOut(login=body.email.lower(), link=link)


@router.get("/change-requests", summary="customers' change requests waiting for a decision")
async def queue(_who: Staff, context: Context) -> list[ChangeRequest]:
    return await portal.open_requests(context.store)


@router.get("/change-requests/{request_id}", summary="one change request: before and after")
async def request(request_id: Id, _who: Staff, context: Context) -> ChangeRequest:
    return await portal.request_of(context.store, request_id)


@router.post("/change-requests/{request_id}/decision", summary="approve (applied, mailed) or reject with a reason")
async def decide(request_id: Id, body: DecisionIn, who: Staff, context: Context) -> ChangeRequest:
    return await portal.decide_change(
        context.store,
        context.settings,
        request_id,
        approve=body.approve,
        reason=body.reason,
        actor=who.login,
        now=context.clock(),
    )
