"""TLS to the broker: a hub trusting a private CA ingests over an encrypted listener, and refuses an untrusted one."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import Callable
from pathlib import Path

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from structlog.testing import capture_logs

from daemon.runtime.app import Daemon
from daemon.settings import load
from daemon.storage.repository import Store
from tests.conftest import free_port
from tests.integration.mosquitto import OwnBroker
from tests.integration.test_mqtt_ingest import broker_connected, wait_for, wire_reading


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pki(tmp_path: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate for 127.0.0.1 signed by it: (ca, cert, key) files."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    broker_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(f"{name} CA", ca_key, None, ca=True)
    broker = _certificate("127.0.0.1", broker_key, (f"{name} CA", ca_key), ca=False)
    files = (tmp_path / f"{name}-ca.pem", tmp_path / f"{name}-broker.pem", tmp_path / f"{name}-broker.key")
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(broker.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(
        broker_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def _tls_broker(tmp_path: Path) -> tuple[OwnBroker, Path]:
    ca, cert, key = _pki(tmp_path, "trusted")
    broker = OwnBroker(tmp_path, free_port(), (f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"))
    return broker, ca


def _hub_config(write_config: Callable[..., Path], tmp_path: Path, port: int, ca: Path) -> Path:
    return write_config(
        f'site = "tls"\nrole = "hub"\nstate_dir = "{tmp_path / "hub"}"\n[metrics]\nenabled = false\n'
        f'[mqtt]\nport = {port}\nclient_id = "hub-tls"\ntls = true\nca_file = "{ca}"\n'
        "session_expiry_s = 60\nbatch_wait_ms = 20\nreconnect_min_s = 0.1\n"
    )


async def test_hub_ingests_over_tls_with_a_private_ca(write_config: Callable[..., Path], tmp_path: Path) -> None:
    broker, ca = _tls_broker(tmp_path)
    broker.start()
    hub = Daemon(load(_hub_config(write_config, tmp_path, broker.port, ca), {}))
    task = asyncio.create_task(hub.run())
    try:
        await wait_for(broker_connected(hub))
        context = ssl.create_default_context(cafile=str(ca))
        async with aiomqtt.Client("127.0.0.1", broker.port, tls_context=context, identifier="pub-tls") as client:
            await client.publish("meterd/v1/tls/HUBTEST1/reading", json.dumps(wire_reading("tls", 1)).encode(), qos=1)
        async with Store.open(hub.settings.database_url, upgrade=False) as store:

            async def arrived() -> bool:
                return [r.id for r in await store.readings()] == ["tls-r1"]

            await wait_for(arrived)
    finally:
        hub.request_stop()
        await asyncio.wait_for(task, 20)
        broker.stop()


async def test_a_broker_certificate_from_another_ca_is_refused(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    broker, _trusted = _tls_broker(tmp_path)
    other_ca, _cert, _key = _pki(tmp_path, "other")
    broker.start()
    hub = Daemon(load(_hub_config(write_config, tmp_path, broker.port, other_ca), {}))
    with capture_logs() as logs:
        task = asyncio.create_task(hub.run())
        try:

            async def refused() -> bool:
                return any(e["event"] == "broker_unreachable" for e in logs)

            await wait_for(refused)
        finally:
            hub.request_stop()
            await asyncio.wait_for(task, 20)
            broker.stop()
    error = next(e for e in logs if e["event"] == "broker_unreachable")["error"]
    assert "certificate" in str(error).lower()
