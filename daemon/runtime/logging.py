"""structlog set-up: JSON lines off a TTY (systemd, CI), readable console output on one."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Final, Literal, TextIO

import structlog

# Keys whose values must never reach a log line, whatever a caller passes.
SECRET_KEYS: Final = frozenset(
    {"community", "communities", "password", "passphrase", "token", "secret", "auth_key", "priv_key"},
)
MASK: Final = "***"


def mask_secrets(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: replace the value of any secret-looking key with a mask."""
    for key in event_dict:
        if key.lower() in SECRET_KEYS or key.lower().endswith(("_password", "_token", "_secret")):
            event_dict[key] = MASK
    return event_dict


def configure(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and route the standard library's loggers through it.

    Args:
        level: minimum level name.
        fmt: "json", "console", or "auto" (console on a TTY, JSON otherwise).
        stream: where lines go; stderr by default, so stdout stays clean for command output.
    """
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
    ]
    if use_json:
        shared.append(structlog.processors.format_exc_info)
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # Third-party libraries are chatty at info; their warnings still come through our renderer.
    for noisy in ("apscheduler", "sqlalchemy", "alembic", "pysnmp", "aiomqtt", "asyncio"):
        logging.getLogger(noisy).setLevel(max(numeric_level, logging.WARNING))
