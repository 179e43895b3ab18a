"""The command line: output formats, and one clear line for every kind of bad input."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daemon.cli.main import main
from tests.unit.test_wire import SPEC_EXAMPLE

METERD = [sys.executable, "-m", "daemon"]
REPO = Path(__file__).resolve().parents[2]


def _meterd(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*METERD, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
        **kwargs,  # type: ignore[call-overload]
    )


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got: {done.stderr}"
    assert "Traceback" not in done.stderr
    return lines[0]


@pytest.fixture
def config(write_config, tmp_path: Path) -> Path:
    return write_config(f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n[logging]\nformat = "json"\n')


def test_missing_config_file(tmp_path: Path) -> None:
    line = _one_error_line(_meterd("run", "--config", str(tmp_path / "nope.toml")))
    expected = "file not found; pass --config FILE or copy config/meterd.example.toml there"
    assert line == f"meterd: {tmp_path / 'nope.toml'}: {expected}"


def test_no_config_anywhere_lists_what_was_tried(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "METERD_CONFIG"}
    done = subprocess.run(
        [*METERD, "devices"], capture_output=True, text=True, check=False, cwd=tmp_path, env=env, timeout=60
    )
    assert _one_error_line(done).startswith("meterd: no configuration file found (tried $METERD_CONFIG")


def test_bad_config_fails_at_start_and_writes_nothing(write_config, tmp_path: Path) -> None:
    path = write_config(f'state_dir = "{tmp_path / "state"}"\n[[snmp.targets]]\nhost = "10.0.4.9"\nport = 0\n')
    line = _one_error_line(_meterd("run", "--config", str(path)))
    assert line == f"meterd: {path}: snmp.targets[0].port: must be 1-65535"
    assert not (tmp_path / "state").exists()


def test_config_check_reports_ok_and_errors(config: Path, write_config) -> None:
    done = _meterd("config", "check", str(config))
    assert done.returncode == 0
    assert "configuration OK: site 'acme-hq'" in done.stdout
    bad = write_config("[metrics]\nlisten = 9464\n", name="bad.toml")
    assert _one_error_line(_meterd("config", "check", str(bad))).startswith(f"meterd: {bad}: metrics.listen: ")
    # Several problems: every one, each on its own line with the file and key.
    worse = write_config('[metrics]\nlisten = 9464\n[billing.seller]\ntax_id = "DE123"\n', name="worse.toml")
    done = _meterd("config", "check", str(worse))
    assert done.returncode == 1
    assert [line.partition(": ")[2].split(": ")[:2] for line in done.stderr.splitlines()] == [
        [str(worse), "metrics.listen"],
        [str(worse), "billing.seller.tax_id"],
    ]


def test_unreachable_database_url(config: Path) -> None:
    line = _one_error_line(_meterd("devices", "--config", str(config), "--db", "postgresql://m:pw@127.0.0.1:1/x"))
    assert line.startswith("meterd: cannot reach the database at postgresql+psycopg://m:***@127.0.0.1:1/x")
    assert "pw@" not in line


def test_unsupported_database_url(config: Path) -> None:
    line = _one_error_line(_meterd("devices", "--config", str(config), "--db", "mysql://x@y/z"))
    assert "unsupported database 'mysql'" in line


def test_read_only_state_directory(write_config, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    config = write_config(f'state_dir = "{state}"\n')
    command = [*METERD, "run", "--once", "--config", str(config)]
    if os.geteuid() == 0:
        # Root writes through mode bits, so make the directory a read-only mount, as systemd's
        # ProtectSystem=strict does to a state directory it was not told about.
        if shutil.which("unshare") is None:
            pytest.skip("needs unshare(1) to make a read-only mount as root")
        mount = f"mount --bind -o ro {state} {state} && exec " + " ".join(command)
        command = ["unshare", "--mount", "sh", "-c", mount]
    else:
        state.chmod(0o555)
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    line = _one_error_line(done)
    assert line.startswith(f"meterd: state directory {state} is not writable (")
    assert line.endswith("give the meterd user write access or set state_dir / --db elsewhere")


def test_second_daemon_on_the_same_store_is_refused(config: Path, tmp_path: Path) -> None:
    listen_anywhere = {"METERD_METRICS__LISTEN": "127.0.0.1:0"}
    with subprocess.Popen(
        [*METERD, "run", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **listen_anywhere},
    ) as first:
        try:
            assert first.stderr is not None
            for started in first.stderr:
                if json.loads(started)["event"] == "daemon_started":
                    break
            line = _one_error_line(_meterd("run", "--config", str(config), env=listen_anywhere))
            assert line == (
                f"meterd: another meterd daemon (pid {first.pid}) is running on "
                f"sqlite+aiosqlite:///{tmp_path / 'state' / 'meterd.db'}; stop it first"
            )
        finally:
            first.terminate()
            first.wait(timeout=20)


def test_ingest_then_readings_json_is_the_wire_format(config: Path, tmp_path: Path) -> None:
    batch = tmp_path / "in.ndjson"
    bad = {**SPEC_EXAMPLE, "id": "bad", "meters": [{"meter": "clicks", "value": 1, "unit": "impressions"}]}
    batch.write_text(json.dumps(SPEC_EXAMPLE) + "\n" + json.dumps(bad) + "\n")
    done = _meterd("ingest", str(batch), "--config", str(config))
    assert done.returncode == 1  # something was rejected: scripts must notice
    assert done.stdout.strip() == "1 reading(s) stored, 0 duplicate(s) dropped, 1 rejected into dead letters"
    again = _meterd("ingest", str(batch), "--config", str(config))
    assert again.stdout.strip() == "0 reading(s) stored, 1 duplicate(s) dropped, 1 rejected into dead letters"

    listed = _meterd("readings", "--config", str(config), "--format", "json", "--device", "VNCRC48198")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [SPEC_EXAMPLE]

    as_csv = _meterd("readings", "--config", str(config), "--format", "csv", "--since", "2026-11-22T10:00:00Z")
    rows = as_csv.stdout.strip().splitlines()
    assert rows[0].startswith("taken_at,device,vendor,model,meter,value,unit")
    assert rows[1:] == [
        f"2026-11-22T10:00:00Z,VNCRC48198,HP,LaserJet MFP M130nw,{m['meter']},{m['value']},{m['unit']},,file,"
        f"{SPEC_EXAMPLE['id']}"
        for m in SPEC_EXAMPLE["meters"]
    ]
    dead = _meterd("dead-letters", "--config", str(config))
    assert "unknown_meter" in dead.stdout


def test_devices_lists_what_was_seen(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "one.json"
    source.write_text(json.dumps(SPEC_EXAMPLE))
    assert main(["ingest", str(source), "--config", str(config), "--log-level", "error"]) == 0
    capsys.readouterr()
    assert main(["devices", "--config", str(config), "--format", "json"]) == 0
    (device,) = json.loads(capsys.readouterr().out)
    assert device["key"] == "VNCRC48198"
    assert device["address"] == "10.0.4.21"
    assert device["last_seen"] == "2026-11-22T10:00:00Z"


def test_db_upgrade_reports_the_revision(config: Path) -> None:
    done = _meterd("db", "upgrade", "--config", str(config))
    assert done.returncode == 0, done.stderr
    head = max(p.name[:4] for p in (REPO / "daemon" / "storage" / "migrations" / "versions").glob("0*.py"))
    assert done.stdout.strip().endswith(f"schema empty -> {head}")
    assert _meterd("db", "upgrade", "--config", str(config)).stdout.strip().endswith(f"schema {head} -> {head}")


def test_bad_time_argument_is_a_usage_error(config: Path) -> None:
    done = _meterd("readings", "--config", str(config), "--since", "last tuesday")
    assert done.returncode == 2
    assert "'last tuesday' is not a date or RFC 3339 time" in done.stderr


def test_dead_letters_list_as_json_and_csv(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 18.5: dead-letters printed a table only, unlike the other lists.
    source = tmp_path / "bad.ndjson"
    source.write_bytes(b'{"schema": "nope"}\n\xff\xfe not utf-8\n')
    for _ in range(2):  # the same file twice: each input is one dead letter, seen twice
        assert main(["ingest", str(source), "--config", str(config), "--log-level", "error"]) == 1
    capsys.readouterr()
    assert main(["dead-letters", "--config", str(config), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(d["origin"], d["reason"], d["raw"], d["repeats"]) for d in listed] == [
        (f"{source}:2", "invalid_utf8", "\\xff\\xfe not utf-8", 2),
        (f"{source}:1", "unknown_schema", '{"schema": "nope"}', 2),
    ]
    assert main(["dead-letters", "--config", str(config), "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["received_at", "last_received_at", "repeats", "source", "origin", "reason", "detail", "raw"]
    assert [(row[2], row[5], row[7]) for row in rows[1:]] == [
        ("2", "invalid_utf8", "\\xff\\xfe not utf-8"),
        ("2", "unknown_schema", '{"schema": "nope"}'),
    ]


def test_ingest_fails_and_says_how_many_when_records_are_rejected(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 17.14: a run where every record was rejected must not look like a success.
    source = tmp_path / "all-bad.json"
    source.write_text(json.dumps([{**SPEC_EXAMPLE, "id": f"x{n}", "schema": "meterd.reading/9"} for n in range(3)]))
    assert main(["ingest", str(source), "--config", str(config), "--log-level", "error"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip() == "0 reading(s) stored, 0 duplicate(s) dropped, 3 rejected into dead letters"
    assert captured.err.strip() == "meterd: 3 of 3 record(s) rejected; `meterd dead-letters` shows why"


def test_ingest_commits_in_the_hubs_batches(write_config, tmp_path: Path) -> None:
    # Issue 19.5: ingest committed one reading per transaction (~270/s); it now commits
    # mqtt.batch_max readings at a time, as the hub does: one receipt time per batch.
    config = write_config(f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n[mqtt]\nbatch_max = 500\n')
    source = tmp_path / "many.ndjson"
    taken = datetime(2026, 11, 1, tzinfo=UTC)
    records = [
        {**SPEC_EXAMPLE, "id": f"r{n}", "taken_at": (taken + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")}
        for n in range(1200)
    ]
    source.write_text("\n".join(json.dumps(r) for r in records))
    assert main(["ingest", str(source), "--config", str(config), "--log-level", "error"]) == 0
    with sqlite3.connect(tmp_path / "state" / "meterd.db") as db:
        per_batch = db.execute("SELECT count(DISTINCT reading_id) FROM readings GROUP BY received_at").fetchall()
    assert sorted(n for (n,) in per_batch) == [200, 500, 500]


def test_ingest_shows_progress_on_a_terminal_only(config: Path, tmp_path: Path) -> None:
    # Issue 19.5: a long ingest said nothing until the end; a progress bar on a terminal, none in a pipe.
    source = tmp_path / "some.ndjson"
    source.write_text("\n".join(json.dumps({**SPEC_EXAMPLE, "id": f"p{n}"}) for n in range(3)))
    controller, terminal = os.openpty()
    done = subprocess.run(
        [*METERD, "ingest", str(source), "--config", str(config), "--log-level", "error"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        check=False,
        timeout=60,
    )
    os.close(terminal)
    shown = b""
    with contextlib.suppress(OSError):  # the terminal's other end is gone: all was read
        while chunk := os.read(controller, 65536):
            shown += chunk
    os.close(controller)
    assert done.returncode == 0, done
    assert b"ingesting" in shown
    piped = _meterd("ingest", str(source), "--config", str(config), "--log-level", "error")
    assert "ingesting" not in piped.stderr


def test_ingest_help_says_an_agent_forwards_what_it_loads(capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 18.3: readings loaded with `meterd ingest` on an agent never left it; --help now says they do.
    with pytest.raises(SystemExit):
        main(["ingest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert 'On an agent (role = "agent") each new reading is also queued in the outbox and forwarded' in text
