"""The `mqtt` source's credentials and TLS against private Mosquitto brokers: a password file,
and a throwaway CA that signs the broker's certificate and the source's client certificate."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog.testing

from daemon.config.types import Secret
from daemon.sources.mqtt import MqttSource, MqttSourceConfig, TlsConfig
from tests.brokers.mosquitto import Mosquitto, mosquitto_factory
from tests.driven import Driven
from tests.integration.mqtt_sources import Sources, reading, sources, until
from tests.support import TestContext

__all__ = ["mosquitto_factory", "sources"]  # fixtures, used by name

pytestmark = pytest.mark.server("mqtt")


async def test_username_and_password_are_sent_and_a_refusal_is_retried_and_logged(
    mosquitto_factory: Callable[..., Mosquitto], sources: Sources, tmp_path: Path
) -> None:
    passwords = tmp_path / "passwd"
    await asyncio.to_thread(
        subprocess.run,
        ["mosquitto_passwd", "-b", "-c", str(passwords), "plant", "s3cret"],
        check=True,
        capture_output=True,
    )
    broker = mosquitto_factory(
        tuned=True, extra={"allow_anonymous": "false", "password_file": str(passwords)}
    )
    _, driven, _ = await sources.open(
        broker.port, username=Secret("plant"), password=Secret("s3cret")
    )
    assert driven is not None  # connected with the right ones
    with structlog.testing.capture_logs() as logs:
        config = MqttSourceConfig(
            topics=(f"{sources.topic}/#",),
            url=broker.url,
            client_id=f"wrong-{sources.tag}",
            username=Secret("plant"),
            password=Secret("wrong"),
            reconnect_max_s=0.2,
        )
        ctx = TestContext("sources[0]", dead_letter=str(tmp_path / "dl.jsonl"))
        refused = MqttSource(config, ctx)
        await refused.open()
        try:
            await until(lambda: sum(e["event"] == "source_reconnecting" for e in logs) >= 2)
        finally:
            await refused.close()
    errors = {e["error"] for e in logs if e["event"] == "source_reconnecting"}
    assert all("ConnectRefused" in e and "Not authorized" in e for e in errors), errors
    assert not ctx.state.gauges["sources[0]"]["connected"]
    assert "wrong" not in str(logs) and "s3cret" not in str(logs)


def _tls_files(directory: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    files = {
        n: directory / f"{n}.pem"
        for n in ("ca", "ca-key", "server", "server-key", "client", "client-key")
    }
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl(
        "req",
        "-x509",
        *ec,
        "-days",
        "1",
        "-subj",
        "/CN=ingestd test CA",
        "-keyout",
        str(files["ca-key"]),
        "-out",
        str(files["ca"]),
    )
    san = directory / "san.cnf"
    san.write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (("server", "127.0.0.1"), ("client", "ingestd")):
        csr = directory / f"{name}.csr"
        openssl(
            "req", *ec, "-subj", f"/CN={cn}", "-keyout", str(files[f"{name}-key"]), "-out", str(csr)
        )
        openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(files["ca"]),
            "-CAkey",
            str(files["ca-key"]),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(san),
            "-out",
            str(files[name]),
        )
    return files


async def test_mqtts_verifies_the_broker_and_presents_a_client_certificate(
    mosquitto_factory: Callable[..., Mosquitto], sources: Sources, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    files = await asyncio.to_thread(_tls_files, certs)
    broker = mosquitto_factory(
        tuned=True,
        extra={
            "cafile": str(files["ca"]),
            "certfile": str(files["server"]),
            "keyfile": str(files["server-key"]),
            "require_certificate": "true",
        },
    )
    tls = {
        "ca_file": str(files["ca"]),
        "cert_file": str(files["client"]),
        "key_file": str(files["client-key"]),
    }
    config = MqttSourceConfig(
        topics=(f"{sources.topic}/#",),
        url=f"mqtts://127.0.0.1:{broker.port}",
        client_id=f"tls-{sources.tag}",
        tls=TlsConfig(**tls),
    )
    ctx = TestContext("sources[0]", dead_letter=str(tmp_path / "dl.jsonl"))
    src = MqttSource(config, ctx)
    await src.open()
    try:
        await until(lambda: bool(ctx.state.gauges["sources[0]"]["connected"]))
        driven = Driven(src)
        await asyncio.to_thread(_publish_tls, broker.port, files, f"{sources.topic}/t")
        assert await driven.until(1) == [("TLS", 1)]
        driven.task.cancel()
    finally:
        await src.close()


def _publish_tls(port: int, files: dict[str, Path], topic: str) -> None:
    subprocess.run(
        [
            "mosquitto_pub",
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-q",
            "1",
            "-t",
            topic,
            "--cafile",
            str(files["ca"]),
            "--cert",
            str(files["client"]),
            "--key",
            str(files["client-key"]),
            "-m",
            reading("TLS", 1).decode(),
        ],
        check=True,
        capture_output=True,
        timeout=10,
    )
