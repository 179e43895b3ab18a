"""The console's Service page: which printers need a technician now, then what else is wrong, and its CSV."""

from __future__ import annotations

import io
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from billing.cells import write_rows
from daemon.services.faults import SERVICE_HEADER, ServiceFilter, ServiceRow, service_board, service_rows
from daemon.web import i18n
from daemon.web.fault_words import fault_in_words, severity_in_words
from daemon.web.pages import ConsoleDep, User

router = APIRouter()


def _filter(customer: str, site: str, fault: str) -> ServiceFilter:
    return ServiceFilter(customer=customer or None, site=site or None, fault=fault or None)


def _open_minutes(since: datetime, now: datetime) -> int:
    return int((now - since).total_seconds() // 60)


def duration(minutes: int) -> str:
    """How long a fault has been open, in the reader's language: minutes, hours and minutes, or days and hours."""
    hours, days = minutes // 60, minutes // 1440
    if days:
        return i18n.gettext("%(days)s d %(hours)s h") % {"days": i18n.number(days), "hours": hours % 24}
    if hours:
        return i18n.gettext("%(hours)s h %(minutes)s min") % {"hours": hours, "minutes": minutes % 60}
    return i18n.gettext("%(minutes)s min") % {"minutes": minutes}


def also_in_words(row: ServiceRow) -> list[str]:
    """The faults folded into an alert, in words, each once and not the alert's own (jammed and jam: one paper jam).

    A fault from the alert table keeps the device's own text (where: "Paper jam in tray 2 (mediaPath 2, trained)").
    """
    own = fault_in_words(row.fault.code)
    said: dict[str, str] = {}
    for f in row.also:
        words = fault_in_words(f.code)
        if words != own and (words not in said or f.kind == "alert"):
            said[words] = f"{words}: {f.detail}" if f.kind == "alert" and f.detail else words
    return list(said.values())


@router.get("/service")
async def service(
    request: Request, user: User, console: ConsoleDep, *, customer: str = "", site: str = "", fault: str = ""
) -> Response:
    """Open service alerts (longest open first), then the other open faults; the filters are the CSV's."""
    user.require("service.read")
    context, now = console.context, console.context.clock()
    board = await service_board(context.store, context.settings, now, _filter(customer, site, fault))
    return console.render(
        request,
        "service.html",
        user,
        board=board,
        now=now,
        open_minutes=_open_minutes,
        duration=duration,
        words=fault_in_words,
        also=also_in_words,
        severity=severity_in_words,
        after_minutes=context.settings.service.alert_after_minutes,
        customer=customer,
        site=site,
        fault=fault,
        query=urlencode({k: v for k, v in (("customer", customer), ("site", site), ("fault", fault)) if v}),
    )


@router.get("/service/faults.csv")
async def service_csv(
    user: User, console: ConsoleDep, *, customer: str = "", site: str = "", fault: str = ""
) -> Response:
    """The page's rows with the codes (as the API's CSV) and the fault in the reader's language."""
    user.require("service.read")
    context, now = console.context, console.context.clock()
    board = await service_board(context.store, context.settings, now, _filter(customer, site, fault))
    rows = service_rows(board, now)
    fault_column = SERVICE_HEADER.index("fault")
    text = io.StringIO()
    write_rows(text, [*SERVICE_HEADER, "fault_text"], [[*row, fault_in_words(row[fault_column])] for row in rows])
    return Response(
        text.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="service-{now:%Y-%m-%d}.csv"'},
    )
