"""The API's Swagger page from files shipped with meterd (static/swagger, see static/NOTICE): FastAPI's loads a CDN."""

from __future__ import annotations

from html import escape
from typing import Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from daemon.web.console import SECURITY_HEADERS

# Swagger UI sets style attributes from script: its page allows inline styles, never inline script.
DOCS_CSP: Final = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


def install_docs(app: FastAPI, docs_url: str, openapi_url: str, title: str) -> None:
    assets = "/static/swagger"
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{escape(title)} API</title><link rel="icon" href="data:,">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<script src="{assets}/swagger-ui-bundle.js" defer></script>
<script src="/static/swagger-init.js" defer></script></head>
<body><main id="swagger-ui" data-openapi="{escape(openapi_url)}"></main></body>
</html>"""

    @app.get(docs_url, include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return HTMLResponse(page, headers=SECURITY_HEADERS | {"Content-Security-Policy": DOCS_CSP})
