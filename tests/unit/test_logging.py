"""Log output: JSON lines off a TTY, and secrets masked whatever a caller passes."""

from __future__ import annotations

import io
import json
import logging

import structlog

from daemon.runtime import logging as meterd_logging


def test_json_lines_with_secrets_masked() -> None:
    out = io.StringIO()
    meterd_logging.configure("info", "auto", stream=out)  # a StringIO is not a TTY: JSON
    try:
        structlog.get_logger("test").info(
            "target_added", host="10.0.4.21", community="s3cret", broker_password="hunter2", token="t0k"
        )
        logging.getLogger("third.party").warning("routed %s", "through structlog")
    finally:
        meterd_logging.configure("info", "console")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["event"] == "target_added"
    assert first["host"] == "10.0.4.21"
    assert (first["community"], first["broker_password"], first["token"]) == ("***", "***", "***")
    assert "s3cret" not in out.getvalue()
    assert "hunter2" not in out.getvalue()
    assert (second["event"], second["level"], second["logger"]) == (
        "routed through structlog",
        "warning",
        "third.party",
    )


def test_level_filters_debug() -> None:
    out = io.StringIO()
    meterd_logging.configure("warning", "json", stream=out)
    try:
        structlog.get_logger("test").info("not_shown")
    finally:
        meterd_logging.configure("info", "console")
    assert out.getvalue() == ""
