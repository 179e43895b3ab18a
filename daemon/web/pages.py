"""The console's pages: log in and out, Today, anomaly review, billing run, invoices, receivables."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Final
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from billing.anomalies import Kind
from billing.documents.pdf import to_pdf
from billing.documents.ubl import to_ubl
from billing.invoicing import BillingError
from billing.lifecycle import DRAFT
from billing.periods import Period, add_months
from billing.receivables import aging
from daemon.services.accounts import AuthenticationError
from daemon.services.billing import bill_month, finalize_invoice, invoice_document
from daemon.services.review import ACTIONS, resolve
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.receivables import ReceivablesStore
from daemon.web import i18n
from daemon.web.console import Console, console_of
from daemon.web.session import CSRF_FIELD, LANGUAGE_COOKIE, PRE_LOGIN_COOKIE, SESSION_COOKIE, WebUser

router = APIRouter()
Id = Annotated[int, Path(ge=1, le=2**62)]
ConsoleDep = Annotated[Console, Depends(console_of)]


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "translate later"
    """Marks a word the templates translate at render time (pybabel extract -k N_)."""
    return message


# Words the templates show from data: review actions and invoice statuses.
TRANSLATED_WORDS: Final = (
    N_("approve"),
    N_("reset"),
    N_("swap"),
    N_("replace"),
    N_("dismiss"),
    N_("draft"),
    N_("finalized"),
    N_("voided"),
)
# What each review action does, in one sentence each (shown beside the buttons, translated).
ACTION_MEANING: Final = {
    "approve": N_("The readings are right as they are: usage is billed across the suspect point."),
    "reset": N_("The counter was reset (board or firmware): usage starts a new segment at the suspect reading."),
    "swap": N_("Another device now answers here: usage starts a new segment at the suspect reading."),
    "replace": N_("A manual reading with the value you enter replaces the suspect one, which stays out for good."),
    "dismiss": N_("A false alarm: nothing changes in the readings."),
}


async def current_user(request: Request) -> WebUser:
    return await console_of(request).sessions.user(request)


User = Annotated[WebUser, Depends(current_user)]


async def checked_form(request: Request) -> FormData:
    """The posted form, refused (403) unless it carries this session's (or this login page's) CSRF token."""
    form = await request.form()
    sessions = console_of(request).sessions
    binding = (
        request.cookies.get(SESSION_COOKIE) if request.url.path != "/login" else request.cookies.get(PRE_LOGIN_COOKIE)
    )
    sessions.check_csrf(binding, form.get(CSRF_FIELD))
    return form


Form = Annotated[FormData, Depends(checked_form)]


def _text(form: FormData, name: str, *, required: bool = True) -> str:
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise BillingError(f"{name}: required; fill it in and send the form again")
    return text


def _see(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# -- logging in ------------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request, console: ConsoleDep, reason: str = "", next: str = "/") -> Response:  # noqa: A002
    binding = console.sessions.pre_login(request)
    response = console.render(
        request, "login.html", None, csrf=console.sessions.csrf_for(binding), reason=reason, next=_local(next)
    )
    response.set_cookie(
        PRE_LOGIN_COOKIE, binding, httponly=True, samesite="strict", path="/", secure=request.url.scheme == "https"
    )
    return response


@router.post("/login")
async def login(request: Request, console: ConsoleDep, form: Form) -> Response:
    response = _see(_local(_text(form, "next", required=False) or "/"))
    login_, password, code = (_text(form, name, required=False) for name in ("login", "password", "code"))
    try:
        await console.sessions.start(response, request, login_, password, code)
    except AuthenticationError as err:
        binding = request.cookies.get(PRE_LOGIN_COOKIE, "")
        return console.render(
            request,
            "login.html",
            None,
            http_status=429 if err.code == "locked" else 401,
            csrf=console.sessions.csrf_for(binding),
            reason=str(err),
            next="/",
        )
    return response


@router.post("/logout")
async def logout(user: User, console: ConsoleDep, _form: Form) -> Response:
    response = _see("/login")
    await console.sessions.end(response, user)
    return response


@router.post("/language")
async def language(request: Request, user: User, form: Form) -> Response:  # noqa: ARG001 - logged in to choose
    chosen = _text(form, "language")
    response = _see(_local(request.headers.get("referer", "/")))
    if chosen in i18n.LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, chosen, max_age=365 * 86_400, httponly=True, samesite="strict", path="/")
    return response


def _local(url: str) -> str:
    """Only a path on this site to go back to (never another site named in a link)."""
    parts = urlsplit(url)
    path = parts.path if parts.path.startswith("/") and not parts.path.startswith("//") else "/"
    return path + (f"?{parts.query}" if parts.query else "")


# -- Today -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SiteHealth:
    site: str
    devices: int
    silent: list[str]


@router.get("/")
async def today(request: Request, user: User, console: ConsoleDep) -> Response:
    store, now = console.context.store, console.context.clock()
    anomalies = AnomalyStore(store)
    devices = await store.devices()
    silent = {a.device for a in await anomalies.find(status="unresolved", kind=Kind.STALE, limit=100_000)}
    by_site: dict[str, list[str]] = defaultdict(list)
    for device in devices:
        by_site[device.site].append(device.key)
    sites = [
        SiteHealth(site, len(keys), sorted(k for k in keys if k in silent)) for site, keys in sorted(by_site.items())
    ]
    kinds: dict[str, int] = defaultdict(int)
    for (kind, _severity), count in (await anomalies.open_counts()).items():
        kinds[kind] += count
    drafts, buckets = None, None
    if user.can("invoices.read"):  # money is for the roles that may read invoices
        drafts = await BillingStore(store).invoices(status=DRAFT)
        buckets = aging(await ReceivablesStore(store).standings(as_of=now.date()))
    return console.render(
        request, "today.html", user, sites=sites, kinds=dict(sorted(kinds.items())), drafts=drafts, aging=buckets
    )


# -- devices --------------------------------------------------------------------------------


@router.get("/devices")
async def devices(
    request: Request, user: User, console: ConsoleDep, *, site: str = "", vendor: str = "", silent_days: str = ""
) -> Response:
    user.require("devices.read")
    store, now = console.context.store, console.context.clock()
    found = await store.devices()
    sites, vendors = sorted({d.site for d in found}), sorted({d.vendor for d in found if d.vendor})
    days = int(silent_days) if silent_days.isdigit() else None
    shown = [
        d
        for d in found
        if (not site or d.site == site)
        and (not vendor or d.vendor == vendor)
        and (days is None or d.last_seen < now - timedelta(days=days))
    ]
    open_by_device: dict[str, int] = defaultdict(int)
    for anomaly in await AnomalyStore(store).find(status="unresolved", limit=100_000):
        open_by_device[anomaly.device] += 1
    return console.render(
        request,
        "devices.html",
        user,
        devices=shown,
        sites=sites,
        vendors=vendors,
        site=site,
        vendor=vendor,
        silent_days=silent_days,
        open_anomalies=open_by_device,
    )


# -- anomaly review --------------------------------------------------------------------------


@router.get("/anomalies")
async def anomaly_queue(request: Request, user: User, console: ConsoleDep) -> Response:
    user.require("anomalies.read")
    queue = await AnomalyStore(console.context.store).find(status="unresolved", limit=200)
    return console.render(request, "anomalies.html", user, queue=queue, actions=list(ACTIONS), meanings=ACTION_MEANING)


@router.post("/anomalies/{anomaly_id}/resolve")
async def resolve_anomaly(anomaly_id: Id, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("anomalies.review")
    raw_value = _text(form, "value", required=False)
    value = int(raw_value) if raw_value.isdigit() else None
    if raw_value and value is None:
        raise BillingError(f"value: {raw_value!r} is not a counter value (a whole number of pages)")
    await resolve(
        console.context.store,
        anomaly_id,
        action=_text(form, "action"),
        value=value,
        actor=user.principal.login,
        reason=_text(form, "reason"),
        now=console.context.clock(),
    )
    return _see("/anomalies")


# -- billing run -----------------------------------------------------------------------------


def _last_month(today: date) -> str:
    return add_months(today.replace(day=1), -1).strftime("%Y-%m")


@router.get("/billing")
async def billing_run(request: Request, user: User, console: ConsoleDep, period: str = "") -> Response:
    user.require("invoices.read")
    context = console.context
    label = period or _last_month(context.clock().date())
    month = Period.parse_month(label)
    preview = await bill_month(
        context.store, context.settings, month, write=False, actor=user.principal.login, now=context.clock()
    )
    drafts = await BillingStore(context.store).invoices(period=month, status=DRAFT)
    return console.render(request, "billing.html", user, period=label, preview=preview, drafts=drafts)


@router.post("/billing/run")
async def run_drafts(user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("invoices.write")
    context = console.context
    label = _text(form, "period")
    await bill_month(
        context.store,
        context.settings,
        Period.parse_month(label),
        write=True,
        actor=user.principal.login,
        now=context.clock(),
    )
    return _see("/billing?" + urlencode({"period": label}))


@router.post("/invoices/{invoice_id}/finalize")
async def finalize(invoice_id: Id, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("invoices.write")
    context = console.context
    await finalize_invoice(
        context.store,
        context.settings,
        invoice_id,
        actor=user.principal.login,
        now=context.clock(),
        override=_text(form, "override", required=False) or None,
    )
    return _see(f"/invoices/{invoice_id}")


# -- invoices --------------------------------------------------------------------------------


@router.get("/invoices")
async def invoices(request: Request, user: User, console: ConsoleDep, status: str = "", period: str = "") -> Response:
    user.require("invoices.read")
    month = Period.parse_month(period) if period else None
    found = await BillingStore(console.context.store).invoices(period=month, status=status or None)
    return console.render(request, "invoices.html", user, invoices=found, status=status, period=period)


@router.get("/invoices/{invoice_id}")
async def invoice(request: Request, invoice_id: Id, user: User, console: ConsoleDep) -> Response:
    user.require("invoices.read")
    context = console.context
    record = await BillingStore(context.store).invoice(invoice_id)
    standing = None
    if record.status == "finalized":
        found = await ReceivablesStore(context.store).standings(as_of=context.clock().date(), invoice_id=invoice_id)
        standing = found[0] if found else None
    return console.render(
        request, "invoice.html", user, invoice=record, standing=standing, today=context.clock().date().isoformat()
    )


@router.get("/invoices/{invoice_id}/document")
async def document(invoice_id: Id, user: User, console: ConsoleDep, format: str = "pdf") -> Response:  # noqa: A002
    user.require("invoices.read")
    doc = await invoice_document(console.context.store, console.context.settings, invoice_id)
    name = doc.number or f"draft-{invoice_id}"
    if format == "ubl":
        body, media, suffix = to_ubl(doc), "application/xml", "xml"
    else:
        body, media, suffix = await asyncio.to_thread(to_pdf, doc), "application/pdf", "pdf"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'})


# -- receivables -----------------------------------------------------------------------------


@router.get("/receivables")
async def receivables(request: Request, user: User, console: ConsoleDep) -> Response:
    user.require("invoices.read")
    today_ = console.context.clock().date()
    standings = await ReceivablesStore(console.context.store).standings(as_of=today_)
    return console.render(
        request, "receivables.html", user, standings=standings, aging=aging(standings), today=today_.isoformat()
    )


@router.post("/invoices/{invoice_id}/payments")
async def pay(invoice_id: Id, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("invoices.write")
    try:
        amount = Decimal(_text(form, "amount"))
        received = date.fromisoformat(_text(form, "received_on"))
    except (InvalidOperation, ValueError) as err:
        raise BillingError("amount and date: a number such as 120.50 and a date such as 2026-12-01") from err
    await ReceivablesStore(console.context.store).record_payment(
        invoice_id,
        amount,
        received_on=received,
        method=_text(form, "method", required=False) or "bank_transfer",
        reference=_text(form, "reference", required=False),
        actor=user.principal.login,
        now=console.context.clock(),
    )
    return _see((_text(form, "back", required=False) and _local(_text(form, "back"))) or "/receivables")
