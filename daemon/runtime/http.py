"""The ops endpoint: Prometheus /metrics and /healthz on one small asyncio HTTP server.

prometheus-client's own start_http_server serves metrics only, from a thread; a
health check that asks the store must run on the daemon's loop, so this serves
both from the loop. The HTTP API (daemon/api) listens apart, behind logins: Prometheus
and health probes carry no credentials, so these two stay on their own address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from daemon.kernel.errors import MeterdError
from daemon.services.metrics import Metrics

log = structlog.get_logger(__name__)

_REQUEST_TIMEOUT_S: Final = 5.0
_MAX_REQUEST_BYTES: Final = 8192


@dataclass(frozen=True, slots=True)
class Health:
    ok: bool
    checks: dict[str, str]


HealthCheck = Callable[[], Awaitable[Health]]


class OpsServer:
    """Serves GET /metrics and GET /healthz; anything else is 404."""

    def __init__(self, metrics: Metrics, health: HealthCheck, host: str, port: int) -> None:
        self._metrics = metrics
        self._health = health
        self._host = host
        self._port = port
        self.bound_port: int | None = None

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[OpsServer]:
        """Listen for the life of the block.

        Raises:
            MeterdError: the address is taken or not ours to bind.
        """
        try:
            server = await asyncio.start_server(self._handle, self._host, self._port)
        except OSError as err:
            msg = (
                f"cannot listen on {self._host}:{self._port} for /metrics ({err.strerror}); "
                "set metrics.listen to a free address or metrics.enabled = false"
            )
            raise MeterdError(msg) from err
        self.bound_port = server.sockets[0].getsockname()[1]
        log.info("metrics_listening", address=f"{self._host}:{self.bound_port}")
        try:
            async with server:
                yield self
        finally:
            server.close()
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_REQUEST_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body = await self._route(head[:_MAX_REQUEST_BYTES])
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        header = (
            f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(header.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _route(self, head: bytes) -> tuple[str, str, bytes]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or parts[0] not in ("GET", "HEAD"):  # noqa: PLR2004 - METHOD PATH VERSION
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        if path == "/healthz":
            health = await self._health()
            body = json.dumps({"status": "ok" if health.ok else "failing", "checks": health.checks}).encode()
            return ("200 OK" if health.ok else "503 Service Unavailable"), "application/json", body + b"\n"
        return "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
