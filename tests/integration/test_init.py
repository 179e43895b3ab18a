"""`meterd init`: a configuration from a technician's answers or from flags, checked before it replaces anything."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.settings import environment_beside, load


def test_flags_write_a_configuration_meterd_loads(tmp_path: Path) -> None:
    target = tmp_path / "etc" / "meterd.toml"
    argv = [
        "init",
        "--file",
        str(target),
        "--yes",
        "--site",
        "acme-hq",
        "--subnet",
        "10.0.4.0/24",
        "--subnet",
        "10.0.5.20",
        "--community",
        "acme-ro",
        "--broker",
        "hub.dealer.example:8883",
    ]
    assert main(argv) == 0
    settings = load(target, {})
    assert (settings.site, settings.role, settings.mqtt.host, settings.mqtt.port) == (
        "acme-hq",
        "agent",
        "hub.dealer.example",
        8883,
    )
    assert [t.host for t in settings.snmp.targets] == ["10.0.4.0/24", "10.0.5.20"]
    assert [c.get_secret_value() for c in settings.snmp.communities] == ["acme-ro"]
    assert target.stat().st_mode & 0o777 == 0o640  # it holds communities


def test_snmpv3_and_a_standalone_box(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "meterd.toml"
    argv = [
        "init",
        "--file",
        str(target),
        "--yes",
        "--site",
        "shop",
        "--subnet",
        "192.0.2.10",
        "--v3-user",
        "meterd",
        "--auth",
        "sha256:authpassphrase",
        "--priv",
        "aes256:privpassphrase",
        "--broker",
        "none",
    ]
    assert main(argv) == 0
    settings = load(target, {})
    [printer] = settings.snmp.targets
    assert (settings.role, printer.version, printer.v3.user, printer.v3.priv_protocol) == (  # type: ignore[union-attr]
        "standalone",
        "3",
        "meterd",
        "aes256",
    )
    # A key too short for SNMPv3 is refused naming the key, and nothing replaces the file.
    before = target.read_text()
    bad = [*argv[:-2], "--auth", "sha256:short", "--force"]
    assert main(bad) == 1
    assert "snmp.targets[0].v3: auth_key of at least 8 characters" in capsys.readouterr().err
    assert target.read_text() == before


def test_the_technician_answers_the_questions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _technician_types(monkeypatch, ["warehouse-2", "10.9.0.0/24, 10.9.1.7", "", "public, ro-2026", "none"])
    target = tmp_path / "meterd.toml"
    assert main(["init", "--file", str(target)]) == 0
    settings = load(target, {})
    assert (settings.site, settings.role) == ("warehouse-2", "standalone")
    assert [t.host for t in settings.snmp.targets] == ["10.9.0.0/24", "10.9.1.7"]
    assert [c.get_secret_value() for c in settings.snmp.communities] == ["public", "ro-2026"]


def test_an_existing_file_is_replaced_only_when_asked_and_kept_beside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "meterd.toml"
    target.write_text('site = "old"\n')
    argv = ["init", "--file", str(target), "--yes", "--site", "new-site"]
    assert main(argv) == 1
    assert "exists; add --force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0
    assert load(target, {}).site == "new-site"
    assert (tmp_path / "meterd.toml.bak").read_text() == 'site = "old"\n'


def test_a_hub_broker_gets_login_tls_and_a_password_kept_out_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _technician_types(
        monkeypatch,
        ["acme-hq", "10.0.4.0/24", "", "public", "mqtt.dealer.example:8883", "", "/etc/meterd/ca.pem"],
        password="s3cret-agent",
    )
    target = tmp_path / "meterd.toml"
    assert main(["init", "--file", str(target)]) == 0
    settings = load(target, {})
    mqtt = settings.mqtt
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.tls, mqtt.ca_file) == (
        "mqtt.dealer.example",
        8883,
        "acme-hq",
        True,
        Path("/etc/meterd/ca.pem"),
    )
    assert "s3cret-agent" not in target.read_text()
    env_file = tmp_path / "meterd.env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    assert env_file.read_text() == "METERD_MQTT__PASSWORD=s3cret-agent\n"
    # What the service (EnvironmentFile=) and every meterd command then see.
    assert load(target, environment_beside(target)).mqtt.password_value() == "s3cret-agent"


def test_scripted_broker_flags(tmp_path: Path) -> None:
    target = tmp_path / "meterd.toml"
    secret = tmp_path / "broker-password"
    secret.write_text("from-a-file\n")
    argv = [
        "init",
        "--file",
        str(target),
        "--yes",
        "--site",
        "shop-7",
        "--subnet",
        "10.0.4.9",
        "--broker",
        "10.1.0.5",
        "--broker-user",
        "agent-shop-7",
        "--broker-password-file",
        str(secret),
    ]
    assert main(argv) == 0
    mqtt = load(target, {}).mqtt
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.tls) == ("10.1.0.5", 1883, "agent-shop-7", False)
    assert mqtt.password_value() == "from-a-file"
    assert not (tmp_path / "meterd.env").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another group needs root")
def test_the_new_file_keeps_the_group_the_service_reads_it_by(tmp_path: Path) -> None:
    service_group = 65534  # nogroup: any group the test process is not in by default
    etc = tmp_path / "etc"
    etc.mkdir()
    os.chown(etc, -1, service_group)  # as install.sh leaves /etc/meterd: root:meterd
    target = etc / "meterd.toml"
    argv = ["init", "--file", str(target), "--yes", "--site", "s", "--subnet", "10.0.4.9", "--broker", "none"]
    assert main(argv) == 0
    assert target.stat().st_gid == service_group
    os.chown(etc, -1, 0)
    assert main([*argv, "--force"]) == 0  # replacing: the replaced file's group, not the directory's
    assert target.stat().st_gid == service_group


def test_a_password_systemd_would_not_read_as_typed_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _technician_types(
        monkeypatch,
        ["acme-hq", "10.0.4.0/24", "", "public", "mqtt.dealer.example:8883", "", ""],
        password='pa"ss\\word',
    )
    assert main(["init", "--file", str(tmp_path / "meterd.toml")]) == 1
    assert "--broker-password-file" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _technician_types(monkeypatch: pytest.MonkeyPatch, answers: list[str], *, password: str = "") -> None:
    """A terminal where each question gets the next answer, and the password prompt ``password``."""
    typed = iter(answers)
    monkeypatch.setattr("sys.stdin", io.StringIO())
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda _prompt: next(typed))
    monkeypatch.setattr("getpass.getpass", lambda _prompt: password)
