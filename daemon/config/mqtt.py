"""What the MQTT source and sink share: the broker a URL names, the `[tls]` table, a stable
client id. One definition, so `url`, `tls` and `client_id` mean the same on either side."""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}  # mqtts: TLS


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
    if parts.scheme not in DEFAULT_PORTS:
        return f"scheme must be mqtt:// or mqtts://, got {url!r}"
    if not parts.hostname:
        return f"names no host: {url!r}"
    if parts.username is not None or parts.password is not None:
        return "must not hold credentials (use the username and password keys)"
    if parts.path not in ("", "/") or parts.query or parts.fragment or port == 0:
        return f"must be scheme://host[:port] only (a port from 1), got {url!r}"
    return Broker(parts.hostname, port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts")


@dataclass(frozen=True)
class TlsConfig:
    """`[sources.tls]` / `[sinks.tls]`: how an mqtts:// connection verifies the broker and
    proves who we are."""

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


def derived_client_id(*parts: str) -> str:
    """A client id stable across restarts on this host (a persistent session is found by it,
    a broker's logs and ACLs see the same client) and distinct between components and hosts."""
    seed = "\0".join((socket.gethostname(), *parts)).encode()
    return "ingestd" + hashlib.sha256(seed).hexdigest()[:16]  # 23 chars: MQTT 3.1.1's safe
