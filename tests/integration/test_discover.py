"""`meterd discover` against snmpsim: finds the printer, lists it, appends a loadable target block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from daemon.cli.main import main
from daemon.services.polling import expand_targets
from daemon.settings import load
from tests.integration.conftest import Simulator


def test_discover_lists_the_printer_and_appends_a_target(
    snmpsim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "meterd.toml"
    config.write_text('site = "acme-hq"\n')
    code = main(
        [
            "discover",
            "127.0.0.1/32",
            "--port",
            str(snmpsim.port),
            "--community",
            "nobody-answers-this",
            "--community",
            "sharp_mxm266nv",
            "--timeout",
            "0.3",
            "--format",
            "json",
            "--append-to",
            str(config),
        ]
    )
    found = json.loads(capsys.readouterr().out)
    assert code == 0
    assert found == [
        {
            "serial": "0505571100",
            "vendor": "Sharp",
            "model": "SHARP MX-M266NV",
            "address": "127.0.0.1",
            "profile": "sharp",
        }
    ]
    # The target carries the community that answered, not the one tried first nor the default "public".
    targets = expand_targets(load(config, {}))
    assert [(p.target.address, p.target.communities) for p in targets] == [
        (f"127.0.0.1:{snmpsim.port}", ("sharp_mxm266nv",))
    ]
    # Found again: already listed, not appended twice (a second entry for one address is refused at load).
    assert (
        main(
            [
                "discover",
                "127.0.0.1",
                "--port",
                str(snmpsim.port),
                "--community",
                "sharp_mxm266nv",
                "--append-to",
                str(config),
            ]
        )
        == 0
    )
    assert "appended 0 target(s)" in capsys.readouterr().err
    assert len(load(config, {}).snmp.targets) == 1


@pytest.mark.parametrize("community", ["router", "nobody-answers-this"])
def test_discover_skips_agents_without_the_printer_mib_and_silent_ones(
    snmpsim: Simulator, community: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["discover", "127.0.0.1", "--port", str(snmpsim.port), "--community", community, "--timeout", "0.3"])
    assert code == 2
    assert "0 printer(s) in 1 address(es)" in capsys.readouterr().out


def test_the_router_fixture_does_answer_snmp(snmpsim: Simulator, capsys: pytest.CaptureFixture[str]) -> None:
    # Guards the test above: the router is skipped for lacking the Printer-MIB, not for silence.
    assert main(["poll", f"127.0.0.1:{snmpsim.port}", "--community", "router", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["meters"] == []
