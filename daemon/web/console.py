"""What every page handler needs: the API's context, the sessions, the templates and how a page is rendered."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib.resources import files
from pathlib import Path
from typing import Final

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from daemon.api.security import ApiContext
from daemon.web import i18n
from daemon.web.session import Sessions, WebUser

PACKAGE: Final = Path(str(files("daemon.web")))
# No inline script anywhere, no other origin: what a page runs is a file this package ships.
CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(PACKAGE / "templates"),
        autoescape=select_autoescape(default=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters |= {
        "money": i18n.money,
        "number": i18n.number,
        "day": i18n.day,
        "moment": i18n.moment,
        "pretty": _pretty,
    }
    return env


def _pretty(value: object) -> str:
    """A nested provenance or evidence value, indented for a <pre>."""
    return json.dumps(value, indent=1, default=str, ensure_ascii=False)


class Console:
    def __init__(self, context: ApiContext, idle: timedelta) -> None:
        self.context = context
        self.sessions = Sessions(context.accounts, context.clock, idle)
        self.env = templates()

    def render(
        self, request: Request, name: str, user: WebUser | None, http_status: int = 200, **values: object
    ) -> Response:
        page = self.env.get_template(name).render(
            request=request,
            user=user,
            languages=i18n.NATIVE_NAMES,
            language=i18n.current_language.get(),
            **values,
        )
        return HTMLResponse(page, status_code=http_status)


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console
