"""Security headers on every response (OWASP Secure Headers): what a browser may run, sniff, keep and save.

* ``Content-Security-Policy``: nothing but the usage report's own inline style and its chart
  (a data: image). A response that brings its own policy keeps it: the web console's pages and
  the docs page (daemon.web: only files the package ships, forms posting to the daemon itself).
* ``X-Content-Type-Options: nosniff``: a CSV is never taken for HTML or script.
* ``Cache-Control: no-store`` on everything but the OpenAPI description and the docs page:
  responses carry tokens (login) and customers' data, which no browser or proxy may keep.
* ``Content-Disposition: attachment`` with a file name on downloads (CSV, PDF, XML), so a browser
  saves them instead of showing them in the API's origin.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import FastAPI, Request, Response

POLICY: Final = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
DOWNLOADS: Final = {"text/csv": "csv", "application/pdf": "pdf", "application/xml": "xml"}
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


def install_security_headers(app: FastAPI, *, prefix: str, public: frozenset[str]) -> None:
    """Add the headers to every response of ``app``; ``public``: paths that may be cached (OpenAPI, docs)."""

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        path = request.url.path
        # The console's pages and the docs page set their own policy, which lets them load their files and post
        # their forms: the API's "nothing at all" would leave a login form that cannot be sent.
        response.headers.setdefault("Content-Security-Policy", POLICY)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if path not in public:
            response.headers["Cache-Control"] = "no-store"
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind in DOWNLOADS and "content-disposition" not in response.headers:
            name = _UNSAFE_NAME.sub("-", path.removeprefix(prefix).strip("/")) or "download"
            response.headers["Content-Disposition"] = f'attachment; filename="{name}.{DOWNLOADS[kind]}"'
        return response
