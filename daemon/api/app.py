"""The FastAPI application and the uvicorn server the daemon runs it on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import version

import structlog
import uvicorn
from fastapi import Depends, FastAPI

from daemon.api import (
    routes_auth,
    routes_billing,
    routes_exchange,
    routes_fleet,
    routes_portal,
    routes_receivables,
    routes_service,
)
from daemon.api.errors import ERROR_RESPONSES, install_error_handlers
from daemon.api.headers import install_security_headers
from daemon.api.security import ApiContext, record_source
from daemon.kernel.errors import MeterdError
from daemon.web.app import mount_console
from daemon.web.docs import install_docs

log = structlog.get_logger(__name__)

PREFIX = "/api/v1"
ROUTERS = (
    routes_auth.router,
    routes_fleet.router,
    routes_billing.router,
    routes_receivables.router,
    routes_exchange.router,
    routes_portal.router,
    routes_service.router,
)


def create_app(context: ApiContext) -> FastAPI:
    """The API over ``context``'s store, and the web console at ``/``; no I/O here (tests serve it in-process)."""
    app = FastAPI(
        title="meterd",
        version=version("meterd"),
        description="Meter readings, anomalies, customers, contracts and invoices of one meterd store.",
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=None,  # daemon.web.docs serves it from shipped files
        redoc_url=None,
        responses=ERROR_RESPONSES,
        dependencies=[Depends(record_source)],
    )
    app.state.context = context
    install_error_handlers(app)
    install_security_headers(app, prefix=PREFIX, public=frozenset({f"{PREFIX}/openapi.json", f"{PREFIX}/docs"}))
    for router in ROUTERS:
        app.include_router(router, prefix=PREFIX)
    install_docs(app, f"{PREFIX}/docs", f"{PREFIX}/openapi.json", "meterd")
    mount_console(app, context, api_prefix=PREFIX)  # last: the web console takes every path outside /api/v1
    return app


class _Server(uvicorn.Server):
    """uvicorn inside the daemon: the daemon owns SIGINT/SIGTERM and its two-stage stop, not uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` until the block ends; yields the bound port.

    Raises:
        MeterdError: the address cannot be bound (in use, not ours), named with what to change.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        msg = f"cannot serve the API on {host}:{port}: {err.strerror}; change api.listen"
        raise MeterdError(msg) from err
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="api")
    bound = sock.getsockname()[1]
    log.info("api_listening", address=f"{host}:{bound}", docs=f"http://{host}:{bound}{PREFIX}/docs")
    try:
        yield bound
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
