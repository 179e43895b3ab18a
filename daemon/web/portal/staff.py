"""The staff side of the portal, on the console's door: invite a customer's contact, decide change requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from billing.documents.i18n import Words
from daemon.services import portal
from daemon.storage.billing import BillingStore
from daemon.storage.portal import ChangeRequestNotFoundError, PortalStore
from daemon.web.pages import ConsoleDep, Form, User, _see, _text

router = APIRouter()
Id = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/customer-portal")
async def queue(request: Request, user: User, console: ConsoleDep, invited: str = "") -> Response:
    user.require("portal.manage")
    context = console.context
    customers = sorted((await BillingStore(context.store).book()).customers.values(), key=lambda c: c.code)
    return console.render(
        request,
        "portal/queue.html",
        user,
        requests=await portal.open_requests(context.store),
        customers=customers,
        invited=invited,
    )


@router.post("/customer-portal/invitations")
async def invite(user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("portal.manage")
    context = console.context
    email = _text(form, "email")
    await portal.invite(
        context.store,
        context.settings,
        context.accounts,
        _text(form, "customer"),
        email,
        actor=user.principal.login,
        now=context.clock(),
    )
    return _see(f"/customer-portal?invited={email}")


@router.get("/change-requests/{request_id}")
async def change_request(request: Request, request_id: Id, user: User, console: ConsoleDep) -> Response:
    user.require("portal.manage")
    found = await portal.request_of(console.context.store, request_id)
    words = Words(None)
    rows = [
        (words.field(field), portal.shown(found.before.get(field)), portal.shown(value), field in proof_fields)
        for proof_fields in [console.context.settings.portal.proof_fields]
        for field, value in found.after.items()
    ]
    return console.render(request, "portal/change_request.html", user, request_=found, rows=rows)


@router.get("/change-requests/{request_id}/proof")
async def proof(request_id: Id, user: User, console: ConsoleDep) -> Response:
    user.require("portal.manage")
    found = await PortalStore(console.context.store).proof(request_id)
    if found is None:
        raise ChangeRequestNotFoundError(f"change request {request_id} has no document attached")
    name, media, body = found
    safe = "".join(c for c in name if c.isalnum() or c in "._-") or "proof"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}"'})


@router.post("/change-requests/{request_id}/decision")
async def decide(request_id: Id, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("portal.manage")
    context = console.context
    await portal.decide_change(
        context.store,
        context.settings,
        request_id,
        approve=_text(form, "decision") == "approve",
        reason=_text(form, "reason", required=False),
        actor=user.principal.login,
        now=context.clock(),
    )
    return _see("/customer-portal")
