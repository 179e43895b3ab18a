"""The console's pages: log in and out, Today, devices, supplies, anomaly review, billing run, invoices, receivables."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Final
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import Markup
from starlette.datastructures import FormData

from billing.anomalies import Kind
from billing.cells import write_rows
from billing.documents.pdf import to_pdf
from billing.documents.ubl import to_ubl
from billing.invoicing import BillingError
from billing.lifecycle import DRAFT
from billing.periods import Period, add_months
from billing.receivables import aging
from daemon.services.accounts import AuthenticationError
from daemon.services.billing import (
    Finalising,
    bill_month,
    finalize_invoice,
    finalize_many,
    invoice_document,
    void_invoice,
)
from daemon.services.device_history import (
    DROP,
    DeviceHistory,
    device_history,
    enter_manual_reading,
    save_device_labels,
)
from daemon.services.review import ACTIONS, dismiss_kind, resolve
from daemon.services.supplies import (
    REPLENISHMENT_HEADER,
    ReplenishmentFilter,
    last_yield,
    replenishment,
    replenishment_rows,
    supply_policy,
)
from daemon.storage.anomalies import AnomalyStore
from daemon.storage.billing import BillingStore
from daemon.storage.receivables import ReceivablesStore
from daemon.storage.supplies import SupplyStore
from daemon.web import charts, i18n
from daemon.web.console import Console, console_of
from daemon.web.session import LANGUAGE_COOKIE, PRE_LOGIN_COOKIE, WebUser

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
    N_("wrap"),
    N_("counter went back"),
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
    return await console_of(request).sessions.checked_form(request, before_login=request.url.path == "/login")


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


DEVICES_PAGE: Final = 100


@router.get("/devices")
async def devices(
    request: Request,
    user: User,
    console: ConsoleDep,
    *,
    site: str = "",
    vendor: str = "",
    silent_days: str = "",
    offset: int = 0,
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
    start = max(offset, 0)
    return console.render(
        request,
        "devices.html",
        user,
        devices=shown[start : start + DEVICES_PAGE],
        total=len(shown),
        offset=start,
        page=DEVICES_PAGE,
        sites=sites,
        vendors=vendors,
        site=site,
        vendor=vendor,
        silent_days=silent_days,
        open_anomalies=open_by_device,
    )


CHART_DAYS: Final = (30, 90, 365)
# Where a reading came from, as the readings table names it.
SOURCES: Final = {"snmp": N_("SNMP"), "mqtt": N_("MQTT"), "manual": N_("manual"), "file": N_("file import")}


@dataclass(frozen=True, slots=True)
class MeterCharts:
    meter: str
    counter_title: str
    counter: Markup
    pages_title: str
    pages: Markup


def meter_charts(history: DeviceHistory) -> list[MeterCharts]:
    """Each meter's lifetime counter and pages per day, with the breaks marked."""
    _ = i18n.gettext
    drawn = []
    for index, meter in enumerate(history.meters):
        marks = [
            charts.Marker(m.day, _("counter went back") if m.kind == DROP else f"{_(m.kind)} #{m.anomaly_id}")
            for m in meter.marks
        ]
        first, last = (meter.days[0], meter.days[-1]) if meter.days else (None, None)
        summary = (
            _("From %(start)s to %(end)s the counter went from %(first)s to %(last)s.")
            % {
                "start": i18n.day(first.day),
                "end": i18n.day(last.day),
                "first": i18n.number(first.value),
                "last": i18n.number(last.value),
            }
            if first and last
            else _("No readings in this time.")
        )
        counter_title = _("Lifetime counter: %(meter)s") % {"meter": meter.meter}
        pages_title = _("Pages per day: %(meter)s") % {"meter": meter.meter}
        counter = charts.line_chart(
            f"counter-{index}", counter_title, summary, [charts.Point(d.day, d.value) for d in meter.days], marks
        )
        pages = charts.bar_chart(
            f"pages-{index}", pages_title, summary, [charts.Point(d.day, d.pages) for d in meter.days], marks
        )
        drawn.append(MeterCharts(meter.meter, counter_title, counter, pages_title, pages))
    return drawn


