"""The shipped Mosquitto ACL (config/mosquitto/meterd.acl) with password logins: an agent publishes only
under its own site, hubs log in with a password from the environment or a file, no password is logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import aiomqtt
from structlog.testing import capture_logs

from daemon.runtime.app import Daemon
from daemon.settings import load
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.mosquitto import OwnBroker
from tests.integration.test_mqtt_ingest import broker_connected, wait_for, wire_reading

REPO = Path(__file__).resolve().parents[2]
PASSWORDS = {"acme-hq": "agent-secret-1", "other-site": "agent-secret-2", "hub-1": "hub-secret-1"}


def _broker(tmp_path: Path) -> OwnBroker:
    passwd = tmp_path / "meterd.passwd"
    for n, (user, password) in enumerate(PASSWORDS.items()):
        create = ["-c"] if n == 0 else []
        subprocess.run(["mosquitto_passwd", *create, "-b", str(passwd), user, password], check=True)
    broker = OwnBroker(tmp_path, free_port())
    broker.config.write_text(
        broker.config.read_text().replace("allow_anonymous true", "allow_anonymous false")
        + f"password_file {passwd}\nacl_file {REPO / 'config' / 'mosquitto' / 'meterd.acl'}\n"
    )
    return broker


async def _publish_as(user: str, port: int, site: str, n: int) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", port, username=user, password=PASSWORDS[user], identifier=f"pub-{user}"
    ) as c:
        # A device of that site's own: the hub keeps a device at the site that first reported it.
        serial = f"DEV-{site}"
        await c.publish(
            f"meterd/v1/{site}/{serial}/reading", json.dumps(wire_reading(site, n, serial=serial)).encode(), qos=1
        )


async def test_agents_publish_only_under_their_own_site(write_config: Callable[..., Path], tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.start()
    password_file = tmp_path / "hub.password"
    password_file.write_text(PASSWORDS["hub-1"] + "\n")
    config = write_config(
        f'site = "hub-site"\nrole = "hub"\nstate_dir = "{tmp_path / "hub"}"\n[metrics]\nenabled = false\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "hub-1"\nusername = "hub-1"\npassword_file = "{password_file}"\n'
        "session_expiry_s = 60\nbatch_wait_ms = 20\n"
    )
    hub = Daemon(load(config, {}))
    task = asyncio.create_task(hub.run())
    try:
        await wait_for(broker_connected(hub))
        await _publish_as("acme-hq", broker.port, "acme-hq", 1)  # allowed
        await _publish_as("acme-hq", broker.port, "other-site", 2)  # another site's topic: refused
        await _publish_as("other-site", broker.port, "other-site", 3)  # allowed
        async with Store.open(hub.settings.database_url, upgrade=False) as store:

            async def two_in() -> bool:
                return len(await store.readings()) == 2

            await wait_for(two_in)
            await asyncio.sleep(0.5)  # a third would have come with the others
            ids = sorted(r.id for r in await store.readings())
    finally:
        hub.request_stop()
        await asyncio.wait_for(task, 20)
        broker.stop()
    assert ids == ["acme-hq-r1", "other-site-r3"]


async def test_a_wrong_password_is_reported_and_never_logged(write_config: Callable[..., Path], tmp_path: Path) -> None:
    broker = _broker(tmp_path)
    broker.start()
    config = write_config(
        f'site = "hub-site"\nrole = "hub"\nstate_dir = "{tmp_path / "hub"}"\n[metrics]\nenabled = false\n'
        f'[mqtt]\nport = {broker.port}\nclient_id = "hub-1"\nusername = "hub-1"\nreconnect_min_s = 0.1\n'
    )
    hub = Daemon(load(config, {"METERD_MQTT__PASSWORD": "not-the-password-42"}))
    with capture_logs() as logs:
        task = asyncio.create_task(hub.run())
        try:
            await wait_for(_has_event(logs, "broker_unreachable"))
        finally:
            hub.request_stop()
            await asyncio.wait_for(task, 20)
            broker.stop()
    assert "not-the-password-42" not in repr(logs)
    refused = next(e for e in logs if e["event"] == "broker_unreachable")
    assert "authori" in str(refused["error"]).lower() or "password" in str(refused["error"]).lower()


def _has_event(logs: list[dict[str, object]], name: str) -> Callable[[], object]:
    async def check() -> bool:
        return any(e["event"] == name for e in logs)

    return check


async def test_hubs_publish_confirmations_and_an_agent_reads_only_its_own_sites(tmp_path: Path) -> None:
    # Issue 18.4: the hub's per-site confirmation is retained on a topic only that site's agent may read.
    broker = _broker(tmp_path)
    broker.start()
    got: list[tuple[str, bytes]] = []
    try:
        hub = aiomqtt.Client("127.0.0.1", broker.port, username="hub-1", password=PASSWORDS["hub-1"])
        async with hub:
            for site in ("acme-hq", "other-site"):
                await hub.publish(f"meterd/v1/{site}/ack", site.encode(), qos=1, retain=True)
        agent = aiomqtt.Client("127.0.0.1", broker.port, username="acme-hq", password=PASSWORDS["acme-hq"])
        async with agent:
            for site in ("acme-hq", "other-site"):
                await agent.subscribe(f"meterd/v1/{site}/ack", qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    async for message in agent.messages:
                        got.append((str(message.topic), bytes(message.payload)))  # type: ignore[arg-type]  # noqa: PERF401 - kept as they come, the wait ends in a timeout
    finally:
        broker.stop()
    assert got == [("meterd/v1/acme-hq/ack", b"acme-hq")]
