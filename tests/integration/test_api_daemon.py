"""The API as a deployment has it: the first admin made with `meterd users add`, `meterd run` serving the API,
and schemathesis driving every operation of the published OpenAPI as that admin: no 5xx, every answer as
documented."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pyotp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.factories import reading
from tests.integration.test_api import PASSWORD
from tests.integration.test_daemon import wait_for_port

METERD = [sys.executable, "-m", "daemon"]
# The two demands: no server error, every answer as documented (status, media type, body). Business
# rules that refuse schema-valid input (a weak password, a 14-month token) answer 422 by design, so
# schemathesis's "positive data is accepted" check is not among them.
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@dataclass(frozen=True)
class Running:
    base_url: str
    headers: dict[str, str]
    config: Path


def _meterd(config: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*METERD, *argv, "--config", str(config)], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = tmp_path_factory.mktemp("api-daemon")
    config = home / "meterd.toml"
    config.write_text(
        f'site = "acme-hq"\nstate_dir = "{home / "state"}"\n[metrics]\nlisten = "127.0.0.1:0"\n'
        '[logging]\nformat = "json"\n[api]\nenabled = true\nlisten = "127.0.0.1:0"\n'
    )
    refused = _meterd(
        config, "users", "add", "root", "--name", "Root", "--role", "admin", "--password-stdin", stdin="password1234\n"
    )
    assert refused.returncode == 1
    assert "one of the most common passwords" in refused.stderr
    added = _meterd(
        config, "users", "add", "root", "--name", "Root", "--role", "admin", "--password-stdin", stdin=f"{PASSWORD}\n"
    )
    assert added.returncode == 0, added.stderr
    uri = next(line.strip() for line in added.stdout.splitlines() if line.strip().startswith("otpauth://"))
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    batch = home / "readings.json"
    batch.write_text(json.dumps([_wire(i) for i in range(3)]))
    assert _meterd(config, "ingest", str(batch)).returncode == 0
    log = home / "meterd.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen([*METERD, "run", "--config", str(config)], stderr=stderr)
    try:
        base_url = f"http://127.0.0.1:{wait_for_port(log, proc, 'api_listening')}"
        login = httpx.post(
            f"{base_url}/api/v1/auth/login",
            timeout=10,
            json={"login": "root", "password": PASSWORD, "code": pyotp.TOTP(secret).now()},
        )
        assert login.status_code == 200, login.text
        yield Running(base_url, {"Authorization": f"Bearer {login.json()['token']}"}, config)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()


def _wire(i: int) -> dict[str, object]:
    from collectors import wire  # noqa: PLC0415

    return wire.encode(reading(serial="API1", total=1000 + 10 * i, minutes=15 * i, reading_id=f"api-{i}"))


@pytest.fixture(scope="module")
def api_schema(running: Running) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{running.base_url}/api/v1/openapi.json")
    # Logging out would end the session every other case uses; test_api.py covers it.
    return schema.exclude(path="/api/v1/auth/logout")


def test_the_first_admin_comes_from_the_cli_and_the_daemon_serves_it(running: Running) -> None:
    me = httpx.get(f"{running.base_url}/api/v1/auth/me", headers=running.headers, timeout=10)
    assert me.json() == {"login": "root", "role": "admin", "kind": "session"}
    readings = httpx.get(
        f"{running.base_url}/api/v1/readings", headers=running.headers, timeout=10, params={"format": "csv"}
    )
    assert readings.headers["content-type"].startswith("text/csv")
    assert readings.text.splitlines()[0].startswith("taken_at,device,vendor,model,meter,value")
    assert sum(",API1," in line for line in readings.text.splitlines()) == 3 * 3  # 3 readings x 3 meters
    audit = _meterd(running.config, "audit", "--format", "json")
    entries = json.loads(audit.stdout)
    assert [(e["action"], e["target"], e["source"]) for e in entries if e["action"] == "user.add"] == [
        ("user.add", "user:root", "cli")
    ]
    assert ("root", "api 127.0.0.1") in {(e["actor"], e["source"]) for e in entries if e["action"] == "user.login"}


def test_every_operation_answers_as_its_openapi_says_and_never_with_a_server_error(
    api_schema: schemathesis.BaseSchema, running: Running
) -> None:
    # schemathesis's own pytest hook (from_fixture) touches pytest internals that pytest 9 removed;
    # its strategies are public, so each operation runs as a hypothesis test here.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 27

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=running.headers, checks=CHECKS)

        try:
            answers_as_documented()
        except Exception as err:
            err.add_note(f"operation: {operation.method.upper()} {operation.path}")
            raise
