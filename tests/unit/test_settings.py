"""Configuration loading: every bad file names the file, the key path and the reason."""

from __future__ import annotations

import os
import re
import tomllib
import types
from pathlib import Path

import pytest

from daemon.kernel.errors import ConfigError
from daemon.settings import Settings, environment_beside, load, resolve_config_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "meterd.example.toml"


def test_port_out_of_range_names_file_key_and_rule(write_config) -> None:
    path = write_config('[[snmp.targets]]\nhost = "10.0.4.1"\n[[snmp.targets]]\nhost = "10.0.4.2"\nport = 70000\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: snmp.targets[1].port: must be 1-65535")):
        load(path, {})


def test_two_targets_for_one_address_are_refused_naming_both(write_config) -> None:
    # The same printer twice (one spelling of an IPv6 address each) would be polled once, one entry's settings lost.
    path = write_config(
        '[[snmp.targets]]\nhost = "::1"\n[[snmp.targets]]\nhost = "10.0.4.7"\n'
        '[[snmp.targets]]\nhost = "0::1"\nport = 161\ncommunities = ["c2"]\n'
    )
    expected = f"{path}: snmp.targets[2]: same host and port (0::1:161) as snmp.targets[0]; merge the two"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load(path, {})
    # Another port is another agent (simulators, proxies): allowed.
    load(write_config('[[snmp.targets]]\nhost = "10.0.4.7"\n[[snmp.targets]]\nhost = "10.0.4.7"\nport = 1161\n'), {})


def test_the_sellers_tax_number_is_checked_like_a_customers(write_config) -> None:
    path = write_config('[billing.seller]\ntax_id = "DE123"\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}: billing.seller.tax_id: not a valid DE VAT number")):
        load(path, {})
    good = load(write_config('[billing.seller]\ntax_id = "de 136 695 976"\n'), {})
    assert good.billing.seller.tax_id == "DE136695976"
    unchecked = '[billing.seller]\ncountry = "US"\ntax_scheme = "other"\ntax_id = "12-3456789"\n'
    assert load(write_config(unchecked), {}).billing.seller.tax_id == "12-3456789"


def test_every_problem_is_reported_with_its_file_and_key(write_config) -> None:
    path = write_config('[scheduler]\npoll_interval_s = 1\n[[snmp.targets]]\nhost = "10.0.4.9"\nport = 0\n')
    with pytest.raises(ConfigError) as caught:
        load(path, {"METERD_SNMP__RETRIES": "many"})
    assert [(p.file, p.key) for p in caught.value.problems] == [
        (str(path), "scheduler.poll_interval_s"),
        ("$METERD_SNMP__RETRIES", "snmp.retries"),
        (str(path), "snmp.targets[0].port"),
    ]
    assert str(caught.value).count("\n") == 2


def test_unknown_key_is_refused_not_ignored(write_config) -> None:
    path = write_config('site = "acme"\n[storage]\nulr = "sqlite:////tmp/x.db"\n')
    with pytest.raises(ConfigError, match=r"storage\.ulr: unknown key") as caught:
        load(path, {})
    assert caught.value.file == str(path)
    assert caught.value.key == "storage.ulr"


def test_wrong_type_is_explained(write_config) -> None:
    path = write_config('[scheduler]\npoll_interval_s = "often"\n')
    with pytest.raises(ConfigError, match=r"scheduler\.poll_interval_s: Input should be a valid integer"):
        load(path, {})


def test_missing_required_key_in_a_list_entry(write_config) -> None:
    path = write_config("[[snmp.targets]]\nport = 161\n")
    with pytest.raises(ConfigError, match=r"snmp\.targets\[0\]\.host: required key is missing"):
        load(path, {})


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: file not found; pass --config FILE"):
        load(tmp_path / "nope.toml", {})


def test_broken_toml_reports_line(write_config) -> None:
    path = write_config('site = "acme"\n[metrics\n')
    with pytest.raises(ConfigError, match=r"not valid TOML \(.*line 2"):
        load(path, {})


def test_bad_site_name_is_refused(write_config) -> None:
    path = write_config('site = "Acme HQ/1"\n')
    with pytest.raises(ConfigError, match=r"site: must be lower-case letters"):
        load(path, {})


def test_environment_overrides_file_and_is_named_when_wrong(write_config) -> None:
    path = write_config('[storage]\nurl = "sqlite:////tmp/from-file.db"\n')
    settings = load(path, {"METERD_STORAGE__URL": "postgresql://meterd@db/meterd"})
    assert settings.database_url == "postgresql://meterd@db/meterd"
    with pytest.raises(ConfigError, match=r"^\$METERD_SNMP__RETRIES: snmp\.retries: "):
        load(path, {"METERD_SNMP__RETRIES": "many"})


def test_secrets_are_not_shown_in_settings_repr(write_config) -> None:
    path = write_config('[snmp]\ncommunities = ["s3cret-community"]\n')
    settings = load(path, {})
    assert "s3cret-community" not in repr(settings)
    assert settings.snmp.communities[0].get_secret_value() == "s3cret-community"


def test_default_store_is_sqlite_in_the_state_directory(write_config, tmp_path: Path) -> None:
    path = write_config(f'state_dir = "{tmp_path / "state"}"\n')
    assert load(path, {}).database_url == f"sqlite:///{tmp_path / 'state' / 'meterd.db'}"


def test_config_path_resolution_order(tmp_path: Path) -> None:
    assert resolve_config_path("given.toml", {"METERD_CONFIG": "env.toml"}) == Path("given.toml")
    assert resolve_config_path(None, {"METERD_CONFIG": "env.toml"}) == Path("env.toml")


def test_example_configuration_loads_and_sets_every_section() -> None:
    settings = load(EXAMPLE, {})
    raw = tomllib.loads(EXAMPLE.read_text())
    assert set(Settings.model_fields) <= set(raw), "the example must show every top-level key"
    assert settings.site == raw["site"]


def _documented_keys(model: type, prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        # An optional table (`X | None`) is documented like a table.
        if isinstance(annotation, types.UnionType):
            annotation = next((a for a in annotation.__args__ if hasattr(a, "model_fields")), annotation)
        nested = getattr(annotation, "model_fields", None)
        if nested is not None:
            keys.extend(_documented_keys(annotation, f"{prefix}{name}."))
        elif name == "targets":
            keys.extend(
                _documented_keys(
                    Settings.model_fields["snmp"].annotation.model_fields["targets"].annotation.__args__[0],
                    f"{prefix}targets[].",
                )
            )
        else:
            keys.append(f"{prefix}{name}")
    return keys


def test_every_settings_key_is_documented_in_config_readme() -> None:
    readme = (REPO / "config" / "README.md").read_text()
    missing = [key for key in _documented_keys(Settings) if f"`{key}`" not in readme]
    assert not missing, f"config/README.md lacks: {missing}"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ('version = "3"\n', r"snmp\.targets\[0\]: .*needs a \[snmp\.targets\.v3\] table"),
        ('version = "3"\n[snmp.targets.v3]\nuser = "m"\nauth_key = "short"\n', r"auth_key of at least 8"),
        (
            'version = "3"\n[snmp.targets.v3]\nuser = "m"\nauth_protocol = "none"\npriv_key = "long-enough"\n',
            r"privacy needs authentication",
        ),
    ],
)
def test_v3_targets_are_checked(write_config, target: str, message: str) -> None:
    path = write_config(f'[[snmp.targets]]\nhost = "10.0.4.1"\n{target}')
    with pytest.raises(ConfigError, match=message):
        load(path, {})


def test_every_detector_knob_is_a_setting() -> None:
    from billing.anomalies import DetectorSettings  # noqa: PLC0415
    from daemon.services.anomaly_job import detector_settings  # noqa: PLC0415
    from daemon.settings import Settings  # noqa: PLC0415

    assert detector_settings(Settings().anomalies) == DetectorSettings()


def test_a_sites_detector_knobs_are_checked_like_the_defaults(write_config) -> None:
    path = write_config("[anomalies]\nspike_mads = 6\n[anomalies.sites.warehouse]\nstale_intervals = 8\n")
    anomalies = load(path, {}).anomalies
    tuned = anomalies.tuned(anomalies.sites["warehouse"], where="warehouse")
    assert (tuned.stale_intervals, tuned.spike_mads) == (8, 6.0)  # its own knob, the rest from [anomalies]
    for body, message in (
        (
            "[anomalies.sites.warehouse]\nspike_window_days = 3\n",
            "anomalies.sites: warehouse.spike_window_days: Input should be greater than or equal to 7",
        ),
        (
            "[anomalies.sites.warehouse]\nnotify_attempts = 3\n",
            "anomalies.sites: warehouse.notify_attempts: not a detector knob",
        ),
    ):
        bad = write_config(body)
        with pytest.raises(ConfigError, match=re.escape(f"{bad}: {message}")):
            load(bad, {})


def test_the_configuration_reference_is_generated_from_the_model_and_current() -> None:
    from daemon.cli.settings_reference import reference  # noqa: PLC0415

    generated = reference()
    committed = (REPO / "docs" / "configuration.md").read_text()
    assert committed == generated, "run: python -m daemon.cli.settings_reference > docs/configuration.md"
    for key in _documented_keys(Settings):  # a list of tables is documented by its items' keys
        assert f"| `{key}` |" in generated or f"| `{key}[]." in generated, key


def test_snmp_secrets_can_live_in_files_of_their_own(write_config, tmp_path: Path) -> None:
    communities = tmp_path / "communities"
    communities.write_text("acme-ro\n\nbackup-ro\n")
    auth, priv = tmp_path / "auth.key", tmp_path / "priv.key"
    auth.write_text("authpassphrase\n")
    priv.write_text("privpassphrase\n")
    path = write_config(
        f'[snmp]\ncommunities_file = "{communities}"\n'
        f'[[snmp.targets]]\nhost = "10.0.4.9"\nversion = "3"\n'
        f'[snmp.targets.v3]\nuser = "meterd"\nauth_key_file = "{auth}"\npriv_key_file = "{priv}"\n'
    )
    settings = load(path, {})
    assert [c.get_secret_value() for c in settings.snmp.communities] == ["acme-ro", "backup-ro"]
    v3 = settings.snmp.targets[0].v3
    assert v3 is not None
    assert (v3.auth_key.get_secret_value(), v3.priv_key.get_secret_value()) == ("authpassphrase", "privpassphrase")  # type: ignore[union-attr]
    assert "acme-ro" not in repr(settings)  # masked wherever settings are shown
    missing = write_config(f'[snmp]\ncommunities_file = "{tmp_path / "nope"}"\n', "missing.toml")
    with pytest.raises(ConfigError, match=r"snmp: cannot read .*nope: No such file or directory"):
        load(missing, {})


def test_meterd_env_beside_the_file_is_read_as_the_unit_reads_it(
    write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.cli.main import main  # noqa: PLC0415 - the CLI is what reads the file for every command

    config = write_config(f'site = "in-the-file"\nstate_dir = "{tmp_path / "state"}"\n')
    (config.parent / "meterd.env").write_text(
        '# secrets for meterd.service\nMETERD_SITE="from-the-env-file"\nMETERD_MQTT__PASSWORD=s3cret\nOTHER=ignored\n'
    )
    assert environment_beside(config) == {"METERD_SITE": "from-the-env-file", "METERD_MQTT__PASSWORD": "s3cret"}
    monkeypatch.delenv("METERD_SITE", raising=False)
    assert main(["config", "check", "--config", str(config)]) == 0
    assert "site 'from-the-env-file'" in capsys.readouterr().out
    monkeypatch.setenv("METERD_SITE", "from-the-shell")  # the process's own environment wins, as in systemd
    assert main(["config", "check", "--config", str(config)]) == 0
    assert "site 'from-the-shell'" in capsys.readouterr().out
    (config.parent / "meterd.env").chmod(0o000)
    if not os.access(config.parent / "meterd.env", os.R_OK):  # root reads it anyway
        assert environment_beside(config) == {}  # the service's own user: systemd already gave it these


def test_a_hub_in_a_shared_group_keeps_its_broker_session_briefly(write_config) -> None:
    from daemon.services.mqtt import broker_options  # noqa: PLC0415 - the settings tests import no services

    alone = load(write_config('site = "hq"\nrole = "hub"\n[mqtt]\nsession_expiry_s = 86400\n'))
    grouped = load(write_config('site = "hq"\nrole = "hub"\n[mqtt]\nsession_expiry_s = 86400\nshared_group = "hubs"\n'))
    assert broker_options(alone).session_expiry_s == 86_400
    assert broker_options(grouped).session_expiry_s == 60
