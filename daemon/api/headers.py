"""Security headers on every response (OWASP Secure Headers): what a browser may run, sniff, keep and save.

* ``Content-Security-Policy``: nothing but the usage report's own inline style and its chart
  (a data: image); the interactive docs page also gets the Swagger UI that FastAPI loads.
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
# FastAPI's docs page: Swagger UI from its CDN, started by an inline script, reading openapi.json from here.
DOCS_POLICY: Final = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; style-src https://cdn.jsdelivr.net; "
    "img-src https://fastapi.tiangolo.com data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOWNLOADS: Final = {"text/csv": "csv", "application/pdf": "pdf", "application/xml": "xml"}
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


def install_security_headers(app: FastAPI, *, prefix: str, docs: str, public: frozenset[str]) -> None:
    """Add the headers to every response of ``app``; ``public``: paths that may be cached (OpenAPI, docs)."""

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        path = request.url.path
        response.headers["Content-Security-Policy"] = DOCS_POLICY if path == docs else POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if path not in public:
            response.headers["Cache-Control"] = "no-store"
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind in DOWNLOADS and "content-disposition" not in response.headers:
            name = _UNSAFE_NAME.sub("-", path.removeprefix(prefix).strip("/")) or "download"
            response.headers["Content-Disposition"] = f'attachment; filename="{name}.{DOWNLOADS[kind]}"'
        return response
