"""The `mqtt` sink's keys, and the broker address they name."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from daemon.config.fields import Range
from daemon.config.types import Secret
from daemon.sinks.publish import sample, template_problem

SCHEMES = {"mqtt": 1883, "mqtts": 8883}  # mqtts: TLS


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    tls: bool


def parse_url(url: str) -> Broker | str:
    """The broker of `mqtt://host:port` (`mqtts://` for TLS), or why `url` names none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a URL: {exc}"
    if parts.scheme not in SCHEMES:
        return f"scheme must be mqtt:// or mqtts://, got {url!r}"
    if not parts.hostname:
        return f"names no host: {url!r}"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials (use the username and password keys)"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"must be scheme://host[:port] only, got {url!r}"
    return Broker(parts.hostname, port or SCHEMES[parts.scheme], parts.scheme == "mqtts")


@dataclass(frozen=True)
class TlsConfig:
    """`[sinks.tls]`: how an mqtts:// connection verifies the broker and proves who we are
    (the same keys as the mqtt source's `[sources.tls]`)."""

    ca_file: Annotated[str, "CA bundle (PEM) to verify the broker by; empty: the system's"] = ""
    cert_file: Annotated[str, "client certificate (PEM), for brokers that require one"] = ""
    key_file: Annotated[str, "the client certificate's private key (PEM)"] = ""

    def check(self) -> list[tuple[str, str]]:
        issues = [
            (key, f"no such file: {path}")
            for key in ("ca_file", "cert_file", "key_file")
            if (path := getattr(self, key)) and not Path(path).is_file()
        ]
        if bool(self.cert_file) != bool(self.key_file):
            issues.append(("key_file" if self.cert_file else "cert_file", "needs the other"))
        return issues


@dataclass(frozen=True)
class MqttConfig:
    """The `mqtt` sink's keys."""

    url: Annotated[str, "broker: mqtt://host:port, or mqtts://host:port for TLS"] = (
        "mqtt://127.0.0.1:1883"
    )
    topic: Annotated[
        str, "topic template; {sensor_id} and {kind} are filled in (escaped to one level each)"
    ] = "ingestd/{kind}/{sensor_id}"
    qos: Annotated[
        Literal[0, 1], "1: a batch is written once the broker PUBACKed every message; 0: sent"
    ] = 1
    client_id: Annotated[str, "MQTT client id; empty: derived from host, sink and url (stable)"] = (
        ""
    )
    username: Annotated[Secret | None, "user name; absent: connect anonymously"] = None
    password: Annotated[Secret | None, "password (with username)"] = None
    retain: Annotated[
        bool, "publish with the retain flag (the broker keeps the last per topic)"
    ] = False
    connect_timeout_s: Annotated[
        float, Range(gt=0), "TCP connect, TLS handshake and CONNACK, at most"
    ] = 5.0
    max_inflight: Annotated[
        int, Range(ge=1, le=65_535), "messages sent and not yet acknowledged, at most"
    ] = 1000
    tls: Annotated[TlsConfig | None, "mqtts:// only: CA and client certificate files"] = None

    def check(self) -> list[tuple[str, str]]:
        issues: list[tuple[str, str]] = []
        broker = parse_url(self.url)
        if isinstance(broker, str):
            issues.append(("url", broker))
        if problem := template_problem(self.topic) or topic_problem(self.topic):
            issues.append(("topic", problem))
        if self.password is not None and self.username is None:
            issues.append(("password", "needs a username"))
        if len(self.client_id.encode("utf-8")) > 65_535:
            issues.append(("client_id", "must be at most 65535 bytes"))
        if self.tls is not None and not (isinstance(broker, Broker) and broker.tls):
            issues.append(("tls", "is used only with an mqtts:// url"))
        return issues

    def broker(self) -> Broker:
        broker = parse_url(self.url)
        assert isinstance(broker, Broker), broker  # check() refused anything else
        return broker

    def client_id_for(self, label: str) -> str:
        """The configured id, or one stable across restarts of this sink on this host (so a
        broker's logs and ACLs see the same client) and distinct between sinks and hosts."""
        if self.client_id:
            return self.client_id
        seed = f"{socket.gethostname()}\0{label}\0{self.url}".encode()
        return "ingestd" + hashlib.sha256(seed).hexdigest()[:16]  # 23 chars: MQTT 3.1.1's safe


def topic_problem(template: str) -> str | None:
    """What MQTT forbids in the template's own text (the values are escaped)."""
    text = sample(template)
    if "+" in text or "#" in text:
        return "must not hold a wildcard (+ or #): a message is published to one topic"
    if "\0" in text:
        return "must not hold a NUL character"
    if len(text.encode("utf-8", "surrogatepass")) > 60_000:
        return "is too long for an MQTT topic"
    return None
