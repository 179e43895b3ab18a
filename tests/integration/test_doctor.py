"""`meterd doctor` against a healthy agent box (a printer served by snmpsim, the real broker, a migrated store that
has read recently) and against each broken part: every failed line names what to do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.kernel.clock import utc_now
from daemon.services.metrics import Metrics
from daemon.services.pipeline import Pipeline
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.factories import reading
from tests.integration.conftest import Simulator

MQTT_PORT = 1883


def _config(
    write_config: Callable[[str], Path],
    tmp_path: Path,
    *,
    snmp_port: int,
    community: str = "konica_c250i",
    mqtt_port: int = MQTT_PORT,
) -> Path:
    return write_config(
        f'site = "acme-hq"\nrole = "agent"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
        f'[snmp]\ntimeout_s = 0.5\nretries = 0\ncommunities = ["{community}"]\n'
        f'[[snmp.targets]]\nhost = "127.0.0.1"\nport = {snmp_port}\n'
    )


def _doctor(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, object]]]:
    capsys.readouterr()
    code = main(["doctor", "--format", "json", "--config", str(config)])
    return code, {check["name"]: check for check in json.loads(capsys.readouterr().out)}


async def _polled_recently(tmp_path: Path) -> None:
    async with Store.open(f"sqlite:///{tmp_path / 'state' / 'meterd.db'}") as store:
        await Pipeline(store, Metrics()).emit([reading(at=utc_now(), source="snmp", reading_id="recent")])


async def test_a_healthy_agent_box_is_all_fine(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    await _polled_recently(tmp_path)
    config = _config(write_config, tmp_path, snmp_port=snmpsim.port)
    code, checks = await asyncio.to_thread(_doctor, config, capsys)
    assert code == 0, checks
    assert [name for name, check in checks.items() if check["ok"] is False] == []
    for name in (
        "configuration",
        "store schema",
        "store writable",
        "clock",
        "last poll",
        "forwarding",
        "disk",
        "broker",
        f"printer 127.0.0.1:{snmpsim.port}",
    ):
        assert checks[name]["ok"] is True, (name, checks[name])
    assert "profile konica" in str(checks[f"printer 127.0.0.1:{snmpsim.port}"]["detail"])


async def test_each_broken_part_fails_with_its_fix(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    await _polled_recently(tmp_path)
    config = _config(
        write_config, tmp_path, snmp_port=snmpsim.port, community="not-the-community", mqtt_port=free_port()
    )
    code, checks = await asyncio.to_thread(_doctor, config, capsys)
    assert code == 1
    printer = checks[f"printer 127.0.0.1:{snmpsim.port}"]
    assert printer["ok"] is False
    assert (
        printer["fix"] == "is it on and reachable from here (ping)? SNMP enabled on it? the community or v3 user right?"
    )
    assert checks["broker"]["ok"] is False
    assert "check mqtt.host and mqtt.port" in str(checks["broker"]["fix"])
    assert checks["store schema"]["ok"] is True  # the parts that work still say so

    fresh = tmp_path / "fresh"
    unmigrated = write_config(f'state_dir = "{fresh}"\n', "fresh.toml")
    async with Store.open(f"sqlite:///{fresh / 'meterd.db'}", upgrade=False):
        pass  # an empty file: never migrated
    code, checks = await asyncio.to_thread(_doctor, unmigrated, capsys)
    assert (code, checks["store schema"]["ok"]) == (1, False)
    assert checks["store schema"]["fix"] == "run `meterd db upgrade` (the daemon also migrates when it starts)"

    broken = write_config('[snmp]\ntimeout_s = "soon"\n', "broken.toml")
    code, checks = await asyncio.to_thread(_doctor, broken, capsys)
    assert code == 1
    assert checks["configuration"]["ok"] is False
    assert "snmp.timeout_s" in str(checks["configuration"]["detail"])


async def test_a_subnet_is_one_line_and_its_empty_addresses_are_not_failures(
    write_config: Callable[[str], Path], tmp_path: Path, snmpsim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    await _polled_recently(tmp_path)
    subnet = (
        f'site = "acme-hq"\nstate_dir = "{tmp_path / "state"}"\n'
        '[snmp]\ntimeout_s = 0.3\nretries = 0\ncommunities = ["{community}"]\n'
        f'[[snmp.targets]]\nhost = "127.0.0.0/29"\nport = {snmpsim.port}\n'
    )
    code, checks = await asyncio.to_thread(_doctor, write_config(subnet.replace("{community}", "konica_c250i")), capsys)
    assert code == 0, checks
    assert [name for name in checks if name.startswith(("printer", "subnet"))] == [
        f"printer 127.0.0.1:{snmpsim.port}",
        "subnet 127.0.0.0/29",
    ]
    assert checks["subnet 127.0.0.0/29"]["detail"] == "1 of 6 addresses answered"

    code, checks = await asyncio.to_thread(_doctor, write_config(subnet.replace("{community}", "wrong")), capsys)
    assert code == 1
    assert checks["subnet 127.0.0.0/29"]["ok"] is False
    assert "meterd discover SUBNET" in str(checks["subnet 127.0.0.0/29"]["fix"])


async def test_the_table_marks_each_line_and_gives_the_fix_under_a_failure(
    write_config: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(write_config, tmp_path, snmp_port=free_port(), mqtt_port=free_port())
    code = await asyncio.to_thread(main, ["doctor", "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 1
    assert "✓ configuration:" in out
    assert "✗ broker:" in out
    assert "    fix: check mqtt.host and mqtt.port" in out
    assert out.rstrip().splitlines()[-1].endswith("to fix")
