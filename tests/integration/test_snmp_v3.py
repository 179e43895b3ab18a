"""SNMPv3 against snmpsim engines with real USM users: authPriv (SHA/AES-128, SHA-256/AES-256), authNoPriv."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from collectors.snmp.client import SnmpTarget
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.v3 import UsmCredentials
from daemon.cli.main import main
from daemon.demo.simulator import SimulatorError, SnmpSimulator
from daemon.kernel.errors import CollectorError
from daemon.services.polling import expand_targets
from daemon.settings import load
from tests.conftest import free_port
from tests.integration.conftest import CRAFTED

USERS = {
    "sha-aes128": UsmCredentials("meterd-sha", "sha", "auth-key-sha1", "aes128", "priv-key-aes128"),
    "sha256-aes256": UsmCredentials("meterd-256", "sha256", "auth-key-sha256", "aes256", "priv-key-aes256"),
    "sha256-nopriv": UsmCredentials("meterd-auth", "sha256", "auth-key-only1"),
}
_SNMPSIM_PROTO = {"sha": "SHA", "sha256": "SHA256", "aes128": "AES128", "aes256": "AES256", "none": "NONE"}


def _engine(user: UsmCredentials) -> list[str]:
    args = ["--v3-engine-id=auto", f"--v3-user={user.user}", f"--v3-auth-proto={_SNMPSIM_PROTO[user.auth_protocol]}"]
    args.append(f"--v3-auth-key={user.auth_key}")
    if user.priv_key:  # snmpsim wants no privacy options at all for authNoPriv
        args += [f"--v3-priv-proto={_SNMPSIM_PROTO[user.priv_protocol]}", f"--v3-priv-key={user.priv_key}"]
    return args


@pytest.fixture(scope="module")
def v3_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """One snmpsim, one engine per user, each on its own port; the context name picks the recording."""
    ports = {name: free_port() for name in USERS}
    names = list(USERS)
    more = [
        [*_engine(USERS[n]), f"--data-dir={CRAFTED}", f"--agent-udpv4-endpoint=127.0.0.1:{ports[n]}"] for n in names[1:]
    ]
    simulator = SnmpSimulator(
        [CRAFTED],
        ports[names[0]],
        tmp_path_factory.mktemp("v3") / "snmpsim.log",
        engine_args=_engine(USERS[names[0]]),
        more_engines=more,
    )
    simulator.start()
    try:
        asyncio.run(simulator.wait_ready("canon_ir_adv"))
    except SimulatorError as err:
        simulator.stop()
        pytest.fail(str(err))
    yield ports
    simulator.stop()


def _target(port: int, user: UsmCredentials) -> SnmpTarget:
    usm = UsmCredentials(
        user.user, user.auth_protocol, user.auth_key, user.priv_protocol, user.priv_key, "canon_ir_adv"
    )
    # snmpsim answers v3 in Python, three engines in one process: with the suite on both cores beside it an answer
    # can take over a second, so the test allows what a slow real device gets (timeout, one retry).
    return SnmpTarget("127.0.0.1", port, version="3", usm=usm, timeout_s=4.0, retries=1)


@pytest.mark.parametrize("name", list(USERS))
async def test_v3_user_reads_the_device(v3_ports: dict[str, int], name: str) -> None:
    async with SnmpCollector(site="test") as collector:
        target = _target(v3_ports[name], USERS[name])
        first = await collector.poll(target)  # probe: GETs and GETBULK walks over v3
        second = await collector.poll(target)  # from the plan
    meters = {m.meter.value: m.value for m in second.reading.meters}
    assert first.reading.device.key == second.reading.device.key == "2VX01234"
    assert meters["total"] == 213402
    assert meters["mono"] == 203021
    assert [s.level_percent for s in second.reading.supplies] == [55]


async def test_a_wrong_auth_key_says_what_to_check(v3_ports: dict[str, int]) -> None:
    user = USERS["sha-aes128"]
    wrong = UsmCredentials(user.user, user.auth_protocol, "not-the-key", user.priv_protocol, user.priv_key)
    async with SnmpCollector(site="test") as collector:
        with pytest.raises(CollectorError, match=r"SNMPv3 authentication failed: check the auth protocol and key"):
            await collector.poll(_target(v3_ports["sha-aes128"], wrong))


def test_meterd_poll_v3_flags(v3_ports: dict[str, int], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "poll",
            f"127.0.0.1:{v3_ports['sha256-aes256']}",
            "--v3-user",
            "meterd-256",
            "--auth",
            "sha256:auth-key-sha256",
            "--priv",
            "aes256:priv-key-aes256",
            "--context",
            "canon_ir_adv",
            "--format",
            "json",
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert printed[0]["device"]["serial"] == "2VX01234"


def test_meterd_discover_appends_the_v3_user_that_answered(
    v3_ports: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "meterd.toml"
    config.write_text('site = "acme-hq"\n')
    port = v3_ports["sha256-aes256"]
    code = main(
        [
            "discover",
            "127.0.0.1",
            "--port",
            str(port),
            "--v3-user",
            "meterd-256",
            "--auth",
            "sha256:auth-key-sha256",
            "--priv",
            "aes256:priv-key-aes256",
            "--context",
            "canon_ir_adv",
            "--timeout",
            "5",
            "--append-to",
            str(config),
        ]
    )
    assert code == 0, capsys.readouterr()
    # The daemon reads it with the user that answered, not with a community nobody set up.
    [planned] = expand_targets(load(config, {}))
    assert (planned.target.address, planned.target.version, planned.target.usm) == (
        f"127.0.0.1:{port}",
        "3",
        UsmCredentials("meterd-256", "sha256", "auth-key-sha256", "aes256", "priv-key-aes256", "canon_ir_adv"),
    )


def test_meterd_poll_refuses_a_short_v3_key(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["poll", "127.0.0.1", "--v3-user", "u", "--auth", "sha:short"])
    assert code == 2
    assert "auth_key of at least 8 characters" in capsys.readouterr().err