@router.get("/devices/{key}")
async def device_page(request: Request, key: str, user: User, console: ConsoleDep, days: int = 90) -> Response:
    user.require("devices.read")
    shown = days if days in CHART_DAYS else 90
    history = await device_history(console.context.store, key, now=console.context.clock(), days=shown)
    return console.render(
        request,
        "device.html",
        user,
        history=history,
        charts=meter_charts(history),
        days=shown,
        choices=CHART_DAYS,
        sources=SOURCES,
        now=console.context.clock().strftime("%Y-%m-%dT%H:%M"),
    )


@router.post("/devices/{key}/readings")
async def manual_reading(key: str, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("readings.write")
    raw_value, raw_at = _text(form, "value"), _text(form, "taken_at")
    try:
        value = int(raw_value)
        taken_at = datetime.fromisoformat(raw_at).replace(tzinfo=UTC)
    except ValueError as err:
        msg = f"value {raw_value!r} and time {raw_at!r}: a whole number of pages and a time such as 2026-12-01T09:30"
        raise BillingError(msg) from err
    await enter_manual_reading(
        console.context.store,
        console.context.settings,
        key,
        meter=_text(form, "meter"),
        value=value,
        taken_at=taken_at,
        entered_by=_text(form, "entered_by"),
        actor=user.principal.login,
        clock=console.context.clock,
    )
    return _see(f"/devices/{quote(key, safe='')}")


@router.post("/devices/{key}/labels")
async def device_labels(key: str, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("customers.write")  # the office's record of the device, as its devices.csv import
    labels = {column: _text(form, column, required=False) for column in ("name", "location", "cost_centre")}
    await save_device_labels(
        console.context.store, key, labels, actor=user.principal.login, now=console.context.clock()
    )
    return _see(f"/devices/{quote(key, safe='')}")


# -- supplies --------------------------------------------------------------------------------


def _replenishment_filter(customer: str, site: str, within_days: str) -> ReplenishmentFilter:
    days = int(within_days) if within_days.isdigit() and int(within_days) <= 365 else None  # noqa: PLR2004 - a year
    return ReplenishmentFilter(customer=customer or None, site=site or None, within_days=days)


@router.get("/supplies")
async def supplies(
    request: Request, user: User, console: ConsoleDep, *, customer: str = "", site: str = "", within_days: str = ""
) -> Response:
    """The replenishment list a dealer ships from; the filters and the CSV are the API's and the CLI's."""
    user.require("devices.read")
    context, now = console.context, console.context.clock()
    statuses = await SupplyStore(context.store).report(supply_policy(context.settings), now)
    shown = replenishment(statuses, now.date(), _replenishment_filter(customer, site, within_days))
    customers = sorted({(s.customer, s.customer_name or s.customer) for s in statuses if s.customer})
    return console.render(
        request,
        "supplies.html",
        user,
        supplies=shown,
        last_yield=last_yield,
        customers=customers,
        sites=sorted({s.site for s in statuses}),
        customer=customer,
        site=site,
        within_days=within_days,
        query=urlencode({k: v for k, v in (("customer", customer), ("site", site), ("within_days", within_days)) if v}),
    )


@router.get("/supplies/replenishment.csv")
async def supplies_csv(
    user: User, console: ConsoleDep, *, customer: str = "", site: str = "", within_days: str = ""
) -> Response:
    user.require("devices.read")
    context, now = console.context, console.context.clock()
    statuses = await SupplyStore(context.store).report(supply_policy(context.settings), now)
    shown = replenishment(statuses, now.date(), _replenishment_filter(customer, site, within_days))
    text = io.StringIO()
    write_rows(text, REPLENISHMENT_HEADER, replenishment_rows(shown))  # cells a spreadsheet would run open as text
    name = f"replenishment-{now:%Y-%m-%d}.csv"
    return Response(
        text.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- anomaly review --------------------------------------------------------------------------

QUEUE_PAGE: Final = 25


def evidence_chart(anomaly_id: int, around: list[dict[str, object]]) -> Markup:
    """The series around a suspect point: the held readings highlighted."""
    _ = i18n.gettext
    points = [
        charts.Point(r["taken_at"], int(r["value"]), highlight=bool(r["held"]))  # type: ignore[arg-type,call-overload]
        for r in around
    ]
    summary = _("%(count)s readings around the suspect point; the held ones are marked.") % {
        "count": i18n.number(len(points))
    }
    return charts.line_chart(f"evidence-{anomaly_id}", _("Counter around the suspect point"), summary, points)


@router.get("/anomalies")
async def anomaly_queue(request: Request, user: User, console: ConsoleDep, offset: int = 0) -> Response:
    user.require("anomalies.read")
    anomalies = AnomalyStore(console.context.store)
    start = max(offset, 0)
    total = await anomalies.count(status="unresolved")
    queue = await anomalies.find(status="unresolved", limit=QUEUE_PAGE, offset=start)
    evidence = {a.id: evidence_chart(a.id, await anomalies.readings_around(a)) for a in queue if a.holds or a.meter}
    same_kind: dict[tuple[str, str], int] = defaultdict(int)
    for anomaly in queue:
        same_kind[(anomaly.device, anomaly.kind)] += 1
    return console.render(
        request,
        "anomalies.html",
        user,
        queue=queue,
        actions=list(ACTIONS),
        meanings=ACTION_MEANING,
        evidence=evidence,
        same_kind={
            pair: await anomalies.count(status="unresolved", kind=pair[1], device=pair[0]) for pair in same_kind
        },
        offset=start,
        total=total,
        page=QUEUE_PAGE,
    )


@router.post("/anomalies/dismiss")
async def dismiss_all_of_kind(user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("anomalies.review")
    await dismiss_kind(
        console.context.store,
        _text(form, "device"),
        _text(form, "kind"),
        actor=user.principal.login,
        reason=_text(form, "reason"),
        now=console.context.clock(),
    )
    return _see("/anomalies")


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
    return await _billing_page(request, user, console, period or _last_month(console.context.clock().date()))


async def _billing_page(
    request: Request, user: WebUser, console: Console, label: str, *, outcomes: list[Finalising] | None = None
) -> Response:
    context = console.context
    month = Period.parse_month(label)
    preview = await bill_month(
        context.store, context.settings, month, write=False, actor=user.principal.login, now=context.clock()
    )
    drafts = await BillingStore(context.store).invoices(period=month, status=DRAFT)
    return console.render(
        request, "billing.html", user, period=label, preview=preview, drafts=drafts, outcomes=outcomes, bulk=True
    )


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


@router.post("/billing/finalize")
async def finalize_selected(request: Request, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("invoices.write")
    context = console.context
    label = _text(form, "period")
    chosen = [int(v) for v in form.getlist("invoice") if isinstance(v, str) and v.isdigit()]
    if not chosen:
        raise BillingError("no draft chosen: tick the drafts to finalise, then send the form again")
    outcomes = await finalize_many(
        context.store,
        context.settings,
        chosen,
        actor=user.principal.login,
        now=context.clock(),
        override=_text(form, "override", required=False) or None,
    )
    return await _billing_page(request, user, console, label, outcomes=outcomes)


@router.post("/invoices/{invoice_id}/void")
async def void(invoice_id: Id, user: User, console: ConsoleDep, form: Form) -> Response:
    user.require("invoices.write")
    context = console.context
    credit = await void_invoice(
        context.store,
        context.settings,
        invoice_id,
        reason=_text(form, "reason"),
        actor=user.principal.login,
        now=context.clock(),
    )
    return _see(f"/invoices/{credit.id}")


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
