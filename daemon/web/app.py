"""The console's FastAPI application, mounted by the API's app at ``/`` (beside ``/api/v1``).

Every page reads and every form writes through the services the API uses (daemon.services.review,
daemon.services.billing, the stores): the console adds sessions, CSRF, roles on controls and
languages, never a rule of its own.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.middleware.base import RequestResponseEndpoint
from starlette.routing import Match, Mount
from starlette.types import Scope

from billing.lifecycle import InvoiceStateError
from daemon.api.security import ApiContext
from daemon.kernel.errors import MeterdError, StorageError
from daemon.services.accounts import UserNotFoundError
from daemon.services.portal import DeviceNotFoundError
from daemon.services.review import ReviewError
from daemon.storage.anomalies import AnomalyNotFoundError
from daemon.storage.audit import audit_source
from daemon.storage.billing import CustomerNotFoundError, InvoiceNotFoundError
from daemon.storage.portal import ChangeRequestDecidedError, ChangeRequestNotFoundError
from daemon.web import i18n, pages, service
from daemon.web.console import PACKAGE, SECURITY_HEADERS, Console, console_of
from daemon.web.portal import pages as portal_pages
from daemon.web.portal import staff as portal_staff
from daemon.web.session import LANGUAGE_COOKIE, CsrfError, ForbiddenError, LoginRequiredError, Sessions

NOT_FOUND: Final = (
    AnomalyNotFoundError,
    InvoiceNotFoundError,
    CustomerNotFoundError,
    UserNotFoundError,
    DeviceNotFoundError,
    ChangeRequestNotFoundError,
)
CONFLICT: Final = (InvoiceStateError, ReviewError, ChangeRequestDecidedError)


class _BesideTheApi(Mount):
    """The console at ``/``, leaving the API's paths alone.

    An unknown API path or method then gets the API's own 404/405 in its error shape, not a console page.
    """

    def __init__(self, app: FastAPI, api_prefix: str) -> None:
        super().__init__("", app=app, name="console")
        self._api_prefix = api_prefix

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path: str = scope.get("path", "")
        if path == self._api_prefix or path.startswith(self._api_prefix + "/"):
            return Match.NONE, {}
        return super().matches(scope)


def mount_console(api: FastAPI, context: ApiContext, *, api_prefix: str) -> None:
    """Serve the console from ``api`` at ``/``; mount it last, after the API's routes."""
    api.router.routes.append(_BesideTheApi(create_console(context), api_prefix))


def create_console(context: ApiContext) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = console = Console(context, timedelta(minutes=context.settings.console.session_idle_minutes))
    portal_idle = timedelta(minutes=context.settings.portal.session_idle_minutes)
    portal_sessions = Sessions(
        context.accounts, context.clock, portal_idle, cookie=portal_pages.PORTAL_COOKIE, customers=True
    )
    app.state.portal = portal_pages.Door(console, portal_sessions)
    app.mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(service.router)
    app.include_router(portal_staff.router)
    app.include_router(portal_pages.router, prefix="/portal")

    @app.middleware("http")
    async def _prepare(request: Request, call_next: RequestResponseEndpoint) -> Response:
        # Audit entries written for this request say it came through the console, and from where.
        audit_source.set(f"web {request.client.host if request.client else 'unknown'}")
        i18n.current_language.set(
            i18n.negotiate(request.headers.get("accept-language"), request.cookies.get(LANGUAGE_COOKIE))
        )
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():  # a page bringing its own policy keeps it (the usage report)
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(LoginRequiredError)
    async def _login(request: Request, err: LoginRequiredError) -> Response:
        if request.method != "GET":
            return _error(request, 401, str(err))
        door = "/portal/login?" if request.url.path.startswith("/portal/") else "/login?"
        return RedirectResponse(door + urlencode({"next": request.url.path, "reason": str(err)}), status_code=303)

    @app.exception_handler(CsrfError)
    async def _csrf(request: Request, err: CsrfError) -> Response:
        return _error(request, 403, str(err))

    @app.exception_handler(ForbiddenError)
    async def _forbidden(request: Request, err: ForbiddenError) -> Response:
        return _error(request, 403, str(err))

    @app.exception_handler(MeterdError)
    async def _refused(request: Request, err: MeterdError) -> Response:
        status = (
            503
            if isinstance(err, StorageError)
            else 404
            if isinstance(err, NOT_FOUND)
            else 409
            if isinstance(err, CONFLICT)
            else 422
        )
        return _error(request, status, str(err))

    return app


def _error(request: Request, status: int, message: str) -> Response:
    return console_of(request).render(request, "error.html", None, http_status=status, message=message)
