"""What a v1/v2c agent loads: pysnmp (~35 MB resident) only once a v3 target is polled."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_the_v1_v2c_poller_and_the_cli_do_not_import_pysnmp() -> None:
    loaded = _loaded_after(
        "import collectors.snmp.collector, collectors.snmp.discovery, collectors.snmp.traps,"
        " daemon.services.polling, daemon.runtime.app, daemon.cli.main"
    )
    assert "collectors" in loaded  # the probe did import what it names
    assert "pysnmp" not in loaded
    assert "pyasn1" not in loaded


def test_a_v3_request_does_import_it() -> None:
    loaded = _loaded_after(
        "import asyncio\n"
        "from collectors.snmp.client import SnmpClient, SnmpTarget\n"
        "from collectors.snmp.usm import UsmCredentials\n"
        "async def main():\n"
        "    target = SnmpTarget('127.0.0.1', 9, version='3', usm=UsmCredentials('u'), timeout_s=0.1, retries=0)\n"
        "    async with SnmpClient() as client:\n"
        "        try:\n"
        "            await client.get(target, ['1.3.6.1.2.1.1.1.0'])\n"
        "        except Exception:\n"
        "            pass\n"
        "asyncio.run(main())"
    )
    assert "pysnmp" in loaded
