"""The portal's pages: log in, set a password from a link, devices and readings, invoices, balance, company data.

The staff side (invitations, the change-request queue) is in daemon.web.portal.staff, on the console's door.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from starlette.datastructures import FormData, UploadFile

from billing.periods import Period, add_months
from daemon.api.headers import POLICY as REPORT_POLICY
from daemon.services import portal
from daemon.services.accounts import AuthenticationError
from daemon.web import i18n
from daemon.web.console import Console
from daemon.web.pages import N_, _local, _see, _text
from daemon.web.session import LANGUAGE_COOKIE, PRE_LOGIN_COOKIE, Sessions, WebUser

router = APIRouter()
Id = Annotated[int, Path(ge=1, le=2**62)]
Key = Annotated[str, Path(min_length=1, max_length=128)]
PORTAL_COOKIE: Final = "meterd_portal"
HOME: Final = "/portal/"
# Shown from data on the portal's pages (translated at render time).
TRANSLATED_WORDS: Final = (
    N_("open"),
    N_("approved"),
    N_("rejected"),
    N_("invoice"),
    N_("credit_note"),
    N_("bank_transfer"),
    N_("direct_debit"),
    N_("card"),
    N_("cash"),
    N_("cheque"),
)


@dataclass(frozen=True, slots=True)
class Door:
    """The portal's own sessions beside the console's renderer."""

    console: Console
    sessions: Sessions


def door_of(request: Request) -> Door:
    door: Door = request.app.state.portal
    return door


DoorDep = Annotated[Door, Depends(door_of)]


async def portal_user(request: Request) -> WebUser:
    return await door_of(request).sessions.user(request)


User = Annotated[WebUser, Depends(portal_user)]


async def portal_form(request: Request) -> FormData:
    before_login = request.url.path in {"/portal/login", "/portal/reset"} or request.url.path.startswith(
        "/portal/password/"
    )
    return await door_of(request).sessions.checked_form(request, before_login=before_login)


Form = Annotated[FormData, Depends(portal_form)]


async def _scope(door: Door, user: WebUser) -> portal.Scope:
    return await portal.scope_of(door.console.context.store, user.principal)


def _pre_login_page(request: Request, door: Door, template: str, http_status: int = 200, **values: object) -> Response:
    binding = door.sessions.pre_login(request)
    response = door.console.render(
        request, template, None, http_status=http_status, csrf=door.sessions.csrf_for(binding), **values
    )
    response.set_cookie(
        PRE_LOGIN_COOKIE, binding, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https"
    )
    return response


async def _upload(form: FormData, name: str) -> tuple[str, str, bytes] | None:
    """A file sent with the form (name, type, bytes), or None for an empty file field; its spool closed either way."""
    sent = form.get(name)
    if not isinstance(sent, UploadFile):
        return None
    try:
        body = await sent.read() if sent.filename else b""
    finally:
        await sent.close()
    return (sent.filename or name, sent.content_type or "application/octet-stream", body) if body else None


# -- the door --------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, door: DoorDep, reason: str = "", next: str = HOME) -> Response:  # noqa: A002
    return _pre_login_page(request, door, "portal/login.html", reason=reason, next=_local(next))


@router.post("/login")
async def login(request: Request, door: DoorDep, form: Form) -> Response:
    target = _local(_text(form, "next", required=False) or HOME)
    response = _see(target if target.startswith("/portal/") else HOME)
    login_, password, code = (_text(form, name, required=False) for name in ("login", "password", "code"))
    try:
        await door.sessions.start(response, request, login_.lower(), password, code)
    except AuthenticationError as err:
        status = 429 if err.code in {"locked", "too_many_failures"} else 401
        return _pre_login_page(request, door, "portal/login.html", http_status=status, reason=str(err), next=HOME)
    return response


@router.post("/logout")
async def logout(user: User, door: DoorDep, _form: Form) -> Response:
    response = _see("/portal/login")
    await door.sessions.end(response, user)
    return response


@router.post("/language")
async def language(request: Request, user: User, form: Form) -> Response:  # noqa: ARG001 - logged in to choose
    chosen = _text(form, "language")
    response = _see(_local(request.headers.get("referer", HOME)))
    if chosen in i18n.LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 86_400, httponly=True, samesite="strict", path="/")
    return response


@router.get("/password/{token}")
async def password_page(request: Request, token: str, door: DoorDep) -> Response:
    try:
        who = await door.console.context.accounts.link_user(token)
    except AuthenticationError as err:
        return _pre_login_page(request, door, "portal/reset.html", http_status=410, reason=str(err), sent=False)
    return _pre_login_page(request, door, "portal/password.html", token=token, who=who, reason="")


@router.post("/password/{token}")
async def set_password(request: Request, token: str, door: DoorDep, form: Form) -> Response:
    accounts = door.console.context.accounts
    password = _text(form, "password", required=False)
    try:
        who = await accounts.link_user(token)
        if password != _text(form, "confirm", required=False):
            return _pre_login_page(
                request,
                door,
                "portal/password.html",
                http_status=422,
                token=token,
                who=who,
                reason=i18n.gettext("The two passwords differ; type the same one twice."),
            )
        enrollment = await accounts.use_link(token, password, second_factor=form.get("second_factor") == "on")
    except AuthenticationError as err:
        return _pre_login_page(request, door, "portal/reset.html", http_status=410, reason=str(err), sent=False)
    return door.console.render(request, "portal/password_set.html", None, who=who, enrollment=enrollment)


@router.get("/reset")
async def reset_page(request: Request, door: DoorDep) -> Response:
    return _pre_login_page(request, door, "portal/reset.html", reason="", sent=False)


@router.post("/reset")
async def reset(request: Request, door: DoorDep, form: Form) -> Response:
    context = door.console.context
    await portal.reset_password(
        context.store, context.settings, context.accounts, _text(form, "email"), now=context.clock()
    )
    # The same answer whether the address has an account or not: the form tells nobody who is a customer.
    return _pre_login_page(request, door, "portal/reset.html", reason="", sent=True)


# -- what the customer sees ------------------------------------------------------------------


@router.get("/")
async def home(request: Request, user: User, door: DoorDep) -> Response:
    context = door.console.context
    scope = await _scope(door, user)
    today = context.clock().date()
    held = await portal.devices(context.store, scope, today=today)
    owed = await portal.balance(context.store, scope, today=today)
    card = await portal.card(context.store, scope)
    return door.console.render(request, "portal/home.html", user, devices=held, balance=owed, card=card, scope=scope)


@router.get("/devices/{key}")
async def device(request: Request, key: Key, user: User, door: DoorDep, reason: str = "") -> Response:
    context = door.console.context
    scope = await _scope(door, user)
    now = context.clock()
    held = await portal.device(context.store, scope, key, today=now.date())
    history = await portal.meter_history(context.store, scope, key, now=now)
    return door.console.render(
        request,
        "portal/device.html",
        user,
        device=held,
        history=history[:200],
        today=now.date().isoformat(),
        earliest=(now.date() - timedelta(days=62)).isoformat(),
        reason=reason,
    )


@router.post("/devices/{key}/readings")
async def submit_reading(key: Key, user: User, door: DoorDep, form: Form) -> Response:
    context = door.console.context
    raw_value = _text(form, "value")
    if not raw_value.isdigit():
        raise portal.PortalError("value: the counter as the device shows it, a whole number of pages")
    try:
        taken_on = date.fromisoformat(_text(form, "taken_on"))
    except ValueError as err:
        raise portal.PortalError("date: a day such as 2026-12-01") from err
    upload = await _upload(form, "photo")
    picture = upload[2] if upload else None
    await portal.submit_reading(
        context.store,
        context.settings,
        await _scope(door, user),
        key,
        meter=_text(form, "meter", required=False) or "total",
        value=int(raw_value),
        taken_on=taken_on,
        photo=picture,
        now=context.clock(),
    )
    return _see(f"/portal/devices/{key}?reason=sent")


@router.get("/invoices")
async def invoices(request: Request, user: User, door: DoorDep) -> Response:
    context = door.console.context
    found = await portal.invoices(context.store, await _scope(door, user))
    return door.console.render(request, "portal/invoices.html", user, invoices=found)


@router.get("/invoices/{invoice_id}/document")
async def document(invoice_id: Id, user: User, door: DoorDep, format: str = "pdf") -> Response:  # noqa: A002
    context = door.console.context
    if format != "ubl":
        context.expensive.spend(user.principal.login, context.clock())  # a PDF costs CPU, as on the API
    found = await portal.document(
        context.store, context.settings, await _scope(door, user), invoice_id, "ubl" if format == "ubl" else "pdf"
    )
    disposition = f'attachment; filename="{found.filename}"'
    return Response(found.body, media_type=found.media_type, headers={"Content-Disposition": disposition})


@router.get("/balance")
async def balance(request: Request, user: User, door: DoorDep) -> Response:
    context = door.console.context
    owed = await portal.balance(context.store, await _scope(door, user), today=context.clock().date())
    return door.console.render(request, "portal/balance.html", user, balance=owed)


@router.get("/usage")
async def usage(request: Request, user: User, door: DoorDep, period: str = "", customer: str = "") -> Response:
    context = door.console.context
    scope = await _scope(door, user)
    label = period or add_months(context.clock().date().replace(day=1), -1).strftime("%Y-%m")
    months = [add_months(context.clock().date().replace(day=1), -n).strftime("%Y-%m") for n in range(1, 13)]
    if not period:
        return door.console.render(
            request, "portal/usage.html", user, months=months, period=label, codes=sorted(scope.codes), scope=scope
        )
    page = await portal.usage(
        context.store, context.settings, scope, customer or scope.customer, period=Period.parse_month(label), fmt="html"
    )
    # The report is the API's page (inline style, a data: chart): it keeps the API's policy, which runs no script.
    return Response(page, media_type="text/html", headers={"Content-Security-Policy": REPORT_POLICY})


@router.get("/company")
async def company(request: Request, user: User, door: DoorDep, reason: str = "") -> Response:
    context = door.console.context
    scope = await _scope(door, user)
    card = await portal.card(context.store, scope)
    requests = await portal.change_requests(context.store, scope)
    return door.console.render(
        request,
        "portal/company.html",
        user,
        card=card,
        requests=requests,
        proof_fields=context.settings.portal.proof_fields,
        reason=reason,
    )


@router.post("/company")
async def request_change(user: User, door: DoorDep, form: Form) -> Response:
    context = door.console.context
    scope = await _scope(door, user)
    card = (await portal.card(context.store, scope)).model_dump(mode="json")
    changes: dict[str, object] = {
        field: _text(form, field, required=False) or None
        for field in ("legal_name", "trade_name", "tax_id", "electronic_address")
    }
    changes["legal_name"] = changes["legal_name"] or card["legal_name"]
    changes["payment_method"] = _text(form, "payment_method", required=False) or card["payment_method"]
    changes["address"] = {
        **card["address"],
        **{part: _text(form, f"address_{part}", required=False) for part in ("street", "postal_code", "city")},
    }
    attached = await _upload(form, "proof")
    await portal.request_change(context.store, context.settings, scope, changes, proof=attached, now=context.clock())
    return _see("/portal/company?reason=sent")
